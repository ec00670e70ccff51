/**
 * Face verification on insightface `.bin` sets (LFW, CFP-FP, AgeDB-30, …), as arcface_torch's
 * `eval/verification.py` computes it.
 *
 * A `.bin` is a pickle (Python 2 or 3) of `(list of encoded images, list of bool)`: pair i is
 * images 2i and 2i+1, and `issame[i]` says whether they show the same person. Each image
 * and its horizontal flip are embedded; the two embeddings are summed and L2-normalised; the
 * squared L2 distance of each pair is scored by the 10-fold protocol of
 * {@linkcode kfoldAccuracy}. The plain accuracy (no flip) is computed the same way.
 *
 * @example
 * ```ts
 * import { Model } from "./model.ts";
 * const full = await readBin("data/orl_val.bin"); // lfw.bin, cfp_fp.bin, agedb_30.bin alike
 * const set = decodeSet({ name: "orl", images: full.images.slice(0, 80), issame: full.issame.slice(0, 40) });
 * using model = Model.create({ network: "mbf", maxBatch: 40 }); // or Model.load("model.safetensors")
 * const result = await verify(set, (x, n) => model.forward(x, n), { batchSize: 40 });
 * console.log(result.flip.accuracy, result.flip.std, result.xnorm);
 * ```
 *
 * @module
 */
import { AfcError, Status } from "../ffi/status.ts";
import { decodeImage, imageInfo } from "./image.ts";
import { isTuple, pickle, PickleError, tuple, unpickle } from "./pickle.ts";
import {
  equalErrorRate,
  kfold,
  kfoldAccuracy,
  normalizeRows,
  pairDistances,
  type Roc,
  rocAuc,
  rocCurve,
  type ValAtFar,
  valAtFar,
} from "./verification_metrics.ts";

export * from "./verification_metrics.ts";

/** An encoded verification set, as stored in a `.bin`. */
export interface VerificationSet {
  /** The set's name ("lfw" for `lfw.bin`). */
  name: string;
  /** Encoded images (JPEG, PNG, PGM/PPM), two per pair: pair i is images 2i and 2i+1. */
  images: Uint8Array[];
  /** One label per pair: true when both images show the same person. */
  issame: boolean[];
}

/** The set's name from a path: the file name without `.bin`. */
export function setName(path: string): string {
  return path.split(/[\\/]/).pop()!.replace(/\.bin$/i, "");
}

function describeValue(v: unknown): string {
  if (v === null) return "None";
  if (v instanceof Uint8Array) return `bytes of length ${v.length}`;
  if (v instanceof Map) return `a dict of ${v.size} items`;
  if (Array.isArray(v)) return `${isTuple(v) ? "a tuple" : "a list"} of ${v.length} items`;
  if (typeof v === "object") return `a ${(v as object).constructor?.name ?? "object"}`;
  return `${typeof v} ${String(v).slice(0, 40)}`;
}

/**
 * Reads a `.bin` from bytes. `source` names the file in error messages. Image bytes are
 * views into `bytes`.
 */
export function parseBin(bytes: Uint8Array, source = "<buffer>"): VerificationSet {
  const fail = (what: string): never => {
    throw new AfcError(`Cannot read verification set "${source}": ${what}`, Status.FORMAT);
  };
  let value: unknown;
  try {
    value = unpickle(bytes);
  } catch (e) {
    if (e instanceof PickleError) fail(e.message.replace(/^Cannot unpickle: /, "not a valid pickle, "));
    throw e;
  }
  if (!Array.isArray(value) || value.length !== 2) {
    fail(`expected a pickled (images, issame) pair, found ${describeValue(value)}`);
  }
  const [images, labels] = value as unknown[];
  if (!Array.isArray(images)) fail(`expected a list of encoded images first, found ${describeValue(images)}`);
  if (!Array.isArray(labels)) fail(`expected a list of bool second, found ${describeValue(labels)}`);
  const imgs = images as unknown[], labs = labels as unknown[];
  imgs.forEach((img, i) => {
    if (!(img instanceof Uint8Array)) fail(`image ${i} is ${describeValue(img)}, expected bytes`);
  });
  const issame = labs.map((l, i) => {
    if (typeof l === "boolean") return l;
    if (l === 0 || l === 1) return l === 1;
    return fail(`label ${i} is ${describeValue(l)}, expected a bool`);
  });
  if (imgs.length !== 2 * issame.length) {
    fail(
      `${imgs.length} images for ${issame.length} pairs, expected ${2 * issame.length} (two images per pair)`,
    );
  }
  return { name: setName(source), images: imgs as Uint8Array[], issame };
}

