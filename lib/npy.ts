/**
 * NumPy `.npy` files (format version 1.0) holding little-endian float32 arrays in C order:
 * what `numpy.load` reads and `numpy.save` writes for `np.float32` arrays.
 *
 * @module
 */

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // "\x93NUMPY"

/** A float32 array with its shape. */
export interface NpyArray {
  shape: number[];
  data: Float32Array;
}

/** Encodes a float32 array as `.npy` version 1.0 bytes. */
export function encodeNpy(a: NpyArray): Uint8Array {
  const n = a.shape.reduce((x, y) => x * y, 1);
  if (n !== a.data.length) {
    throw new RangeError(
      `Cannot encode .npy: shape [${a.shape}] holds ${n} values, data has ${a.data.length}`,
    );
  }
  const shape = a.shape.length === 1 ? `(${a.shape[0]},)` : `(${a.shape.join(", ")})`;
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': ${shape}, }`;
  // Magic (6) + version (2) + length (2) + header + "\n" is padded to a multiple of 64.
  const total = Math.ceil((10 + header.length + 1) / 64) * 64;
  header = header.padEnd(total - 10 - 1, " ") + "\n";
  if (header.length > 0xffff) throw new RangeError("Cannot encode .npy: shape too long for version 1.0");
  const out = new Uint8Array(10 + header.length + a.data.byteLength);
  out.set(MAGIC);
  out[6] = 1;
  out[7] = 0;
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  out.set(new Uint8Array(a.data.buffer, a.data.byteOffset, a.data.byteLength), 10 + header.length);
  return out;
}

/** Decodes `.npy` bytes holding a little-endian float32 C-order array (versions 1.0–3.0). */
export function decodeNpy(bytes: Uint8Array, what = ".npy data"): NpyArray {
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) {
    throw new Error(`Cannot read ${what}: not a .npy file (bad magic)`);
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const major = bytes[6];
  const [len, start] = major === 1 ? [dv.getUint16(8, true), 10] : [dv.getUint32(8, true), 12];
  const header = new TextDecoder().decode(bytes.subarray(start, start + len));
  const descr = /'descr':\s*'([^']*)'/.exec(header)?.[1];
  if (descr !== "<f4") throw new Error(`Cannot read ${what}: dtype "${descr}", expected "<f4" (float32)`);
  if (/'fortran_order':\s*True/.test(header)) {
    throw new Error(`Cannot read ${what}: Fortran order is not supported`);
  }
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1] ?? "";
  const shape = shapeText.split(",").map((s) => s.trim()).filter((s) => s !== "").map(Number);
  const n = shape.reduce((x, y) => x * y, 1);
  const off = start + len;
  if (bytes.length - off < n * 4) {
    throw new Error(`Cannot read ${what}: ${n} values declared, file is truncated`);
  }
  const data = new Float32Array(n);
  new Uint8Array(data.buffer).set(bytes.subarray(off, off + n * 4));
  return { shape, data };
}
