import assert from "node:assert/strict";
import { ACCURACY_THRESHOLDS, arange, evaluateEmbeddings, kfold, valAtFar } from "../../lib/verification.ts";

const dir = new URL("../fixtures/verification/", import.meta.url);
const reference = JSON.parse(Deno.readTextFileSync(new URL("reference.json", dir)));

interface Figures {
  accuracy: number;
  std: number;
  fold_accuracy: number[];
  best_threshold_index: number[];
  eer: number;
  auc: number;
  tar: Record<string, [number, number, number]>;
}

function close(actual: number, expected: number, tol: number, what: string) {
  assert.ok(Math.abs(actual - expected) <= tol, `${what}: ${actual} vs ${expected}`);
}

for (const name of ["a", "b"]) {
  Deno.test(`10-fold protocol matches the numpy reference (case ${name})`, () => {
    const ref = reference[name];
    const raw = Deno.readFileSync(new URL(`${name}.f32`, dir));
    const all = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
    const n = 2 * ref.pairs * ref.dim;
    const emb = { plain: all.subarray(0, n), flip: all.subarray(n), dim: ref.dim };
    const r = evaluateEmbeddings(name, emb, ref.issame, { farTargets: [1e-3, 1e-2, 1e-1] });
    close(r.xnorm, ref.xnorm, 1e-9, "xnorm");
    for (const key of ["plain", "flip"] as const) {
      const want: Figures = ref[key], got = r[key];
      // Accuracies are counts over folds: the same thresholds give the same values to rounding.
      close(got.accuracy, want.accuracy, 1e-12, `${key} accuracy`);
      close(got.std, want.std, 1e-12, `${key} std`);
      assert.deepEqual(got.bestThreshold, want.best_threshold_index.map((k) => ACCURACY_THRESHOLDS[k]));
      got.foldAccuracy.forEach((a, i) => close(a, want.fold_accuracy[i], 1e-12, `${key} fold ${i}`));
      close(got.eer, want.eer, 1e-12, `${key} eer`);
      close(got.auc, want.auc, 1e-12, `${key} auc`);
      got.tar.forEach((t, i) => {
        const [val, threshold, far] = Object.values(want.tar)[i];
        close(t.val, val, 1e-12, `${key} val`);
        close(t.threshold, threshold, 1e-12, `${key} threshold`);
        close(t.far, far, 1e-12, `${key} far`);
      });
    }
  });
}

Deno.test("thresholds are np.arange(0, 4, 0.01) and np.arange(0, 4, 0.001)", () => {
  assert.equal(ACCURACY_THRESHOLDS.length, 400);
  assert.equal(ACCURACY_THRESHOLDS[399], 3.99);
  assert.equal(arange(0, 4, 0.001).length, 4000);
  assert.equal(ACCURACY_THRESHOLDS[7], 0.07); // 7 * 0.01, as numpy fills it
});

Deno.test("kfold is KFold(shuffle=False): contiguous, first n % k folds one larger", () => {
  assert.deepEqual(kfold(23, 10).map((f) => f.end - f.start), [3, 3, 3, 2, 2, 2, 2, 2, 2, 2]);
  assert.deepEqual(kfold(23, 10)[0], { start: 0, end: 3 });
  assert.deepEqual(kfold(23, 10)[9], { start: 21, end: 23 });
  assert.throws(() => kfold(4, 10), /Cannot split 4 pairs into 10 folds/);
});

// C40: VAL at FAR never crashes on ties.
const c40 = {
  dist: Float64Array.from([0.2, 0.6, 1.2, 2.2, 1.1, 1.8, 2.4, 2.6, 3.2, 3.3]),
  issame: [true, true, true, true, false, false, false, false, false, false],
  thresholds: arange(0, 4, 0.5),
};

Deno.test("C40: FAR and VAL per threshold", () => {
  assert.deepEqual([...c40.thresholds], [0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5]);
  const fars = [], vals = [];
  for (const t of c40.thresholds) {
    const r = valAtFar(c40.dist, c40.issame, 1, Float64Array.of(t));
    fars.push(r.far);
    vals.push(r.val);
  }
  assert.deepEqual(fars, [0, 0, 0, 1 / 6, 2 / 6, 3 / 6, 4 / 6, 1]);
  assert.deepEqual(vals, [0, 0.25, 0.5, 0.75, 0.75, 1, 1, 1]);
});

Deno.test("C40: the largest threshold with FAR <= target, no interpolation", () => {
  const a = valAtFar(c40.dist, c40.issame, 1e-3, c40.thresholds);
  assert.equal(a.threshold, 1.0);
  assert.equal(a.val, 0.5);
  assert.equal(a.far, 0);
  assert.equal(a.reached, true);
  assert.equal(a.warning, undefined);
  const b = valAtFar(c40.dist, c40.issame, 0.25, c40.thresholds);
  assert.equal(b.threshold, 1.5);
  assert.equal(b.val, 0.75);
  assert.equal(b.far, 1 / 6);
});

Deno.test("C40: a target the sweep never reaches uses the largest threshold and warns", () => {
  const short = Float64Array.of(0, 0.5, 1, 1.5, 2); // FAR at most 2/6
  const r = valAtFar(c40.dist, c40.issame, 0.5, short);
  assert.equal(r.threshold, 2);
  assert.equal(r.val, 0.75);
  assert.equal(r.reached, false);
  assert.match(r.warning!, /FAR target 0.5 is never reached/);
});

Deno.test("a small set: 4 pairs use 4 folds with a warning, NaN-free figures", () => {
  const dim = 2;
  // pairs: same (close), diff (far), same, diff
  const v = [[1, 0], [0.9, 0.1], [1, 0], [-1, 0], [0, 1], [0.1, 0.9], [0, 1], [0, -1]];
  const plain = Float32Array.from(v.flat());
  const r = evaluateEmbeddings("tiny", { plain, flip: plain, dim }, [true, false, true, false]);
  assert.equal(r.folds, 4);
  assert.match(r.warnings.join("\n"), /only 4 pairs: using 4 folds instead of 10/);
  assert.equal(r.flip.accuracy, 1);
  assert.equal(r.flip.auc, 1);
  assert.equal(r.flip.eer, 0);
});
