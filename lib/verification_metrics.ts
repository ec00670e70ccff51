/**
 * The numbers of face verification on pairs of embeddings, computed as arcface_torch's
 * `eval/verification.py` does: squared L2 distance of L2-normalised embeddings, "same
 * person" when the distance is below a threshold, thresholds `np.arange(0, 4, 0.01)`,
 * 10 contiguous folds (scikit-learn `KFold(n_splits=10, shuffle=False)`), the threshold with
 * the best training-fold accuracy (the first maximum) applied to the test fold.
 *
 * Beyond the seed: equal error rate, ROC AUC and VAL (TAR) at a FAR target.
 *
 * @module
 */

/** `np.arange(start, stop, step)`: `ceil((stop - start) / step)` values `start + i·step`. */
export function arange(start: number, stop: number, step: number): Float64Array {
  const n = Math.max(0, Math.ceil((stop - start) / step));
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = start + i * step;
  return out;
}

/** The seed's accuracy thresholds, `np.arange(0, 4, 0.01)` (400 values). */
export const ACCURACY_THRESHOLDS: Float64Array = arange(0, 4, 0.01);

/** The seed's VAL thresholds, `np.arange(0, 4, 0.001)` (4,000 values). */
export const VAL_THRESHOLDS: Float64Array = arange(0, 4, 0.001);

/** A contiguous test fold `[start, end)`; the training set is everything else. */
export interface Fold {
  start: number;
  end: number;
}

/**
 * scikit-learn's `KFold(n_splits, shuffle=False)`: contiguous test folds, the first
 * `n % splits` of them one pair larger.
 */
export function kfold(n: number, splits: number): Fold[] {
  if (!Number.isInteger(splits) || splits < 2 || splits > n) {
    throw new RangeError(`Cannot split ${n} pairs into ${splits} folds: expected 2 to ${n} folds`);
  }
  const folds: Fold[] = [];
  let start = 0;
  for (let i = 0; i < splits; i++) {
    const size = Math.floor(n / splits) + (i < n % splits ? 1 : 0);
    folds.push({ start, end: start + size });
    start += size;
  }
  return folds;
}

/**
 * Rows of `emb` (n×dim) divided by their L2 norm, as `sklearn.preprocessing.normalize`
 * (a zero row stays zero). Float64, as the seed computes.
 */
export function normalizeRows(emb: ArrayLike<number>, n: number, dim: number): Float64Array {
  const out = new Float64Array(n * dim);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < dim; j++) s += emb[i * dim + j] * emb[i * dim + j];
    const norm = Math.sqrt(s) || 1;
    for (let j = 0; j < dim; j++) out[i * dim + j] = emb[i * dim + j] / norm;
  }
  return out;
}

/** Squared L2 distance of rows 2i and 2i+1 (the seed's `embeddings[0::2]`, `[1::2]`). */
export function pairDistances(emb: Float64Array, pairs: number, dim: number): Float64Array {
  const dist = new Float64Array(pairs);
  for (let p = 0; p < pairs; p++) {
    const a = 2 * p * dim, b = a + dim;
    let s = 0;
    for (let j = 0; j < dim; j++) {
      const d = emb[a + j] - emb[b + j];
      s += d * d;
    }
    dist[p] = s;
  }
  return dist;
}

/** Counts of one threshold on a set of pairs ("same" when distance < threshold). */
interface Counts {
  tp: number;
  fp: number;
  tn: number;
  fn: number;
}

function counts(t: number, dist: Float64Array, issame: readonly boolean[], skip?: Fold, only?: Fold): Counts {
  const c = { tp: 0, fp: 0, tn: 0, fn: 0 };
  const from = only ? only.start : 0, to = only ? only.end : dist.length;
  for (let i = from; i < to; i++) {
    if (skip && i >= skip.start && i < skip.end) continue;
    const predict = dist[i] < t;
    if (predict) issame[i] ? c.tp++ : c.fp++;
    else issame[i] ? c.fn++ : c.tn++;
  }
  return c;
}

