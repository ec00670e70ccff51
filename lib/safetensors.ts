/**
 * Reads and writes safetensors files: an 8-byte little-endian header length, a JSON header
 * (`{"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}`) and
 * the raw little-endian tensor data. Tensor data is always copied into its own buffer, so
 * files whose data is not aligned to the element size load without a RangeError.
 *
 * @example
 * ```ts
 * import { readSafetensors, writeSafetensors } from "./safetensors.ts";
 * const path = await Deno.makeTempFile({ suffix: ".safetensors" });
 * await writeSafetensors(path, { w: { dtype: "F32", shape: [2], data: new Float32Array([1, 2]) } });
 * const { tensors } = await readSafetensors(path);
 * console.log(tensors.get("w")!.data); // Float32Array [1, 2]
 * ```
 *
 * @module
 */

/** Element types this module reads and writes. */
export type Dtype =
  | "F64"
  | "F32"
  | "F16"
  | "BF16"
  | "I64"
  | "I32"
  | "I16"
  | "I8"
  | "U64"
  | "U32"
  | "U16"
  | "U8"
  | "BOOL";

/** The typed array that holds each dtype. F16 and BF16 hold raw bit patterns. */
export type TensorData =
  | Float64Array<ArrayBuffer>
  | Float32Array<ArrayBuffer>
  | Uint16Array<ArrayBuffer>
  | BigInt64Array<ArrayBuffer>
  | Int32Array<ArrayBuffer>
  | Int16Array<ArrayBuffer>
  | Int8Array<ArrayBuffer>
  | BigUint64Array<ArrayBuffer>
  | Uint32Array<ArrayBuffer>
  | Uint8Array<ArrayBuffer>;

/** One tensor: dtype, shape (`[]` for a scalar) and its elements in row-major order. */
export interface Tensor {
  dtype: Dtype;
  shape: number[];
  data: TensorData;
}

/** A whole file: tensors by name, in file order, and the string metadata. */
export interface SafetensorsFile {
  tensors: Map<string, Tensor>;
  metadata: Record<string, string>;
}

/** Tensors to write: a Map or a plain object of name → tensor. */
export type TensorMap = Map<string, Tensor> | Record<string, Tensor>;

/** Metadata to write; numbers and booleans are stored as strings, as the format requires. */
export type MetadataInput = Record<string, string | number | boolean>;

interface DtypeInfo {
  size: number;
  make: (buf: ArrayBuffer) => TensorData;
  is: (data: unknown) => boolean;
}

const DTYPES: Record<Dtype, DtypeInfo> = {
  F64: { size: 8, make: (b) => new Float64Array(b), is: (d) => d instanceof Float64Array },
  F32: { size: 4, make: (b) => new Float32Array(b), is: (d) => d instanceof Float32Array },
  F16: { size: 2, make: (b) => new Uint16Array(b), is: (d) => d instanceof Uint16Array },
  BF16: { size: 2, make: (b) => new Uint16Array(b), is: (d) => d instanceof Uint16Array },
  I64: { size: 8, make: (b) => new BigInt64Array(b), is: (d) => d instanceof BigInt64Array },
  I32: { size: 4, make: (b) => new Int32Array(b), is: (d) => d instanceof Int32Array },
  I16: { size: 2, make: (b) => new Int16Array(b), is: (d) => d instanceof Int16Array },
  I8: { size: 1, make: (b) => new Int8Array(b), is: (d) => d instanceof Int8Array },
  U64: { size: 8, make: (b) => new BigUint64Array(b), is: (d) => d instanceof BigUint64Array },
  U32: { size: 4, make: (b) => new Uint32Array(b), is: (d) => d instanceof Uint32Array },
  U16: { size: 2, make: (b) => new Uint16Array(b), is: (d) => d instanceof Uint16Array },
  U8: { size: 1, make: (b) => new Uint8Array(b), is: (d) => d instanceof Uint8Array },
  BOOL: { size: 1, make: (b) => new Uint8Array(b), is: (d) => d instanceof Uint8Array },
};

/** Largest header accepted, as in the reference implementation. */
const MAX_HEADER = 100_000_000;

