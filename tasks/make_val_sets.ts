/**
 * Writes the shipped verification sets from the raw face data of a development machine:
 *
 * - `data/orl_val.bin`: ORL identities s31–s40 (never in `data/orl/train.rec`), each image
 *   padded to 112×112 exactly as `train.rec` was packed (`fitImage(…, "pad")`, JPEG quality
 *   90); all 450 same-person pairs and 450 seeded different-person pairs, 10 balanced folds.
 * - `data/lfw_subset.bin`: the 1,200 pairs of LFW View 2 folds 1–2 (LFW-a images, 250×250
 *   greyscale), each image centre-cropped to 144×144, resized to 112×112 (JPEG quality 75); ordered so that
 *   every tenth of the list holds 60 same and 60 different pairs.
 *
 * ```sh
 * deno run -A tasks/make_val_sets.ts [--source ../shared/data] [--out data] [--only orl|lfw]
 * ```
 *
 * The source folder exists on development machines only; tests read the files this writes,
 * never the source. Re-running it writes byte-identical files.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { decodeImage, encodeJpeg, imageInfo, resizeImage } from "../lib/image.ts";
import { fitImage } from "../lib/pack.ts";
import { writeBin } from "../lib/verification.ts";

/** The seed of the different-person pair choice and of the fold shuffle (arcface_torch's default seed). */
export const SEED = 2048;

/** ORL identities of the verification set (the training set holds s1–s30). */
export const ORL_IDENTITIES: readonly string[] = Array.from({ length: 10 }, (_, i) => `s${31 + i}`);

/** JPEG quality of the ORL images (the quality `data/orl/train.rec` was packed with). */
export const QUALITY = 90;

/** JPEG quality of the LFW images (75 keeps the 1,583 images under 4 MB). */
export const LFW_QUALITY = 75;

/** Side of the centre crop taken from each 250×250 LFW-a image before resizing to 112×112. */
export const LFW_CROP = 144;

/** A pair of images by index into an image list. */
export interface Pair {
  a: number;
  b: number;
  same: boolean;
}

/** mulberry32: a small, fast, seeded 32-bit generator returning floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** Fisher–Yates shuffle in place with `rand`. */
export function shuffle<T>(xs: T[], rand: () => number): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [xs[i], xs[j]] = [xs[j], xs[i]];
  }
  return xs;
}

/**
 * The ORL pairs for `people` identities of `perPerson` images each (image p·perPerson + i is
 * image i of person p): every same-person pair, and for every two people `perPerson`
 * different-person pairs that use each image of both once (a seeded permutation). With 10
 * people of 10 images that is 450 + 450 pairs. Returned in 10 folds: each fold holds an
 * equal share of the same pairs, then of the different pairs (both shuffled with the seed).
 */
export function orlPairs(people: number, perPerson: number, seed = SEED, folds = 10): Pair[] {
  const rand = mulberry32(seed);
  const same: Pair[] = [], diff: Pair[] = [];
  for (let p = 0; p < people; p++) {
    for (let i = 0; i < perPerson; i++) {
      for (let j = i + 1; j < perPerson; j++) {
        same.push({ a: p * perPerson + i, b: p * perPerson + j, same: true });
      }
    }
  }
  for (let p = 0; p < people; p++) {
    for (let q = p + 1; q < people; q++) {
      const perm = shuffle(Array.from({ length: perPerson }, (_, i) => i), rand);
      for (let i = 0; i < perPerson; i++) {
        diff.push({ a: p * perPerson + i, b: q * perPerson + perm[i], same: false });
      }
    }
  }
  shuffle(same, rand);
  shuffle(diff, rand);
  if (same.length % folds !== 0 || diff.length % folds !== 0) {
    throw new RangeError(
      `Cannot split ${same.length} same and ${diff.length} different pairs into ${folds} equal folds`,
    );
  }
  const s = same.length / folds, d = diff.length / folds;
  const out: Pair[] = [];
  for (let f = 0; f < folds; f++) {
    out.push(...same.slice(f * s, (f + 1) * s), ...diff.slice(f * d, (f + 1) * d));
  }
  return out;
}

