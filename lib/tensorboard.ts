/**
 * TensorBoard scalars without TensorFlow: an `events.out.tfevents.*` file of TFRecord-framed
 * `Event` protocol buffers (wall time, step, one `Summary.Value` with `simple_value`).
 *
 * ```ts
 * using tb = await EventWriter.open(await Deno.makeTempDir()); // e.g. work_dirs/run
 * await tb.scalar("loss", 12.5, 10);
 * ```
 *
 * @module
 */
import { ProtoWriter } from "./export/protobuf.ts";

const CRC32C_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

/** CRC-32C (Castagnoli), as TFRecord uses. */
export function crc32c(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC32C_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function maskedCrc(bytes: Uint8Array): number {
  const c = crc32c(bytes);
  return (((c >>> 15) | (c << 17)) + 0xa282ead8) >>> 0;
}

/** One TFRecord: length, its masked CRC, the data, the data's masked CRC. */
export function tfRecord(data: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(16 + data.length);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(data.length), true);
  view.setUint32(8, maskedCrc(out.subarray(0, 8)), true);
  out.set(data, 12);
  view.setUint32(12 + data.length, maskedCrc(data), true);
  return out;
}

function event(step: number, build: (e: ProtoWriter) => void): Uint8Array {
  const e = new ProtoWriter().double(1, Date.now() / 1000).int(2, step);
  build(e);
  return e.finish();
}

/** Appends scalar events to one event file. */
export class EventWriter {
  #file: Deno.FsFile | null;
  readonly path: string;

  private constructor(file: Deno.FsFile, path: string) {
    this.#file = file;
    this.path = path;
  }

  /** Creates a new event file in `dir` (made if missing). */
  static async open(dir: string): Promise<EventWriter> {
    await Deno.mkdir(dir, { recursive: true });
    const path = `${dir}/events.out.tfevents.${Math.floor(Date.now() / 1000)}.${Deno.hostname()}.${Deno.pid}`;
    const file = await Deno.open(path, { write: true, createNew: true });
    const w = new EventWriter(file, path);
    await w.#write(event(0, (e) => e.string(3, "brain.Event:2")));
    return w;
  }

  async #write(data: Uint8Array): Promise<void> {
    if (!this.#file) throw new Error(`Cannot write to "${this.path}": the event file is closed`);
    const rec = tfRecord(data);
    let done = 0;
    while (done < rec.length) done += await this.#file.write(rec.subarray(done));
  }

  /** Records `value` under `tag` at `step`. */
  async scalar(tag: string, value: number, step: number): Promise<void> {
    const v = new ProtoWriter().string(1, tag).float(2, value);
    await this.#write(event(step, (e) => e.message(5, new ProtoWriter().message(1, v))));
  }

  close(): void {
    this.#file?.close();
    this.#file = null;
  }
  [Symbol.dispose](): void {
    this.close();
  }
}