function dtypeInfo(dtype: unknown, where: string): DtypeInfo {
  if (typeof dtype === "string" && Object.hasOwn(DTYPES, dtype)) return DTYPES[dtype as Dtype];
  throw new TypeError(
    `${where}: unknown dtype ${JSON.stringify(dtype)} (expected one of ${Object.keys(DTYPES).join(", ")})`,
  );
}

/** Number of elements of a shape (1 for a scalar `[]`). */
export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

interface Entry {
  name: string;
  dtype: Dtype;
  shape: number[];
  begin: number;
  end: number;
}

/** Validates a parsed header against the size of the data section. */
function parseHeader(
  json: string,
  dataSize: number,
  source: string,
): { entries: Entry[]; metadata: Record<string, string> } {
  const fail = (why: string): never => {
    throw new Error(`Cannot read safetensors ${source}: ${why}`);
  };
  let header: unknown;
  try {
    header = JSON.parse(json);
  } catch (e) {
    fail(`the header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    fail("the header is not a JSON object");
  }
  const metadata: Record<string, string> = {};
  const entries: Entry[] = [];
  for (const [name, value] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (typeof value !== "object" || value === null || Array.isArray(value)) {
        fail(`"__metadata__" is not an object`);
      }
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== "string") fail(`metadata "${k}" is ${JSON.stringify(v)}, expected a string`);
        metadata[k] = v as string;
      }
      continue;
    }
    const t = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof t !== "object" || t === null) fail(`tensor "${name}" is not an object`);
    const info = dtypeInfo(t.dtype, `Cannot read safetensors ${source}: tensor "${name}"`);
    const shape = t.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(`tensor "${name}" has shape ${JSON.stringify(shape)}, expected an array of non-negative integers`);
    }
    const off = t.data_offsets;
    if (
      !Array.isArray(off) || off.length !== 2 || !off.every((o) => Number.isSafeInteger(o) && o >= 0) ||
      off[0] > off[1]
    ) {
      fail(
        `tensor "${name}" has data_offsets ${JSON.stringify(off)}, expected [begin, end] with begin <= end`,
      );
    }
    const [begin, end] = off as number[];
    if (end > dataSize) {
      fail(`tensor "${name}" ends at data byte ${end}, but the data section has ${dataSize} bytes`);
    }
    const bytes = numel(shape as number[]) * info.size;
    if (end - begin !== bytes) {
      fail(
        `tensor "${name}" spans ${end - begin} bytes, but ${t.dtype} ${JSON.stringify(shape)} needs ${bytes}`,
      );
    }
    entries.push({ name, dtype: t.dtype as Dtype, shape: shape as number[], begin, end });
  }
  return { entries, metadata };
}

/** What a file that is not safetensors is, by its first bytes, when that is clear. */
function notSafetensors(first: Uint8Array): string | undefined {
  const starts = (...b: number[]) => b.every((v, i) => first[i] === v);
  if (starts(0x50, 0x4b, 0x03, 0x04) || starts(0x80, 0x02) || starts(0x80, 0x04)) {
    return "it is a PyTorch checkpoint (torch.save): convert it with `deno task import <file.pt> <model.safetensors>`";
  }
  if (starts(0xff, 0xd8, 0xff) || starts(0x89, 0x50, 0x4e, 0x47)) {
    return "it is an image (JPEG or PNG), not a model";
  }
  if (starts(0x08) && first[2] === 0x12) {
    return "it looks like an ONNX file: give the model.safetensors it came from";
  }
  return undefined;
}

function headerLength(first8: Uint8Array, fileSize: number, source: string): number {
  if (fileSize < 8) {
    throw new Error(
      `Cannot read safetensors ${source}: ${fileSize} bytes, too short for the 8-byte header length`,
    );
  }
  const n = new DataView(first8.buffer, first8.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(Math.min(MAX_HEADER, fileSize - 8))) {
    throw new Error(
      `Cannot read safetensors ${source}: ${
        notSafetensors(first8) ??
          `header length ${n} exceeds the ${fileSize - 8} bytes after it (limit ${MAX_HEADER})`
      }`,
    );
  }
  return Number(n);
}

/** Parses safetensors bytes held in memory. `source` names them in errors. */
export function parseSafetensors(bytes: Uint8Array, source = "buffer"): SafetensorsFile {
  const n = headerLength(bytes.subarray(0, 8), bytes.length, source);
  const json = new TextDecoder("utf-8", { fatal: false }).decode(bytes.subarray(8, 8 + n));
  const dataStart = 8 + n;
  const { entries, metadata } = parseHeader(json, bytes.length - dataStart, source);
  const tensors = new Map<string, Tensor>();
  for (const e of entries) {
    // slice() copies into a fresh, aligned ArrayBuffer whatever the file offset was.
    const buf = bytes.slice(dataStart + e.begin, dataStart + e.end).buffer;
    tensors.set(e.name, { dtype: e.dtype, shape: e.shape, data: DTYPES[e.dtype].make(buf) });
  }
  return { tensors, metadata };
}

async function readFull(file: Deno.FsFile, buf: Uint8Array, position: number, path: string): Promise<void> {
  await file.seek(position, Deno.SeekMode.Start);
  let done = 0;
  while (done < buf.length) {
    const got = await file.read(buf.subarray(done));
    if (got === null) throw new Error(`Cannot read safetensors "${path}": the file ended early`);
    done += got;
  }
}

/** Reads a safetensors file; each tensor is read straight into its own buffer. */
export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  using file = await Deno.open(path, { read: true });
  const size = (await file.stat()).size;
  const source = `"${path}"`;
  const first8 = new Uint8Array(8);
  if (size >= 8) await readFull(file, first8, 0, path);
  const n = headerLength(first8, size, source);
  const headerBytes = new Uint8Array(n);
  await readFull(file, headerBytes, 8, path);
  const { entries, metadata } = parseHeader(new TextDecoder().decode(headerBytes), size - 8 - n, source);
  const tensors = new Map<string, Tensor>();
  for (const e of entries) {
    const raw = new Uint8Array(e.end - e.begin);
    await readFull(file, raw, 8 + n + e.begin, path);
    tensors.set(e.name, { dtype: e.dtype, shape: e.shape, data: DTYPES[e.dtype].make(raw.buffer) });
  }
  return { tensors, metadata };
}

function entriesOf(tensors: TensorMap): [string, Tensor][] {
  return tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
}

/** Checks one tensor to write; returns its bytes as a view (no copy). */
function tensorBytes(name: string, t: Tensor): Uint8Array {
  const where = `Cannot write tensor "${name}"`;
  const info = dtypeInfo(t.dtype, where);
  if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new TypeError(
      `${where}: shape ${JSON.stringify(t.shape)} is not an array of non-negative integers`,
    );
  }
  if (!info.is(t.data)) {
    throw new TypeError(
      `${where}: dtype ${t.dtype} needs a ${
        info.make(new ArrayBuffer(0)).constructor.name
      }, got ${t.data?.constructor?.name}`,
    );
  }
  if (t.data.length !== numel(t.shape)) {
    throw new RangeError(
      `${where}: shape ${JSON.stringify(t.shape)} has ${numel(t.shape)} elements, data has ${t.data.length}`,
    );
  }
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

function metadataStrings(metadata: MetadataInput): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v === "string") out[k] = v;
    else if ((typeof v === "number" && Number.isFinite(v)) || typeof v === "boolean") out[k] = String(v);
    else {throw new TypeError(
        `Cannot write metadata "${k}": ${String(v)} is not a string, finite number or boolean`,
      );}
  }
  return out;
}

/**
 * Lays out a file: tensors sorted by element size (largest first), then name, so each
 * starts at a multiple of its element size with no gaps; the header is padded with spaces
 * to a multiple of 8 so the data section starts 8-aligned.
 */
function layout(tensors: TensorMap, metadata: MetadataInput): { header: Uint8Array; parts: Uint8Array[] } {
  const items = entriesOf(tensors).map(([name, t]) => ({ name, t, bytes: tensorBytes(name, t) }));
  items.sort((a, b) =>
    DTYPES[b.t.dtype].size - DTYPES[a.t.dtype].size || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
  );
  const header: Record<string, unknown> = {};
  const meta = metadataStrings(metadata);
  if (Object.keys(meta).length) header.__metadata__ = meta;
  let offset = 0;
  for (const { name, t, bytes } of items) {
    if (name === "__metadata__") {
      throw new TypeError(`Cannot write tensor "__metadata__": the name is reserved`);
    }
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes.length] };
    offset += bytes.length;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(json);
    json = p;
  }
  const head = new Uint8Array(8 + json.length);
  new DataView(head.buffer).setBigUint64(0, BigInt(json.length), true);
  head.set(json, 8);
  return { header: head, parts: items.map((i) => i.bytes) };
}

/** Serializes tensors and metadata to safetensors bytes. */
export function serializeSafetensors(
  tensors: TensorMap,
  metadata: MetadataInput = {},
): Uint8Array<ArrayBuffer> {
  const { header, parts } = layout(tensors, metadata);
  const out = new Uint8Array(header.length + parts.reduce((a, p) => a + p.length, 0));
  out.set(header);
  let at = header.length;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * Writes a safetensors file atomically: a temporary file in the same directory, then a
 * rename, so a failed write leaves any existing file intact.
 */
export async function writeSafetensors(
  path: string,
  tensors: TensorMap,
  metadata: MetadataInput = {},
): Promise<void> {
  const { header, parts } = layout(tensors, metadata);
  const tmp = `${path}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  try {
    {
      using file = await Deno.open(tmp, { write: true, createNew: true });
      for (const p of [header, ...parts]) {
        let done = 0;
        while (done < p.length) done += await file.write(p.subarray(done));
      }
      await file.syncData();
    }
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    // Deno's file-system errors name no path.
    if (e instanceof Deno.errors.IsADirectory) {
      throw new Deno.errors.IsADirectory(
        `Cannot write "${path}": it is a folder (remove it, or write elsewhere)`,
      );
    }
    throw e;
  }
}

/**
 * Reads integer metadata (stored as a string), failing with the key and value when it is
 * missing or not an integer.
 */
export function metadataInt(metadata: Record<string, string>, key: string, source = "file"): number {
  const v = metadata[key];
  if (v === undefined) throw new Error(`Cannot read metadata "${key}" of ${source}: the key is missing`);
  if (!/^-?\d+$/.test(v.trim()) || !Number.isSafeInteger(Number(v))) {
    throw new Error(`Cannot read metadata "${key}" of ${source}: "${v}" is not an integer`);
  }
  return Number(v);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

function floatToHalf(x: number): number {
  f32[0] = x;
  const b = u32[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const frac = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (frac ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    // Subnormal half: shift the full mantissa, round to nearest even.
    const m = frac | 0x800000;
    const shift = 14 - e;
    const half = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    return sign | (half + (rem > mid || (rem === mid && (half & 1)) ? 1 : 0));
  }
  const half = (e << 10) | (frac >>> 13);
  const rem = frac & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (up to infinity).
  return sign | (half + (rem > 0x1000 || (rem === 0x1000 && (half & 1)) ? 1 : 0));
}

function floatToBf16(x: number): number {
  f32[0] = x;
  const b = u32[0];
  if ((b & 0x7fffffff) > 0x7f800000) return ((b >>> 16) | 0x40) & 0xffff; // quiet NaN
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Converts any numeric tensor to float32 values (F16/BF16 decoded, integers converted). */
export function toFloat32(t: Tensor): Float32Array<ArrayBuffer> {
  const d = t.data;
  if (t.dtype === "F32") return Float32Array.from(d as Float32Array);
  const out = new Float32Array(d.length);
  if (t.dtype === "F16") { for (let i = 0; i < d.length; i++) out[i] = halfToFloat((d as Uint16Array)[i]); }
  else if (t.dtype === "BF16") {
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < d.length; i++) bits[i] = (d as Uint16Array)[i] << 16;
  } else for (let i = 0; i < d.length; i++) out[i] = Number(d[i]);
  return out;
}

/** Encodes float values as an F32, F16 or BF16 tensor (round to nearest even). */
export function fromFloat32(
  values: ArrayLike<number>,
  shape: number[],
  dtype: "F32" | "F16" | "BF16" = "F32",
): Tensor {
  if (numel(shape) !== values.length) {
    throw new RangeError(
      `Cannot make a tensor of shape ${JSON.stringify(shape)} (${
        numel(shape)
      } elements) from ${values.length} values`,
    );
  }
  if (dtype === "F32") return { dtype, shape, data: Float32Array.from(values) };
  const conv = dtype === "F16" ? floatToHalf : floatToBf16;
  const data = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) data[i] = conv(values[i]);
  return { dtype, shape, data };
}