/** One line of an LFW pair list. */
export interface LfwPair {
  name1: string;
  image1: number;
  name2: string;
  image2: number;
  same: boolean;
}

/**
 * Reads an LFW pair list (`pairs.txt` layout: a header "folds<TAB>n", then per fold n same
 * pairs "name i j" and n different pairs "name1 i name2 j"). Returns the folds in file order.
 */
export function parseLfwPairs(text: string, source = "pairs.txt"): LfwPair[][] {
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== "");
  const head = lines[0]?.trim().split(/\s+/).map(Number) ?? [];
  if (head.length !== 2 || !head.every((v) => Number.isInteger(v) && v > 0)) {
    throw new Error(`Cannot read LFW pairs "${source}": the first line is not "folds<TAB>pairs per kind"`);
  }
  const [nfolds, n] = head;
  if (lines.length - 1 !== nfolds * 2 * n) {
    throw new Error(
      `Cannot read LFW pairs "${source}": ${
        lines.length - 1
      } pair lines, the header promises ${nfolds}×2×${n} = ${nfolds * 2 * n}`,
    );
  }
  const folds: LfwPair[][] = [];
  for (let f = 0; f < nfolds; f++) {
    const fold: LfwPair[] = [];
    for (let k = 0; k < 2 * n; k++) {
      const lineNo = 2 + f * 2 * n + k;
      const t = lines[lineNo - 1].trim().split(/\s+/);
      const same = k < n;
      const ok = same ? t.length === 3 : t.length === 4;
      if (!ok) {
        throw new Error(
          `Cannot read LFW pairs "${source}": line ${lineNo} should be a ${
            same ? 'same-person pair "name i j"' : 'different-person pair "name1 i name2 j"'
          }, found "${t.join(" ")}"`,
        );
      }
      fold.push(
        same
          ? { name1: t[0], image1: Number(t[1]), name2: t[0], image2: Number(t[2]), same }
          : { name1: t[0], image1: Number(t[1]), name2: t[2], image2: Number(t[3]), same },
      );
    }
    folds.push(fold);
  }
  return folds;
}

/**
 * Orders the pairs of several official folds so that each of `tenths` contiguous parts holds
 * the same number of same and of different pairs from every official fold: part k takes the
 * k-th slice of each fold's same pairs, then of its different pairs, fold by fold (for LFW
 * folds 1–2: 30 same + 30 different from fold 1, then 30 + 30 from fold 2).
 */
export function balancedOrder<T extends { same: boolean }>(folds: T[][], tenths = 10): T[] {
  const parts = folds.map((fold) => {
    const same = fold.filter((p) => p.same), diff = fold.filter((p) => !p.same);
    if (same.length % tenths !== 0 || diff.length % tenths !== 0) {
      throw new RangeError(
        `Cannot order ${same.length} same and ${diff.length} different pairs into ${tenths} equal parts`,
      );
    }
    return { same, diff };
  });
  const out: T[] = [];
  for (let k = 0; k < tenths; k++) {
    for (const { same, diff } of parts) {
      const s = same.length / tenths, d = diff.length / tenths;
      out.push(...same.slice(k * s, (k + 1) * s), ...diff.slice(k * d, (k + 1) * d));
    }
  }
  return out;
}

/** Path of image `i` (1-based) of `name` in an LFW tree. */
export function lfwImagePath(root: string, name: string, i: number): string {
  return `${root}/lfw/${name}/${name}_${String(i).padStart(4, "0")}.jpg`;
}

/** Centre-crops an encoded image to `crop`×`crop` and resizes it to `size`×`size` RGB. */
export function centreCrop(
  bytes: Uint8Array<ArrayBuffer>,
  crop: number,
  size = 112,
): Uint8Array<ArrayBuffer> {
  const { width, height } = imageInfo(bytes);
  if (width < crop || height < crop) {
    throw new RangeError(`Cannot crop ${crop}x${crop} from a ${width}x${height} image`);
  }
  const rgb = decodeImage(bytes, width, height);
  return resizeImage(rgb, width, height, size, size, {
    x: (width - crop) >> 1,
    y: (height - crop) >> 1,
    width: crop,
    height: crop,
  });
}

