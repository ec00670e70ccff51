/**
 * Packs labelled images into an insightface RecordIO dataset: record 0 is the meta record
 * (labels [first identity key, end key]), records 1..N the images grouped by label (scalar
 * label, JPEG), then one identity record per class (labels [first image key, end key)).
 *
 * @module
 */
import { decodeImage, encodeJpeg, imageInfo, resizeImage } from "./image.ts";
import { indexPathFor, packRecord, RecordWriter } from "./data.ts";
import { writeAtomic } from "./export/state_dict.ts";

/** One image to pack. */
export interface PackItem {
  path: string;
  label: number;
}

/** How an image of another shape becomes size×size. */
export type Fit = "resize" | "crop" | "pad";

/** Options of {@link pack}. */
export interface PackOptions {
  /** Output side (default 112). */
  size?: number;
  /** "resize" stretches, "crop" scales the short side then centre-crops, "pad" scales the long
   * side then centres on black (default "resize"). */
  fit?: Fit;
  /** JPEG quality 1..100 (default 95). */
  quality?: number;
  /** Called after each image with (done, total). */
  progress?: (done: number, total: number) => void;
}

const IMAGE = /\.(jpe?g|png|pgm|ppm|pnm)$/i;
const natural = (a: string, b: string) => a.localeCompare(b, "en", { numeric: true });

/** Lists an image folder: one sub-folder per identity, labels by natural order of names (s2 before s10). */
export function listFolder(root: string): PackItem[] {
  const classes = [...Deno.readDirSync(root)].filter((e) => e.isDirectory).map((e) => e.name).sort(natural);
  const items: PackItem[] = [];
  classes.forEach((c, label) => {
    const files = [...Deno.readDirSync(`${root}/${c}`)].filter((e) => e.isFile && IMAGE.test(e.name)).map((
      e,
    ) => e.name).sort(natural);
    for (const f of files) items.push({ path: `${root}/${c}/${f}`, label });
  });
  if (items.length === 0) {
    throw new Error(
      `Cannot pack "${root}": no images in sub-folders (expected <root>/<identity>/<image>.jpg)`,
    );
  }
  return items;
}

/**
 * Reads a list file: MXNet im2rec lines `index<TAB>label<TAB>path`, or `path label`
 * lines. Relative paths are taken from the list file's folder.
 */
export function readList(file: string): PackItem[] {
  const dir = file.includes("/") ? file.slice(0, file.lastIndexOf("/")) : ".";
  const items: PackItem[] = [];
  Deno.readTextFileSync(file).split("\n").forEach((line, i) => {
    if (line.trim() === "" || line.startsWith("#")) return;
    const f = line.includes("\t") ? line.split("\t").map((s) => s.trim()) : line.trim().split(/\s+/);
    const [path, label] = f.length >= 3 ? [f[f.length - 1], f[1]] : [f[0], f[1]];
    const n = Number(label);
    if (f.length < 2 || !Number.isInteger(n) || n < 0) {
      throw new Error(
        `Cannot read list "${file}": line ${
          i + 1
        } is not "index<TAB>label<TAB>path" or "path label" with a label >= 0`,
      );
    }
    items.push({ path: path.startsWith("/") ? path : `${dir}/${path}`, label: n });
  });
  if (items.length === 0) throw new Error(`Cannot pack "${file}": the list is empty`);
  return items;
}

/** Decodes an image file and fits it to size×size RGB. */
export function fitImage(bytes: Uint8Array<ArrayBuffer>, size: number, fit: Fit): Uint8Array<ArrayBuffer> {
  const { width, height } = imageInfo(bytes);
  return fitRgb(decodeImage(bytes, width, height), width, height, size, fit);
}

function fitRgb(
  rgb: Uint8Array<ArrayBuffer>,
  w: number,
  h: number,
  size: number,
  fit: Fit,
): Uint8Array<ArrayBuffer> {
  if (w === size && h === size) return rgb;
  if (fit === "resize") return resizeImage(rgb, w, h, size, size);
  if (fit === "crop") {
    const side = Math.min(w, h);
    return resizeImage(rgb, w, h, size, size, {
      x: (w - side) >> 1,
      y: (h - side) >> 1,
      width: side,
      height: side,
    });
  }
  const scale = size / Math.max(w, h);
  const sw = Math.max(1, Math.round(w * scale)), sh = Math.max(1, Math.round(h * scale));
  const scaled = sw === w && sh === h ? rgb : resizeImage(rgb, w, h, sw, sh);
  const out = new Uint8Array(size * size * 3);
  const x0 = (size - sw) >> 1, y0 = (size - sh) >> 1;
  for (let y = 0; y < sh; y++) {
    out.set(scaled.subarray(y * sw * 3, (y + 1) * sw * 3), ((y0 + y) * size + x0) * 3);
  }
  return out;
}

/**
 * Writes `items` to `recPath` (and its `.idx`, and `property` beside them) in the
 * insightface layout. The files appear only when everything was written (temp files
 * renamed at the end).
 * Returns the numbers of images and identities written.
 */
export async function pack(
  items: PackItem[],
  recPath: string,
  options: PackOptions = {},
): Promise<{ images: number; identities: number }> {
  const size = options.size ?? 112, quality = options.quality ?? 95, fit = options.fit ?? "resize";
  if (!Number.isInteger(size) || size < 1 || size > 4096) {
    throw new RangeError(`Invalid size ${size}: expected 1..4096`);
  }
  if (!["resize", "crop", "pad"].includes(fit)) {
    throw new RangeError(`Invalid fit "${fit}": expected "resize", "crop" or "pad"`);
  }
  // Images grouped by label, file order kept within a label; labels renumbered 0..K-1.
  const byLabel = [...items].sort((a, b) => a.label - b.label);
  const distinct = [...new Set(byLabel.map((i) => i.label))];
  const classOf = new Map(distinct.map((l, k) => [l, k]));
  const n = byLabel.length, k = distinct.length;
  using writer = RecordWriter.create(recPath, indexPathFor(recPath));
  writer.write(0, packRecord([n + 1, n + 1 + k]));
  const ranges: [number, number][] = distinct.map(() => [0, 0]);
  for (let i = 0; i < n; i++) {
    const item = byLabel[i];
    let rgb: Uint8Array<ArrayBuffer>;
    try {
      rgb = fitImage(await Deno.readFile(item.path), size, fit);
    } catch (e) {
      throw new Error(`Cannot pack "${item.path}": ${(e as Error).message}`, { cause: e });
    }
    const c = classOf.get(item.label)!;
    if (ranges[c][1] === 0) ranges[c][0] = i + 1;
    ranges[c][1] = i + 2;
    writer.write(i + 1, packRecord(c, encodeJpeg(rgb, size, size, quality), BigInt(i + 1)));
    options.progress?.(i + 1, n);
  }
  ranges.forEach(([a, b], c) => writer.write(n + 1 + c, packRecord([a, b])));
  writer.finish();
  // insightface's folders also carry "identities,height,width" in a `property` file.
  const folder = recPath.includes("/") ? recPath.slice(0, recPath.lastIndexOf("/")) : ".";
  await writeAtomic(`${folder}/property`, new TextEncoder().encode(`${k},${size},${size}\n`));
  return { images: n, identities: k };
}