const rate = (a: number, b: number) => (a + b === 0 ? 0 : a / (a + b));

/** Result of the seed's k-fold accuracy. */
export interface KFoldAccuracy {
  /** Mean test-fold accuracy. */
  accuracy: number;
  /** Population standard deviation of the test-fold accuracies (`np.std`). */
  std: number;
  /** Accuracy of each test fold. */
  foldAccuracy: number[];
  /** Index into the thresholds of the best training-fold threshold, per fold. */
  bestThresholdIndex: number[];
  /** The best thresholds themselves, per fold. */
  bestThreshold: number[];
  /** TPR and FPR per threshold, averaged over the test folds (the seed's ROC). */
  tpr: Float64Array;
  fpr: Float64Array;
}

/** The seed's `calculate_roc`: k-fold accuracy on squared distances. */
export function kfoldAccuracy(
  dist: Float64Array,
  issame: readonly boolean[],
  nfolds = 10,
  thresholds: Float64Array = ACCURACY_THRESHOLDS,
): KFoldAccuracy {
  if (dist.length !== issame.length) {
    throw new RangeError(`Cannot score pairs: ${dist.length} distances but ${issame.length} labels`);
  }
  const folds = kfold(dist.length, nfolds);
  const nt = thresholds.length;
  const tpr = new Float64Array(nt), fpr = new Float64Array(nt);
  const foldAccuracy: number[] = [], bestThresholdIndex: number[] = [];
  for (const fold of folds) {
    let best = 0, bestAcc = -1;
    const trainSize = dist.length - (fold.end - fold.start);
    for (let k = 0; k < nt; k++) {
      const c = counts(thresholds[k], dist, issame, fold);
      const acc = (c.tp + c.tn) / trainSize;
      if (acc > bestAcc) {
        bestAcc = acc;
        best = k;
      }
      const t = counts(thresholds[k], dist, issame, undefined, fold);
      tpr[k] += rate(t.tp, t.fn) / folds.length;
      fpr[k] += rate(t.fp, t.tn) / folds.length;
    }
    const c = counts(thresholds[best], dist, issame, undefined, fold);
    foldAccuracy.push((c.tp + c.tn) / (fold.end - fold.start));
    bestThresholdIndex.push(best);
  }
  const accuracy = mean(foldAccuracy);
  const std = Math.sqrt(mean(foldAccuracy.map((a) => (a - accuracy) ** 2)));
  return {
    accuracy,
    std,
    foldAccuracy,
    bestThresholdIndex,
    bestThreshold: bestThresholdIndex.map((k) => thresholds[k]),
    tpr,
    fpr,
  };
}

function mean(xs: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i];
  return s / xs.length;
}

/** A ROC curve over every distinct distance ("same" when distance ≤ t), from (0, 0) to (1, 1). */
export interface Roc {
  fpr: Float64Array;
  tpr: Float64Array;
  thresholds: Float64Array;
}

/** The exact ROC of the pairs: one point per distinct distance. Needs both kinds of pair. */
export function rocCurve(dist: Float64Array, issame: readonly boolean[]): Roc {
  const nSame = issame.filter(Boolean).length, nDiff = issame.length - nSame;
  if (nSame === 0 || nDiff === 0) {
    throw new RangeError(
      `Cannot compute a ROC: ${nSame} same and ${nDiff} different pairs, both kinds are needed`,
    );
  }
  const order = Array.from(dist.keys()).sort((a, b) => dist[a] - dist[b]);
  const fpr = [0], tpr = [0], ts = [-Infinity];
  let tp = 0, fp = 0;
  for (let i = 0; i < order.length; i++) {
    issame[order[i]] ? tp++ : fp++;
    if (i + 1 < order.length && dist[order[i + 1]] === dist[order[i]]) continue;
    fpr.push(fp / nDiff);
    tpr.push(tp / nSame);
    ts.push(dist[order[i]]);
  }
  return { fpr: Float64Array.from(fpr), tpr: Float64Array.from(tpr), thresholds: Float64Array.from(ts) };
}