async function readSource(path: string): Promise<Uint8Array<ArrayBuffer>> {
  try {
    return await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error(
        `Cannot make the verification sets: "${path}" does not exist (pass --source <data folder>)`,
        {
          cause: e,
        },
      );
    }
    throw e;
  }
}

/** Writes `<out>/orl_val.bin`; returns a one-line summary. */
export async function makeOrl(source: string, out: string): Promise<string> {
  const images: Uint8Array[] = [];
  for (const id of ORL_IDENTITIES) {
    for (let i = 1; i <= 10; i++) {
      const rgb = fitImage(await readSource(`${source}/orl_faces/${id}/${i}.pgm`), 112, "pad");
      images.push(encodeJpeg(rgb, 112, 112, QUALITY));
    }
  }
  const pairs = orlPairs(ORL_IDENTITIES.length, 10);
  const path = `${out}/orl_val.bin`;
  // The same image object appears in many pairs; the pickle stores it once (memo).
  await writeBin(path, pairs.flatMap((p) => [images[p.a], images[p.b]]), pairs.map((p) => p.same));
  const size = (await Deno.stat(path)).size;
  return `${path}: ${pairs.length} pairs (${
    pairs.filter((p) => p.same).length
  } same) of ${images.length} images ` +
    `(ORL ${ORL_IDENTITIES[0]}-${ORL_IDENTITIES.at(-1)}, 92x112 padded to 112x112 as data/orl/train.rec), ` +
    `${(size / 1024).toFixed(0)} KiB`;
}

/** Writes `<out>/lfw_subset.bin`; returns a one-line summary. */
export async function makeLfw(source: string, out: string): Promise<string> {
  const root = `${source}/lfw_a_subset`;
  const list = `${root}/pairs_folds1-2.txt`;
  const folds = parseLfwPairs(new TextDecoder().decode(await readSource(list)), list);
  const pairs = balancedOrder(folds);
  const cache = new Map<string, Uint8Array>();
  const image = async (name: string, i: number) => {
    const path = lfwImagePath(root, name, i);
    let jpeg = cache.get(path);
    if (!jpeg) {
      jpeg = encodeJpeg(centreCrop(await readSource(path), LFW_CROP), 112, 112, LFW_QUALITY);
      cache.set(path, jpeg);
    }
    return jpeg;
  };
  const images: Uint8Array[] = [];
  for (const p of pairs) images.push(await image(p.name1, p.image1), await image(p.name2, p.image2));
  const path = `${out}/lfw_subset.bin`;
  await writeBin(path, images, pairs.map((p) => p.same));
  const size = (await Deno.stat(path)).size;
  return `${path}: ${pairs.length} pairs (${
    pairs.filter((p) => p.same).length
  } same) of ${cache.size} images ` +
    `(LFW-a View 2 folds 1-2; 250x250 centre-cropped to ${LFW_CROP}x${LFW_CROP}, resized to 112x112, JPEG quality ${LFW_QUALITY}; ` +
    `each tenth 60 same + 60 different), ${(size / 1024).toFixed(0)} KiB`;
}

const USAGE = `Usage: deno run -A tasks/make_val_sets.ts [--source DIR] [--out DIR] [--only orl|lfw]

Writes data/orl_val.bin (ORL s31-s40) and data/lfw_subset.bin (LFW folds 1-2) from
DIR/orl_faces and DIR/lfw_a_subset (default DIR: ../shared/data beside the checkout).`;

/** Runs the task; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        source: { type: "string", default: `${root}/../shared/data` },
        out: { type: "string", default: `${root}/data` },
        only: { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
    }));
  } catch (e) {
    console.error(`${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (values.only !== undefined && !["orl", "lfw"].includes(values.only)) {
    console.error(`Invalid --only "${values.only}": expected "orl" or "lfw"`);
    return 2;
  }
  try {
    if (values.only !== "lfw") console.log(await makeOrl(values.source, values.out));
    if (values.only !== "orl") console.log(await makeLfw(values.source, values.out));
    return 0;
  } catch (e) {
    console.error((e as Error).message);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