/** Reads a `.bin` file (Python 2 or 3 pickle). *
 * @example
 * ```ts
 * import { readBin } from "./verification.ts";
 * const { images, issame } = await readBin("data/orl_val.bin");
 * console.log(images.length, issame.length); // 1800 900
 * ```
 */
export async function readBin(path: string): Promise<VerificationSet> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new AfcError(`Cannot read verification set "${path}": no such file`, Status.NOT_FOUND, {
        cause: e,
      });
    }
    throw e;
  }
  const set = parseBin(bytes, path);
  return set;
}

/** Options of {@linkcode encodeBin}. */
export interface WriteBinOptions {
  /** Pickle protocol (default 4, readable by Python 3.4+; 2 is readable by Python 2 as well). */
  protocol?: 2 | 3 | 4 | 5;
}

/** Encodes images and labels as `.bin` bytes. */
export function encodeBin(
  images: readonly Uint8Array[],
  issame: readonly boolean[],
  options: WriteBinOptions = {},
): Uint8Array<ArrayBuffer> {
  if (images.length !== 2 * issame.length) {
    throw new RangeError(
      `Cannot write a verification set: ${images.length} images for ${issame.length} pairs, expected ${
        2 * issame.length
      }`,
    );
  }
  return pickle(tuple([...images], [...issame]), { protocol: options.protocol ?? 4 });
}

/** Writes a `.bin` file atomically (temp file, then rename). *
 * @example
 * ```ts
 * import { readBin, writeBin } from "./verification.ts";
 * const { images, issame } = await readBin("data/orl_val.bin");
 * const path = await Deno.makeTempFile({ suffix: ".bin" });
 * await writeBin(path, images.slice(0, 4), issame.slice(0, 2));
 * console.log((await readBin(path)).issame); // [ true, true ]
 * ```
 */
