/**
 * Line plots as PNG files, with no dependency: a raster canvas, a 5×7 bitmap font for
 * labels and tick numbers, and a PNG encoder (zlib through `CompressionStream("deflate")`,
 * CRC-32 in TS). Used for ROC curves (`deno task eval --roc`, IJB) and training loss curves.
 *
 * @example
 * ```ts
 * import { linePlot } from "./plot.ts";
 * const png = await linePlot({
 *   series: [{ x: [1, 2, 3], y: [2.0, 1.2, 0.9], label: "loss" }],
 *   xLabel: "step",
 *   yLabel: "loss",
 * });
 * await Deno.writeFile(await Deno.makeTempFile({ suffix: ".png" }), png);
 * ```
 *
 * @module
 */

// ---------------------------------------------------------------------------------------
// PNG

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (ISO 3309 / PNG / zlib's `crc32`) of `bytes`, continuing from `crc` (default 0). */
export function crc32(bytes: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

async function zlib(data: Uint8Array<ArrayBuffer>): Promise<Uint8Array<ArrayBuffer>> {
  const stream = new Blob([data]).stream().pipeThrough(new CompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function chunk(type: string, data: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(12 + data.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  v.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

/**
 * Encodes 8-bit pixels (row-major; 1 channel grey, 3 RGB or 4 RGBA) as a PNG. Each row uses
 * the "Up" filter (the first row "None"), which suits both plots and photos.
 */
export async function encodePng(
  pixels: Uint8Array,
  width: number,
  height: number,
  channels: 1 | 3 | 4 = 3,
): Promise<Uint8Array<ArrayBuffer>> {
  for (const [name, v] of [["width", width], ["height", height]] as const) {
    if (!Number.isInteger(v) || v < 1 || v > 2 ** 24) {
      throw new RangeError(`Invalid PNG ${name} ${v}: expected a positive integer`);
    }
  }
  if (![1, 3, 4].includes(channels)) {
    throw new RangeError(`Invalid PNG channel count ${channels}: expected 1, 3 or 4`);
  }
  const stride = width * channels;
  if (pixels.length !== stride * height) {
    throw new RangeError(
      `Cannot encode PNG: ${pixels.length} bytes given, expected ${width}x${height}x${channels} = ${
        stride * height
      }`,
    );
  }
  const raw = new Uint8Array((stride + 1) * height);
  for (let y = 0; y < height; y++) {
    const row = y * stride, at = y * (stride + 1);
    if (y === 0) {
      raw[at] = 0;
      raw.set(pixels.subarray(0, stride), at + 1);
      continue;
    }
    raw[at] = 2; // Up
    for (let i = 0; i < stride; i++) raw[at + 1 + i] = (pixels[row + i] - pixels[row - stride + i]) & 0xff;
  }
  const ihdr = new Uint8Array(13);
  const v = new DataView(ihdr.buffer);
  v.setUint32(0, width);
  v.setUint32(4, height);
  ihdr[8] = 8; // bit depth
  ihdr[9] = channels === 1 ? 0 : channels === 3 ? 2 : 6; // colour type
  const parts = [
    Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", await zlib(raw)),
    chunk("IEND", new Uint8Array(0)),
  ];
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// 5×7 bitmap font: one byte per row, bit 4 the leftmost column.

const GLYPHS: Record<string, number[]> = {
  "0": [0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e],
  "1": [0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e],
  "2": [0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f],
  "3": [0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e],
  "4": [0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02],
  "5": [0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e],
  "6": [0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e],
  "7": [0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
  "8": [0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e],
  "9": [0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c],
  A: [0x0e, 0x11, 0x11, 0x11, 0x1f, 0x11, 0x11],
  B: [0x1e, 0x11, 0x11, 0x1e, 0x11, 0x11, 0x1e],
  C: [0x0e, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0e],
  D: [0x1c, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1c],
  E: [0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x1f],
  F: [0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x10],
  G: [0x0e, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0f],
  H: [0x11, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11],
  I: [0x0e, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e],
  J: [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0c],
  K: [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
  L: [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1f],
  M: [0x11, 0x1b, 0x15, 0x15, 0x11, 0x11, 0x11],
  N: [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
  O: [0x0e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e],
  P: [0x1e, 0x11, 0x11, 0x1e, 0x10, 0x10, 0x10],
  Q: [0x0e, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0d],
  R: [0x1e, 0x11, 0x11, 0x1e, 0x14, 0x12, 0x11],
  S: [0x0f, 0x10, 0x10, 0x0e, 0x01, 0x01, 0x1e],
  T: [0x1f, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
  U: [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e],
  V: [0x11, 0x11, 0x11, 0x11, 0x11, 0x0a, 0x04],
  W: [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0a],
  X: [0x11, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x11],
  Y: [0x11, 0x11, 0x11, 0x0a, 0x04, 0x04, 0x04],
  Z: [0x1f, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1f],
  a: [0x00, 0x00, 0x0e, 0x01, 0x0f, 0x11, 0x0f],
  b: [0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1e],
  c: [0x00, 0x00, 0x0e, 0x10, 0x10, 0x11, 0x0e],
  d: [0x01, 0x01, 0x0d, 0x13, 0x11, 0x11, 0x0f],
  e: [0x00, 0x00, 0x0e, 0x11, 0x1f, 0x10, 0x0e],
  f: [0x06, 0x09, 0x08, 0x1c, 0x08, 0x08, 0x08],
  g: [0x00, 0x0f, 0x11, 0x11, 0x0f, 0x01, 0x0e],
  h: [0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11],
  i: [0x04, 0x00, 0x0c, 0x04, 0x04, 0x04, 0x0e],
  j: [0x02, 0x00, 0x06, 0x02, 0x02, 0x12, 0x0c],
  k: [0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12],
  l: [0x0c, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e],
  m: [0x00, 0x00, 0x1a, 0x15, 0x15, 0x11, 0x11],
  n: [0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11],
  o: [0x00, 0x00, 0x0e, 0x11, 0x11, 0x11, 0x0e],
  p: [0x00, 0x00, 0x1e, 0x11, 0x1e, 0x10, 0x10],
  q: [0x00, 0x00, 0x0d, 0x13, 0x0f, 0x01, 0x01],
  r: [0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10],
  s: [0x00, 0x00, 0x0e, 0x10, 0x0e, 0x01, 0x1e],
  t: [0x08, 0x08, 0x1c, 0x08, 0x08, 0x09, 0x06],
  u: [0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0d],
  v: [0x00, 0x00, 0x11, 0x11, 0x11, 0x0a, 0x04],
  w: [0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0a],
  x: [0x00, 0x00, 0x11, 0x0a, 0x04, 0x0a, 0x11],
  y: [0x00, 0x00, 0x11, 0x11, 0x0f, 0x01, 0x0e],
  z: [0x00, 0x00, 0x1f, 0x02, 0x04, 0x08, 0x1f],
  " ": [0, 0, 0, 0, 0, 0, 0],
  ".": [0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x0c],
  ",": [0x00, 0x00, 0x00, 0x00, 0x0c, 0x04, 0x08],
  ":": [0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x0c, 0x00],
  "-": [0x00, 0x00, 0x00, 0x1f, 0x00, 0x00, 0x00],
  "+": [0x00, 0x04, 0x04, 0x1f, 0x04, 0x04, 0x00],
  "=": [0x00, 0x00, 0x1f, 0x00, 0x1f, 0x00, 0x00],
  "_": [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1f],
  "/": [0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00],
  "(": [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02],
  ")": [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08],
  "[": [0x0e, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0e],
  "]": [0x0e, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0e],
  "%": [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03],
  "@": [0x0e, 0x11, 0x01, 0x0d, 0x15, 0x15, 0x0e],
  "'": [0x04, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00],
  "?": [0x0e, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04],
};

/** Glyph advance in font pixels (5 columns + 1 space). */
const ADVANCE = 6;

// ---------------------------------------------------------------------------------------
// Canvas

/** An RGB raster. */
export interface Raster {
  width: number;
  height: number;
  /** Row-major RGB bytes. */
  rgb: Uint8Array<ArrayBuffer>;
}

type Rgb = readonly [number, number, number];

class Canvas implements Raster {
  readonly rgb: Uint8Array<ArrayBuffer>;
  constructor(readonly width: number, readonly height: number) {
    this.rgb = new Uint8Array(width * height * 3).fill(255);
  }
  set(x: number, y: number, c: Rgb, alpha = 1): void {
    x = Math.round(x);
    y = Math.round(y);
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    const i = (y * this.width + x) * 3;
    for (let k = 0; k < 3; k++) this.rgb[i + k] = Math.round(this.rgb[i + k] * (1 - alpha) + c[k] * alpha);
  }
  rect(x0: number, y0: number, w: number, h: number, c: Rgb): void {
    for (let y = y0; y < y0 + h; y++) for (let x = x0; x < x0 + w; x++) this.set(x, y, c);
  }
  /** A line of the given width (in pixels), clipped to `clip` when given. */
  line(
    x0: number,
    y0: number,
    x1: number,
    y1: number,
    c: Rgb,
    width = 1,
    clip?: [number, number, number, number],
    dash = 0,
  ): void {
    const steps = Math.max(1, Math.ceil(Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0)) * 2));
    const r = (width - 1) / 2;
    for (let s = 0; s <= steps; s++) {
      if (dash > 0 && Math.floor(s / (2 * dash)) % 2 === 1) continue;
      const x = x0 + (x1 - x0) * s / steps, y = y0 + (y1 - y0) * s / steps;
      if (clip && (x < clip[0] || x > clip[2] || y < clip[1] || y > clip[3])) continue;
      for (let dy = -Math.ceil(r); dy <= Math.ceil(r); dy++) {
        for (let dx = -Math.ceil(r); dx <= Math.ceil(r); dx++) {
          if (dx * dx + dy * dy <= r * r + 0.25) this.set(x + dx, y + dy, c);
        }
      }
    }
  }
  /** Draws `text` with its top-left corner at (x, y); `vertical` writes bottom to top. */
  text(x: number, y: number, text: string, c: Rgb, scale = 1, vertical = false): void {
    let pen = 0;
    for (const ch of text) {
      const g = GLYPHS[ch] ?? GLYPHS["?"];
      for (let row = 0; row < 7; row++) {
        for (let col = 0; col < 5; col++) {
          if (!(g[row] & (0x10 >> col))) continue;
          for (let sy = 0; sy < scale; sy++) {
            for (let sx = 0; sx < scale; sx++) {
              const u = (pen + col) * scale + sx, v = row * scale + sy;
              if (vertical) this.set(x + v, y - u, c);
              else this.set(x + u, y + v, c);
            }
          }
        }
      }
      pen += ADVANCE;
    }
  }
}

/** Width in pixels of `text` drawn at `scale`. */
export function textWidth(text: string, scale = 1): number {
  const n = [...text].length;
  return n === 0 ? 0 : (n * ADVANCE - 1) * scale;
}

// ---------------------------------------------------------------------------------------
// Axes

/** "Nice" tick values (1, 2, 5 × 10^k steps) covering [lo, hi], about `count` of them. */
export function niceTicks(lo: number, hi: number, count = 6): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / Math.max(1, count - 1);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const ticks: number[] = [];
  const first = Math.ceil(lo / step - 1e-9);
  for (let k = first; k * step <= hi + step * 1e-9; k++) ticks.push(Number((k * step).toPrecision(12)));
  return ticks;
}

/** A short tick label: "0.25", "1200", "1e-3", "2.5e+4". */
export function tickLabel(v: number): string {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e-3 && a < 1e5) return String(Number(v.toPrecision(6)));
  const [m, e] = v.toExponential().split("e");
  return `${Number(Number(m).toPrecision(4))}e${Number(e)}`;
}

/** A log-axis tick label: "0.1", "1", "100" for 10^-1 … 10^3, "1e-4", "1e+6" beyond. */
export function logTickLabel(v: number): string {
  const e = Math.round(Math.log10(v));
  if (Math.abs(v - 10 ** e) > 1e-9 * v) return tickLabel(v);
  return e >= -1 && e <= 3 ? String(10 ** e).replace(/^0\.1$/, "0.1") : `1e${e > 0 ? "+" : ""}${e}`;
}

/** One line of a plot. */
export interface Series {
  x: ArrayLike<number>;
  y: ArrayLike<number>;
  /** Legend text (series without one get no legend entry). */
  label?: string;
  /** Line colour (default: from a palette, in series order). */
  color?: Rgb;
}

/** Options of {@linkcode linePlot}. */
export interface LinePlotOptions {
  series: Series[];
  xLabel?: string;
  yLabel?: string;
  title?: string;
  /** Logarithmic x axis (base 10; points with x <= 0 are left out). */
  logX?: boolean;
  /** Logarithmic y axis (base 10; points with y <= 0 are left out). */
  logY?: boolean;
  /** Axis ranges (default: the data's range). */
  xRange?: [number, number];
  yRange?: [number, number];
  /** Image size in pixels (default 640×480). */
  width?: number;
  height?: number;
  /** Light grid lines at the ticks (default true). */
  grid?: boolean;
}

/** Colours for series without one (Tableau 10). */
export const PALETTE: readonly Rgb[] = [
  [31, 119, 180],
  [255, 127, 14],
  [44, 160, 44],
  [214, 39, 40],
  [148, 103, 189],
  [140, 86, 75],
  [227, 119, 194],
  [127, 127, 127],
  [188, 189, 34],
  [23, 190, 207],
];

const INK: Rgb = [0, 0, 0];
const GRID: Rgb = [225, 225, 225];

function range(
  values: number[],
  log: boolean,
  fixed: [number, number] | undefined,
  what: string,
): [number, number] {
  let lo = Infinity, hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (fixed) [lo, hi] = fixed;
  if (fixed && !(fixed[1] > fixed[0])) {
    throw new RangeError(`Invalid ${what} range [${fixed}]: expected [low, high] with low < high`);
  }
  if (log && fixed && lo <= 0) {
    throw new RangeError(`Invalid ${what} range [${fixed}]: a log axis needs positive bounds`);
  }
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return log ? [1, 10] : [0, 1];
  if (lo === hi) {
    if (log) return [lo / 10, hi * 10];
    const pad = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    return [lo - pad, hi + pad];
  }
  if (log && !fixed) return [10 ** Math.floor(Math.log10(lo) + 1e-9), 10 ** Math.ceil(Math.log10(hi) - 1e-9)];
  return [lo, hi];
}

function logTicks(lo: number, hi: number): number[] {
  const ticks: number[] = [];
  for (let e = Math.ceil(Math.log10(lo) - 1e-9); e <= Math.floor(Math.log10(hi) + 1e-9); e++) {
    ticks.push(10 ** e);
  }
  if (ticks.length > 12) {
    const every = Math.ceil(ticks.length / 10);
    return ticks.filter((_, i) => i % every === 0);
  }
  return ticks;
}

/** Draws a line plot into an RGB raster (see {@linkcode linePlot} for the PNG). */
export function renderLinePlot(options: LinePlotOptions): Raster {
  const width = options.width ?? 640, height = options.height ?? 480;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 160 || height < 120) {
    throw new RangeError(`Invalid plot size ${width}x${height}: expected integers of at least 160x120`);
  }
  if (options.series.length === 0) throw new RangeError("Cannot draw a line plot: no series given");
  const logX = options.logX ?? false, logY = options.logY ?? false;
  const pts = options.series.map((s, i) => {
    if (s.x.length !== s.y.length) {
      throw new RangeError(
        `Cannot draw series ${i}${
          s.label ? ` "${s.label}"` : ""
        }: ${s.x.length} x values but ${s.y.length} y values`,
      );
    }
    const p: [number, number][] = [];
    for (let k = 0; k < s.x.length; k++) {
      const x = s.x[k], y = s.y[k];
      if (!Number.isFinite(x) || !Number.isFinite(y) || (logX && x <= 0) || (logY && y <= 0)) continue;
      p.push([x, y]);
    }
    return p;
  });
  const xs = pts.flat().map((p) => p[0]), ys = pts.flat().map((p) => p[1]);
  const [x0, x1] = range(xs, logX, options.xRange, "x");
  const [y0, y1] = range(ys, logY, options.yRange, "y");

  const c = new Canvas(width, height);
  const yTicks = logY ? logTicks(y0, y1) : niceTicks(y0, y1, 6);
  const xTicks = logX ? logTicks(x0, x1) : niceTicks(x0, x1, 7);
  const yTickWidth = Math.max(...yTicks.map((t) => textWidth(logY ? logTickLabel(t) : tickLabel(t))));
  const left = 14 + (options.yLabel ? 12 : 0) + yTickWidth + 6;
  const top = options.title ? 30 : 14, right = width - 16, bottom = height - 22 - (options.xLabel ? 14 : 0);
  const fx = (x: number) => {
    const t = logX
      ? (Math.log10(x) - Math.log10(x0)) / (Math.log10(x1) - Math.log10(x0))
      : (x - x0) / (x1 - x0);
    return left + t * (right - left);
  };
  const fy = (y: number) => {
    const t = logY
      ? (Math.log10(y) - Math.log10(y0)) / (Math.log10(y1) - Math.log10(y0))
      : (y - y0) / (y1 - y0);
    return bottom - t * (bottom - top);
  };
  const clip: [number, number, number, number] = [left, top, right, bottom];

  for (const t of yTicks) {
    const y = Math.round(fy(t));
    if (y < top - 0.5 || y > bottom + 0.5) continue;
    if (options.grid !== false) c.line(left, y, right, y, GRID);
    c.line(left - 4, y, left, y, INK);
    const s = logY ? logTickLabel(t) : tickLabel(t);
    c.text(left - 6 - textWidth(s), y - 3, s, INK);
  }
  for (const t of xTicks) {
    const x = Math.round(fx(t));
    if (x < left - 0.5 || x > right + 0.5) continue;
    if (options.grid !== false) c.line(x, top, x, bottom, GRID);
    c.line(x, bottom, x, bottom + 4, INK);
    const s = logX ? logTickLabel(t) : tickLabel(t);
    c.text(Math.round(x - textWidth(s) / 2), bottom + 7, s, INK);
  }
  c.line(left, top, left, bottom, INK);
  c.line(left, bottom, right, bottom, INK);
  c.line(right, top, right, bottom, INK);
  c.line(left, top, right, top, INK);

  if (options.title) {
    c.text(Math.round((left + right - textWidth(options.title, 2)) / 2), 8, options.title, INK, 2);
  }
  if (options.xLabel) {
    c.text(Math.round((left + right - textWidth(options.xLabel)) / 2), height - 12, options.xLabel, INK);
  }
  if (options.yLabel) {
    c.text(6, Math.round((top + bottom + textWidth(options.yLabel)) / 2), options.yLabel, INK, 1, true);
  }

  options.series.forEach((s, i) => {
    const colour = s.color ?? PALETTE[i % PALETTE.length];
    const p = pts[i];
    if (p.length === 1) c.rect(Math.round(fx(p[0][0])) - 1, Math.round(fy(p[0][1])) - 1, 3, 3, colour);
    for (let k = 1; k < p.length; k++) {
      c.line(fx(p[k - 1][0]), fy(p[k - 1][1]), fx(p[k][0]), fy(p[k][1]), colour, 2, clip);
    }
  });

  const labelled = options.series.map((s, i) => ({ s, i })).filter(({ s }) => s.label);
  if (labelled.length > 0) {
    const w = Math.max(...labelled.map(({ s }) => textWidth(s.label!))) + 30;
    const h = labelled.length * 12 + 6;
    const lx = right - w - 6, ly = bottom - h - 6;
    c.rect(lx, ly, w, h, [255, 255, 255]);
    c.line(lx, ly, lx + w, ly, GRID);
    c.line(lx, ly + h, lx + w, ly + h, GRID);
    c.line(lx, ly, lx, ly + h, GRID);
    c.line(lx + w, ly, lx + w, ly + h, GRID);
    labelled.forEach(({ s, i }, k) => {
      const y = ly + 6 + k * 12;
      c.line(lx + 5, y + 3, lx + 20, y + 3, s.color ?? PALETTE[i % PALETTE.length], 2);
      c.text(lx + 25, y, s.label!, INK);
    });
  }
  return c;
}

/**
 * Draws line plots (simple axes, ticks, labels, a legend) and returns the PNG bytes.
 * Text uses a built-in 5×7 font (ASCII letters, digits and common punctuation).
 */
export async function linePlot(options: LinePlotOptions): Promise<Uint8Array<ArrayBuffer>> {
  const r = renderLinePlot(options);
  return await encodePng(r.rgb, r.width, r.height, 3);
}
