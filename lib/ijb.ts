/**
 * IJB-B / IJB-C 1:1 verification as insightface's `eval_ijbc.py` computes it: the standard
 * meta files, loose crops aligned to 112×112 by a 5-point similarity transform onto the
 * ArcFace reference landmarks, image + flip embeddings weighted by the detector score,
 * media fusion (mean) then template fusion (sum, L2-normalised), cosine scores per template
 * pair, and TAR at FAR 1e-6 … 1e-1 from the ROC.
 *
 * Layout of `<root>` (as distributed): `meta/<name>_face_tid_mid.txt` ("image template
 * media"), `meta/<name>_template_pair_label.txt` ("template template label"),
 * `meta/<name>_name_5pts_score.txt` ("image x1 y1 … x5 y5 score"), `loose_crop/<image>`;
 * `<name>` is `ijbb` or `ijbc`.
 *
 * @module
 */
import { decodeImage, imageInfo } from "./image.ts";
import { type EmbedFn, toInput } from "./verification.ts";
import { rocCurve } from "./verification_metrics.ts";

/** The ArcFace reference positions of eyes, nose tip and mouth corners in a 112×112 crop. */
export const ARCFACE_LANDMARKS: readonly (readonly [number, number])[] = [
  [38.2946, 51.6963],
  [73.5318, 51.5014],
  [56.0252, 71.7366],
  [41.5493, 92.3655],
  [70.7299, 92.2041],
];

/** The FARs at which the seed reports TAR. */
export const FAR_TARGETS = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1];

/** One face of the set. */
export interface IjbFace {
  image: string;
  template: number;
  media: number;
  /** x1 y1 … x5 y5 in the loose crop. */
  landmarks: number[];
  /** Detector (faceness) score. */
  score: number;
}

/** A parsed IJB tree. */
export interface IjbSet {
  root: string;
  faces: IjbFace[];
  pairs: { t1: number; t2: number; label: boolean }[];
}

function lines(text: string, file: string, fields: number): string[][] {
  return text.split("\n").map((l) => l.trim()).filter(Boolean).map((l, i) => {
    const f = l.split(/\s+/);
    if (f.length < fields) {
      throw new Error(`Cannot read "${file}": line ${i + 1} has ${f.length} fields, expected ${fields}`);
    }
    return f;
  });
}

/** Reads the meta files of `<root>` for set `name` ("ijbb" or "ijbc"). */
export async function readIjb(root: string, name: "ijbb" | "ijbc"): Promise<IjbSet> {
  const read = async (file: string) => {
    const path = `${root}/meta/${name}_${file}`;
    try {
      return { path, text: await Deno.readTextFile(path) };
    } catch (e) {
      throw new Error(`Cannot read IJB meta file "${path}": ${(e as Error).message}`);
    }
  };
  const tidMid = await read("face_tid_mid.txt");
  const pairs = await read("template_pair_label.txt");
  const pts = await read("name_5pts_score.txt");
  const landmarks = new Map(lines(pts.text, pts.path, 12).map((f) => [f[0], f.slice(1).map(Number)]));
  const faces = lines(tidMid.text, tidMid.path, 3).map(([image, t, m]) => {
    const l = landmarks.get(image);
    if (!l) throw new Error(`Cannot read "${pts.path}": no landmarks for "${image}"`);
    return { image, template: Number(t), media: Number(m), landmarks: l.slice(0, 10), score: l[10] };
  });
  return {
    root,
    faces,
    pairs: lines(pairs.text, pairs.path, 3).map(([a, b, l]) => ({
      t1: Number(a),
      t2: Number(b),
      label: l === "1",
    })),
  };
}

/**
 * The similarity transform (scale, rotation, translation; no reflection) that maps `src`
 * points onto `dst` in the least-squares sense (Umeyama): x' = a·x − b·y + tx, y' = b·x + a·y + ty.
 */
export function similarityTransform(src: readonly number[], dst: readonly (readonly [number, number])[]) {
  const n = dst.length;
  let sx = 0, sy = 0, dx = 0, dy = 0;
  for (let i = 0; i < n; i++) sx += src[2 * i], sy += src[2 * i + 1], dx += dst[i][0], dy += dst[i][1];
  sx /= n, sy /= n, dx /= n, dy /= n;
  let num1 = 0, num2 = 0, den = 0;
  for (let i = 0; i < n; i++) {
    const x = src[2 * i] - sx, y = src[2 * i + 1] - sy, u = dst[i][0] - dx, v = dst[i][1] - dy;
    num1 += x * u + y * v;
    num2 += x * v - y * u;
    den += x * x + y * y;
  }
  const a = num1 / den, b = num2 / den;
  return { a, b, tx: dx - (a * sx - b * sy), ty: dy - (b * sx + a * sy) };
}

/** Warps RGB pixels (w×h) into a 112×112 face by the inverse transform, bilinear, black outside. */
export function alignFace(
  rgb: Uint8Array,
  w: number,
  h: number,
  landmarks: readonly number[],
): Uint8Array<ArrayBuffer> {
  const { a, b, tx, ty } = similarityTransform(landmarks, ARCFACE_LANDMARKS);
  const det = a * a + b * b;
  const out = new Uint8Array(112 * 112 * 3);
  for (let y = 0; y < 112; y++) {
    for (let x = 0; x < 112; x++) {
      // Inverse of [a −b; b a]: [a b; −b a] / det.
      const u = x - tx, v = y - ty;
      const sx = (a * u + b * v) / det, sy = (-b * u + a * v) / det;
      const x0 = Math.floor(sx), y0 = Math.floor(sy), fx = sx - x0, fy = sy - y0;
      for (let c = 0; c < 3; c++) {
        const at = (
          xx: number,
          yy: number,
        ) => (xx >= 0 && yy >= 0 && xx < w && yy < h ? rgb[(yy * w + xx) * 3 + c] : 0);
        const value = (1 - fy) * ((1 - fx) * at(x0, y0) + fx * at(x0 + 1, y0)) +
          fy * ((1 - fx) * at(x0, y0 + 1) + fx * at(x0 + 1, y0 + 1));
        out[(y * 112 + x) * 3 + c] = Math.min(255, Math.max(0, Math.round(value)));
      }
    }
  }
  return out;
}