export async function writeBin(
  path: string,
  images: readonly Uint8Array[],
  issame: readonly boolean[],
  options: WriteBinOptions = {},
): Promise<void> {
  const bytes = encodeBin(images, issame, options);
  const tmp = `${path}.${Deno.pid}.tmp`;
  try {
    await Deno.writeFile(tmp, bytes);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

/** A verification set decoded to RGB pixels. */
export interface DecodedSet {
  name: string;
  /** Image count (2 × pairs). */
  count: number;
  /** Image side (images are size × size × 3). */
  size: number;
  /** RGB pixels, row-major HWC, `count` images one after another. */
  pixels: Uint8Array<ArrayBuffer>;
  issame: boolean[];
  /** Images whose stored size differed from `size` and were resized. */
  resized: number;
  /** Greyscale images expanded to three channels. */
  grey: number;
}

/** Options of {@linkcode decodeSet}. */
export interface DecodeOptions {
  /** The model's input side (default 112). */
  size?: number;
  /** Resize images of another size bilinearly (default true); false refuses them. */
  resize?: boolean;
}

/** Decodes every image of a set to `size`×`size` RGB (greyscale becomes three channels). *
 * @example
 * ```ts
 * import { decodeSet, readBin } from "./verification.ts";
 * const set = decodeSet(await readBin("data/orl_val.bin"));
 * console.log(set.count, set.size, set.pixels.length); // 1800 112 …
 * ```
 */
export function decodeSet(set: VerificationSet, options: DecodeOptions = {}): DecodedSet {
  const size = options.size ?? 112;
  if (!Number.isInteger(size) || size < 1) {
    throw new RangeError(`Invalid image size ${size}: expected a positive integer`);
  }
  const plane = size * size * 3;
  const pixels = new Uint8Array(set.images.length * plane);
  let resized = 0, grey = 0;
  set.images.forEach((img, i) => {
    const bytes = img as Uint8Array<ArrayBuffer>;
    let info;
    try {
      info = imageInfo(bytes);
    } catch (e) {
      throw new AfcError(
        `Cannot decode image ${i} of "${set.name}": ${(e as Error).message}`,
        (e as AfcError).status ?? Status.FORMAT,
        { cause: e },
      );
    }
    if (info.width !== size || info.height !== size) {
      if (options.resize === false) {
        throw new AfcError(
          `Cannot use image ${i} of "${set.name}": it is ${info.width}x${info.height}, the model input is ${size}x${size} (allow resizing to scale it)`,
          Status.SHAPE,
        );
      }
      resized++;
    }
    if (info.channels === 1) grey++;
    pixels.set(decodeImage(bytes, size, size), i * plane);
  });
  return { name: set.name, count: set.images.length, size, pixels, issame: set.issame, resized, grey };
}

/**
 * A model's embedding function: `n` images as float32 NCHW (n×3×size×size), scaled as the
 * seed does, `((x / 255) - 0.5) / 0.5`, in; n×dim float32 embeddings out.
 */
export type EmbedFn = (images: Float32Array<ArrayBuffer>, n: number) => Promise<Float32Array>;

// ((x / 255) - 0.5) / 0.5 in float32, exactly as the seed's tensor arithmetic rounds it.
const SCALE = Float32Array.from(
  { length: 256 },
  (_, x) => Math.fround(Math.fround(Math.fround(x / 255) - 0.5) / 0.5),
);

/** Converts images [first, first+n) of HWC uint8 pixels to scaled NCHW float32, optionally mirrored. */
export function toInput(
  pixels: Uint8Array,
  size: number,
  first: number,
  n: number,
  flip: boolean,
  out: Float32Array = new Float32Array(n * 3 * size * size),
): Float32Array<ArrayBuffer> {
  const plane = size * size;
  for (let i = 0; i < n; i++) {
    const src = (first + i) * plane * 3, dst = i * plane * 3;
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const sx = flip ? size - 1 - x : x;
        const s = src + (y * size + sx) * 3, d = dst + y * size + x;
        out[d] = SCALE[pixels[s]];
        out[d + plane] = SCALE[pixels[s + 1]];
        out[d + 2 * plane] = SCALE[pixels[s + 2]];
      }
    }
  }
  return out as Float32Array<ArrayBuffer>;
}

/** Embeddings of a set: plain images and their horizontal flips, each count×dim. */
export interface SetEmbeddings {
  plain: Float32Array;
  flip: Float32Array;
  dim: number;
}

/** Options of {@linkcode embedSet}. */
export interface EmbedOptions {
  /** Images per call of the embedding function (default 64; capped at the set size). */
  batchSize?: number;
  /** Called after each batch with the images done and the total (plain and flipped). */
  onProgress?: (done: number, total: number) => void;
  /**
   * Only images [start, end) (default all), the other rows staying 0, so that ranks can
   * share a set: each embeds its part, and a sum over the ranks gives every row.
   */
  images?: { start: number; end: number };
}

