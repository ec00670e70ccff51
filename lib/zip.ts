/**
 * A reader for ZIP archives held in memory, as `torch.save` writes them: the central
 * directory (with ZIP64 sizes and offsets), stored or deflated entries.
 *
 * @module
 */

/** One file of the archive. */
export interface ZipEntry {
  name: string;
  /** 0: stored, 8: deflated. */
  method: number;
  compressedSize: number;
  size: number;
  /** Offset of the entry's local header. */
  headerOffset: number;
}

const EOCD = 0x06054b50,
  EOCD64 = 0x06064b50,
  LOCATOR64 = 0x07064b50,
  CENTRAL = 0x02014b50,
  LOCAL = 0x04034b50;

function u64(v: DataView, at: number): number {
  const n = v.getBigUint64(at, true);
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`ZIP value ${n} is beyond 2^53`);
  return Number(n);
}

/** An archive's entries by name. */
export class ZipArchive {
  readonly entries = new Map<string, ZipEntry>();
  readonly #bytes: Uint8Array;
  readonly #view: DataView;

  /** Reads the central directory; throws for bytes that are not a ZIP archive. */
  constructor(bytes: Uint8Array, readonly source = "archive") {
    this.#bytes = bytes;
    const v = this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    // The end record sits in the last 22 + 65535 bytes (a comment may follow it).
    let end = -1;
    for (let i = bytes.length - 22; i >= Math.max(0, bytes.length - 22 - 65535); i--) {
      if (v.getUint32(i, true) === EOCD) {
        end = i;
        break;
      }
    }
    if (end < 0) throw new Error(`"${source}" is not a ZIP archive (no end of central directory)`);
    let count = v.getUint16(end + 10, true), dir = v.getUint32(end + 16, true);
    if (end >= 20 && v.getUint32(end - 20, true) === LOCATOR64) {
      const at = u64(v, end - 20 + 8);
      if (v.getUint32(at, true) !== EOCD64) throw new Error(`"${source}": damaged ZIP64 end record`);
      count = u64(v, at + 32);
      dir = u64(v, at + 48);
    }
    for (let i = 0, p = dir; i < count; i++) {
      if (p + 46 > bytes.length || v.getUint32(p, true) !== CENTRAL) {
        throw new Error(`"${source}": damaged ZIP central directory at byte ${p}`);
      }
      const nameLen = v.getUint16(p + 28, true), extraLen = v.getUint16(p + 30, true);
      const commentLen = v.getUint16(p + 32, true);
      const name = new TextDecoder().decode(bytes.subarray(p + 46, p + 46 + nameLen));
      let compressedSize = v.getUint32(p + 20, true), size = v.getUint32(p + 24, true);
      let headerOffset = v.getUint32(p + 42, true);
      // ZIP64: 0xFFFFFFFF fields continue in the extra field 0x0001, in this order.
      for (let e = p + 46 + nameLen; e + 4 <= p + 46 + nameLen + extraLen;) {
        const id = v.getUint16(e, true), len = v.getUint16(e + 2, true);
        if (id === 1) {
          let q = e + 4;
          const next = () => {
            q += 8;
            return u64(v, q - 8);
          };
          if (size === 0xffffffff) size = next();
          if (compressedSize === 0xffffffff) compressedSize = next();
          if (headerOffset === 0xffffffff) headerOffset = next();
        }
        e += 4 + len;
      }
      this.entries.set(name, { name, method: v.getUint16(p + 10, true), compressedSize, size, headerOffset });
      p += 46 + nameLen + extraLen + commentLen;
    }
  }

  /** The bytes of entry `name` (a view for stored entries). */
  async read(name: string): Promise<Uint8Array> {
    const e = this.entries.get(name);
    if (!e) throw new Error(`"${this.source}" has no entry "${name}"`);
    const v = this.#view, h = e.headerOffset;
    if (v.getUint32(h, true) !== LOCAL) {
      throw new Error(`"${this.source}": damaged local header of "${name}"`);
    }
    const start = h + 30 + v.getUint16(h + 26, true) + v.getUint16(h + 28, true);
    if (start + e.compressedSize > this.#bytes.length) {
      throw new Error(`"${this.source}" is truncated: entry "${name}" ends past the end of the file`);
    }
    const raw = this.#bytes.subarray(start, start + e.compressedSize);
    if (e.method === 0) return raw;
    if (e.method !== 8) {
      throw new Error(`"${this.source}": entry "${name}" uses unsupported method ${e.method}`);
    }
    const stream = new Blob([raw as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
      new DecompressionStream("deflate-raw"),
    );
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }
}
