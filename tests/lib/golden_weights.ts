/**
 * The seeded weights of tests/golden/make_golden.py, reproduced bit for bit: element i of
 * tensor `name` is lo + (hi - lo) * u, with u a 32-bit hash of (name, i) divided by 2^32,
 * computed in float64 and rounded to float32.
 *
 * @module
 */

function fnv1a(name: string): number {
  let h = 0x811c9dc5;
  for (const b of new TextEncoder().encode(name)) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h;
}

/** [lo, hi] of the seeded values of `name`, as value_range() in make_golden.py. */
function valueRange(name: string, shape: readonly number[]): [number, number] {
  if (name.endsWith("running_mean")) return [-0.1, 0.1];
  if (name.endsWith("running_var")) return [0.5, 1.5];
  if (shape.length > 1) {
    const a = Math.sqrt(3.0 / (shape.reduce((x, y) => x * y, 1) / shape[0]));
    return [-a, a];
  }
  if (name.endsWith("bias")) return [-0.1, 0.1];
  if (name.includes("prelu")) return [0.1, 0.4];
  return [0.5, 1.5];
}

/** The seeded values of tensor `name` with `shape`. */
export function seeded(name: string, shape: readonly number[]): Float32Array<ArrayBuffer> {
  const [lo, hi] = valueRange(name, shape);
  const seed = fnv1a(name);
  const n = shape.reduce((x, y) => x * y, 1);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let x = (Math.imul(i, 0x9e3779b1) + seed) >>> 0;
    x ^= x >>> 16;
    x = Math.imul(x, 0x7feb352d) >>> 0;
    x ^= x >>> 15;
    x = Math.imul(x, 0x846ca68b) >>> 0;
    x ^= x >>> 16;
    out[i] = lo + (hi - lo) * ((x >>> 0) / 4294967296);
  }
  return out;
}