/** Area under the ROC (the probability a same pair is closer than a different one; ties count half). */
export function rocAuc(roc: Roc): number {
  let auc = 0;
  for (let i = 1; i < roc.fpr.length; i++) {
    auc += (roc.fpr[i] - roc.fpr[i - 1]) * (roc.tpr[i] + roc.tpr[i - 1]) / 2;
  }
  return auc;
}

/** Equal error rate: where FRR = FAR on the linearly interpolated ROC. */
export function equalErrorRate(roc: Roc): number {
  const { fpr, tpr } = roc;
  for (let i = 1; i < fpr.length; i++) {
    const d1 = 1 - tpr[i] - fpr[i];
    if (d1 > 0) continue;
    const d0 = 1 - tpr[i - 1] - fpr[i - 1];
    const a = d0 / (d0 - d1);
    return fpr[i - 1] + a * (fpr[i] - fpr[i - 1]);
  }
  return 1; // unreachable: the last point (1, 1) has FRR - FAR = -1
}

/** VAL (true accept rate) at a FAR target. */
export interface ValAtFar {
  /** The FAR asked for. */
  target: number;
  /** The chosen threshold ("same" when distance < threshold). */
  threshold: number;
  /** True accept rate (TAR, the seed's VAL) at that threshold. */
  val: number;
  /** False accept rate at that threshold (≤ target unless `reached` is false). */
  far: number;
  /** False when no swept threshold reaches the target FAR (see `warning`). */
  reached: boolean;
  /** Why the result is not a plain answer, or undefined. */
  warning?: string;
}

/**
 * VAL at FAR without interpolation: the largest swept threshold whose FAR ≤ target.
 * When the sweep never reaches the target FAR (every FAR is below it) the largest swept
 * threshold is used with a warning; when even the smallest threshold exceeds it, the
 * smallest is used with a warning. Never throws on ties or unreachable targets.
 */
export function valAtFar(
  dist: Float64Array,
  issame: readonly boolean[],
  target: number,
  thresholds: Float64Array = VAL_THRESHOLDS,
): ValAtFar {
  if (thresholds.length === 0) throw new RangeError("Cannot compute VAL at FAR: no thresholds to sweep");
  const nSame = issame.filter(Boolean).length, nDiff = issame.length - nSame;
  // Sorted distances of each kind give the counts below a threshold by binary search.
  const same = Float64Array.from(dist.filter((_, i) => issame[i])).sort();
  const diff = Float64Array.from(dist.filter((_, i) => !issame[i])).sort();
  const below = (xs: Float64Array, t: number) => {
    let lo = 0, hi = xs.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (xs[mid] < t) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  const far = (t: number) => (nDiff === 0 ? 0 : below(diff, t) / nDiff);
  const val = (t: number) => (nSame === 0 ? 0 : below(same, t) / nSame);
  let k = -1, maxFar = 0;
  for (let i = 0; i < thresholds.length; i++) {
    const f = far(thresholds[i]);
    maxFar = Math.max(maxFar, f);
    if (f <= target) k = i;
  }
  let warning: string | undefined;
  let reached = true;
  if (k < 0) {
    k = 0;
    reached = false;
    warning = `FAR target ${target} is below the FAR of every threshold (${far(thresholds[0])} at ${
      thresholds[0]
    }): using the smallest threshold`;
  } else if (maxFar < target) {
    k = thresholds.length - 1;
    reached = false;
    warning = `FAR target ${target} is never reached (largest FAR ${maxFar}): using the largest threshold ${
      thresholds[k]
    }`;
  }
  const t = thresholds[k];
  return { target, threshold: t, val: val(t), far: far(t), reached, warning };
}