/** Runs the embedding function over every image and its flip. */
export async function embedSet(
  set: DecodedSet,
  embed: EmbedFn,
  options: EmbedOptions = {},
): Promise<SetEmbeddings> {
  const batch = Math.min(options.batchSize ?? 64, set.count);
  if (!Number.isInteger(batch) || batch < 1) {
    throw new RangeError(`Invalid batch size ${options.batchSize}: expected a positive integer`);
  }
  const { start, end } = options.images ?? { start: 0, end: set.count };
  if (!(Number.isInteger(start) && Number.isInteger(end) && 0 <= start && start <= end && end <= set.count)) {
    throw new RangeError(`Invalid image range [${start}, ${end}): expected a range within [0, ${set.count})`);
  }
  let dim = 0;
  let plain = new Float32Array(0), flip = new Float32Array(0);
  const input = new Float32Array(batch * 3 * set.size * set.size);
  let done = 0;
  for (let first = start; first < end; first += batch) {
    const n = Math.min(batch, end - first);
    for (const mirrored of [false, true]) {
      const x = toInput(set.pixels, set.size, first, n, mirrored, input).subarray(
        0,
        n * 3 * set.size * set.size,
      );
      const out = await embed(x as Float32Array<ArrayBuffer>, n);
      if (dim === 0) {
        if (out.length === 0 || out.length % n !== 0) {
          throw new RangeError(
            `Cannot embed "${set.name}": the model returned ${out.length} values for ${n} images`,
          );
        }
        dim = out.length / n;
        plain = new Float32Array(set.count * dim);
        flip = new Float32Array(set.count * dim);
      } else if (out.length !== n * dim) {
        throw new RangeError(
          `Cannot embed "${set.name}": the model returned ${out.length} values for ${n} images, expected ${
            n * dim
          }`,
        );
      }
      for (let i = 0; i < out.length; i++) {
        if (!Number.isFinite(out[i])) {
          throw new AfcError(
            `Cannot evaluate "${set.name}": the model produced non-finite embeddings (${out[i]} for image ${
              first + Math.floor(i / dim)
            }${mirrored ? ", flipped" : ""}); the model has probably diverged`,
            Status.NUMERIC,
          );
        }
      }
      (mirrored ? flip : plain).set(out.subarray(0, n * dim), first * dim);
      done += n;
      options.onProgress?.(done, 2 * (end - start));
    }
  }
  return { plain, flip, dim };
}

/** Accuracy figures of one embedding variant (plain or flip-summed). */
export interface AccuracyFigures {
  /** Mean 10-fold accuracy and its population standard deviation. */
  accuracy: number;
  std: number;
  foldAccuracy: number[];
  /** The threshold chosen on the training folds, per fold. */
  bestThreshold: number[];
  /** Equal error rate and ROC AUC over all pairs (NaN when only one kind of pair exists). */
  eer: number;
  auc: number;
  /** VAL (TAR) at FAR 1e-3 and 1e-2 over all pairs (thresholds 0 to 4 in steps of 0.001). */
  tar: ValAtFar[];
  /** The exact ROC over all pairs (undefined when only one kind of pair exists). */
  roc?: Roc;
}

/** The result of {@linkcode verify} on one set. */
export interface VerificationResult {
  name: string;
  pairs: number;
  folds: number;
  /** Mean L2 norm of the un-normalised embeddings (plain and flipped), as the seed's XNorm. */
  xnorm: number;
  /** Without the flip. */
  plain: AccuracyFigures;
  /** Image + flip embeddings summed (the seed's Accuracy-Flip). */
  flip: AccuracyFigures;
  /** Things the caller should show the user (fewer folds, unbalanced folds, unreached FAR). */
  warnings: string[];
}

/** Options of {@linkcode evaluateEmbeddings}. */
export interface EvaluateOptions {
  /** Folds (default 10). Fewer pairs than folds: one pair per fold, with a warning. */
  folds?: number;
  /** FAR targets for VAL (default [1e-3, 1e-2]). */
  farTargets?: number[];
}