/** Per template: media means summed, then L2-normalised (`image2template_feature`). */
export function templateFeatures(
  faces: readonly IjbFace[],
  feats: Float32Array,
  dim: number,
): Map<number, Float64Array> {
  const byTemplate = new Map<number, Map<number, number[]>>();
  faces.forEach((f, i) => {
    const media = byTemplate.get(f.template) ?? new Map<number, number[]>();
    byTemplate.set(f.template, media);
    media.set(f.media, [...(media.get(f.media) ?? []), i]);
  });
  const out = new Map<number, Float64Array>();
  for (const [t, media] of byTemplate) {
    const sum = new Float64Array(dim);
    for (const idx of media.values()) {
      for (const i of idx) for (let j = 0; j < dim; j++) sum[j] += feats[i * dim + j] / idx.length;
    }
    const norm = Math.hypot(...sum) || 1;
    out.set(t, sum.map((v) => v / norm));
  }
  return out;
}

/**
 * The ROC as scikit-learn's `roc_curve(labels, scores)` returns it (points not on a corner
 * dropped), as FPR and TPR arrays starting at (0, 0).
 */
export function sklearnRoc(
  scores: Float64Array,
  labels: readonly boolean[],
): { fpr: number[]; tpr: number[] } {
  // rocCurve works on distances ("same when below"): a negated score is one.
  const all = rocCurve(scores.map((s) => -s), labels);
  const fpr = [...all.fpr.subarray(1)], tpr = [...all.tpr.subarray(1)];
  // Second differences of the counts (exact integers), as scikit-learn's drop_intermediate.
  const nSame = labels.filter(Boolean).length, nDiff = labels.length - nSame;
  const fp = fpr.map((r) => Math.round(r * nDiff)), tp = tpr.map((r) => Math.round(r * nSame));
  const keep = fpr.map((_, i) =>
    i === 0 || i === fpr.length - 1 || fp[i + 1] - 2 * fp[i] + fp[i - 1] !== 0 ||
    tp[i + 1] - 2 * tp[i] + tp[i - 1] !== 0
  );
  return { fpr: [0, ...fpr.filter((_, i) => keep[i])], tpr: [0, ...tpr.filter((_, i) => keep[i])] };
}

/** TAR at each FAR target: the ROC point whose FAR is nearest the target (first of ties), as the seed picks it. */
export function tarAtFar(
  scores: Float64Array,
  labels: readonly boolean[],
  targets: readonly number[] = FAR_TARGETS,
) {
  const roc = sklearnRoc(scores, labels);
  return targets.map((far) => {
    let best = 0;
    for (let i = 1; i < roc.fpr.length; i++) {
      if (Math.abs(roc.fpr[i] - far) < Math.abs(roc.fpr[best] - far)) best = i;
    }
    return { far, tar: roc.tpr[best] };
  });
}

/** The result of {@linkcode evaluateIjb}. */
export interface IjbResult {
  /** Cosine score of every template pair, in file order. */
  scores: Float64Array;
  tar: { far: number; tar: number }[];
  /** The ROC (scikit-learn's points). */
  roc: { fpr: number[]; tpr: number[] };
}

/** Aligns, embeds (image + flip, times the detector score), fuses and scores a set. */
export async function evaluateIjb(
  set: IjbSet,
  embed: EmbedFn,
  options: { batchSize?: number; onProgress?: (done: number, total: number) => void } = {},
): Promise<IjbResult> {
  const batch = options.batchSize ?? 32, plane = 112 * 112 * 3;
  let dim = 0, feats = new Float32Array(0);
  for (let first = 0; first < set.faces.length; first += batch) {
    const n = Math.min(batch, set.faces.length - first);
    const pixels = new Uint8Array(n * plane);
    for (let i = 0; i < n; i++) {
      const f = set.faces[first + i];
      const bytes = await Deno.readFile(`${set.root}/loose_crop/${f.image}`) as Uint8Array<ArrayBuffer>;
      const { width, height } = imageInfo(bytes);
      pixels.set(alignFace(decodeImage(bytes, width, height), width, height, f.landmarks), i * plane);
    }
    const plain = await embed(toInput(pixels, 112, 0, n, false), n);
    const flip = await embed(toInput(pixels, 112, 0, n, true), n);
    if (dim === 0) {
      dim = plain.length / n;
      feats = new Float32Array(set.faces.length * dim);
    }
    for (let i = 0; i < n * dim; i++) {
      feats[first * dim + i] = (plain[i] + flip[i]) * set.faces[first + Math.floor(i / dim)].score;
    }
    options.onProgress?.(first + n, set.faces.length);
  }
  const templates = templateFeatures(set.faces, feats, dim);
  const scores = new Float64Array(set.pairs.length);
  set.pairs.forEach((p, k) => {
    const a = templates.get(p.t1), b = templates.get(p.t2);
    if (!a || !b) throw new Error(`Cannot score pair ${k + 1}: template ${a ? p.t2 : p.t1} has no faces`);
    let s = 0;
    for (let j = 0; j < dim; j++) s += a[j] * b[j];
    scores[k] = s;
  });
  const labels = set.pairs.map((p) => p.label);
  return { scores, tar: tarAtFar(scores, labels), roc: sklearnRoc(scores, labels) };
}
