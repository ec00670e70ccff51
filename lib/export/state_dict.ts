/**
 * Reads and writes a model's tensors as a safetensors file (float32 tensors, string
 * metadata): the container of `model.safetensors`. Writes are atomic (temp + rename).
 *
 * @module
 */
import type { StateDict, Tensor } from "./graph.ts";

/** Tensors and metadata of one file. */
export interface TensorFile {
  tensors: StateDict;
  metadata: Record<string, string>;
}

const DTYPE_BYTES: Record<string, number> = { F32: 4, F16: 2, BF16: 2, F64: 8 };

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/** Parses safetensors bytes; F16/BF16/F64 tensors are converted to float32. */
export function decodeSafetensors(bytes: Uint8Array, what = "safetensors data"): TensorFile {
  if (bytes.length < 8) throw new Error(`Cannot read ${what}: file is shorter than its 8-byte header length`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const hlen = Number(dv.getBigUint64(0, true));
  if (8 + hlen > bytes.length) throw new Error(`Cannot read ${what}: header length ${hlen} exceeds the file`);
  let header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + hlen)));
  } catch (e) {
    throw new Error(`Cannot read ${what}: header is not JSON (${(e as Error).message})`);
  }
  const base = 8 + hlen;
  const metadata = (header.__metadata__ ?? {}) as unknown as Record<string, string>;
  const tensors: StateDict = new Map();
  for (const [name, info] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const size = DTYPE_BYTES[info.dtype];
    if (!size) throw new Error(`Cannot read ${what}: tensor "${name}" has dtype "${info.dtype}", expected F32`);
    const [b, e] = info.data_offsets;
    const n = info.shape.reduce((x, y) => x * y, 1);
    if (e - b !== n * size || base + e > bytes.length) {
      throw new Error(`Cannot read ${what}: tensor "${name}" offsets [${b}, ${e}] do not fit shape [${info.shape}]`);
    }
    const data = new Float32Array(n);
    const tdv = new DataView(bytes.buffer, bytes.byteOffset + base + b, e - b);
    for (let i = 0; i < n; i++) {
      data[i] = info.dtype === "F32"
        ? tdv.getFloat32(i * 4, true)
        : info.dtype === "F64"
        ? tdv.getFloat64(i * 8, true)
        : info.dtype === "F16"
        ? halfToFloat(tdv.getUint16(i * 2, true))
        : new Float32Array(new Uint32Array([tdv.getUint16(i * 2, true) << 16]).buffer)[0];
    }
    tensors.set(name, { shape: info.shape, data });
  }
  return { tensors, metadata };
}

/** Encodes float32 tensors and string metadata as safetensors bytes (names in the given order). */
export function encodeSafetensors(tensors: StateDict, metadata: Record<string, string> = {}): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  const list: Tensor[] = [];
  for (const [name, t] of tensors) {
    header[name] = { dtype: "F32", shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
    list.push(t);
  }
  let h = JSON.stringify(header);
  h = h.padEnd(Math.ceil(h.length / 8) * 8, " ");
  const hb = new TextEncoder().encode(h);
  const out = new Uint8Array(8 + hb.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(hb.length), true);
  out.set(hb, 8);
  let p = 8 + hb.length;
  for (const t of list) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), p);
    p += t.data.byteLength;
  }
  return out;
}

/** Writes `bytes` to `path` through a temporary file in the same directory and a rename. */
export async function writeAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${path}.${Deno.pid}.${Date.now()}.tmp`;
  try {
    await Deno.writeFile(tmp, bytes);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}