/** Scores precomputed embeddings (count×dim each, count = 2 × pairs) of a set. */
export function evaluateEmbeddings(
  name: string,
  emb: SetEmbeddings,
  issame: readonly boolean[],
  options: EvaluateOptions = {},
): VerificationResult {
  const pairs = issame.length, count = 2 * pairs, { dim } = emb;
  if (emb.plain.length !== count * dim || emb.flip.length !== count * dim) {
    throw new RangeError(
      `Cannot evaluate "${name}": ${emb.plain.length / dim} embeddings for ${pairs} pairs, expected ${count}`,
    );
  }
  const warnings: string[] = [];
  let folds = options.folds ?? 10;
  if (pairs < 2) throw new RangeError(`Cannot evaluate "${name}": ${pairs} pairs, at least 2 are needed`);
  if (pairs < folds) {
    warnings.push(`"${name}" has only ${pairs} pairs: using ${pairs} folds instead of ${folds}`);
    folds = pairs;
  }
  for (const [i, f] of kfold(pairs, folds).entries()) {
    const same = issame.slice(f.start, f.end).filter(Boolean).length;
    if (same === 0 || same === f.end - f.start) {
      warnings.push(
        `fold ${i + 1} of "${name}" holds only ${
          same ? "same" : "different"
        }-person pairs: order the pairs so each tenth is balanced`,
      );
    }
  }

  let xnorm = 0;
  for (const e of [emb.plain, emb.flip]) {
    for (let i = 0; i < count; i++) {
      let s = 0;
      for (let j = 0; j < dim; j++) s += e[i * dim + j] * e[i * dim + j];
      xnorm += Math.sqrt(s);
    }
  }
  xnorm /= 2 * count;

  const summed = new Float64Array(count * dim);
  for (let i = 0; i < summed.length; i++) summed[i] = emb.plain[i] + emb.flip[i];
  const targets = options.farTargets ?? [1e-3, 1e-2];
  const figures = (raw: ArrayLike<number>): AccuracyFigures => {
    const dist = pairDistances(normalizeRows(raw, count, dim), pairs, dim);
    const k = kfoldAccuracy(dist, issame, folds);
    const tar = targets.map((t) => valAtFar(dist, issame, t));
    let roc: Roc | undefined, eer = NaN, auc = NaN;
    const nSame = issame.filter(Boolean).length;
    if (nSame > 0 && nSame < pairs) {
      roc = rocCurve(dist, issame);
      eer = equalErrorRate(roc);
      auc = rocAuc(roc);
    }
    return {
      accuracy: k.accuracy,
      std: k.std,
      foldAccuracy: k.foldAccuracy,
      bestThreshold: k.bestThreshold,
      eer,
      auc,
      tar,
      roc,
    };
  };
  const flip = figures(summed);
  for (const t of flip.tar) if (t.warning) warnings.push(`"${name}": ${t.warning}`);
  if (!flip.roc) warnings.push(`"${name}" has only one kind of pair: no EER or ROC AUC`);
  return { name, pairs, folds, xnorm, plain: figures(emb.plain), flip, warnings };
}

/** Embeds a decoded set (images and flips) and scores it. *
 * @example
 * ```ts
 * import { decodeSet, readBin, verify } from "./verification.ts";
 * import { Model } from "./model.ts";
 * const full = await readBin("data/orl_val.bin");
 * const set = decodeSet({ name: "orl", images: full.images.slice(0, 40), issame: full.issame.slice(0, 20) });
 * using model = Model.create({ network: "mbf", maxBatch: 20 });
 * const r = await verify(set, (x, n) => model.forward(x, n), { batchSize: 20 });
 * console.log(r.flip.accuracy, r.warnings.length > 0);
 * ```
 */
export async function verify(
  set: DecodedSet,
  embed: EmbedFn,
  options: EmbedOptions & EvaluateOptions = {},
): Promise<VerificationResult> {
  if (set.count !== 2 * set.issame.length) {
    throw new RangeError(`Cannot evaluate "${set.name}": ${set.count} images for ${set.issame.length} pairs`);
  }
  const emb = await embedSet(set, embed, options);
  return evaluateEmbeddings(set.name, emb, set.issame, options);
}
