import assert from "node:assert/strict";
import { clipCoefficient, Margin, marginName, Optimizer, PartialFC, sumSquares } from "../../lib/head.ts";
import { AfcError } from "../../ffi/mod.ts";

const golden = JSON.parse(Deno.readTextFileSync(new URL("../fixtures/head_golden.json", import.meta.url)));

function near(actual: ArrayLike<number>, expected: number[], rel: number, abs: number, what: string) {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const tol = abs + rel * Math.abs(expected[i]);
    assert.ok(Math.abs(actual[i] - expected[i]) <= tol, `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

Deno.test("margin logits and gradients match PyTorch for ArcFace, CosFace, combined, m1 != 1, filtering", () => {
  const g = golden.margin;
  const cos = new Float32Array(g.cos);
  const labels = BigInt64Array.from(g.labels.map(BigInt));
  for (const c of g.cases) {
    using m = new Margin({
      s: c.s,
      marginList: c.m,
      interclassFilteringThreshold: c.filter,
      straightThrough: c.straight_through,
    });
    near(m.forward(cos, labels, g.rows, g.cols), c.logits, 1e-5, 1e-4, `${c.name} logits`);
    near(
      m.backward(cos, labels, g.rows, g.cols, new Float32Array(c.upstream)),
      c.d_cos,
      1e-5,
      1e-4,
      `${c.name} d_cos`,
    );
  }
});

Deno.test("Partial FC (sample_rate 1) loss and gradients match PyTorch CombinedMarginLoss + PartialFC", async () => {
  for (const c of golden.pfc) {
    using pfc = new PartialFC({
      numClasses: c.classes,
      embeddingSize: c.dim,
      maxBatch: c.batch,
      s: c.s,
      marginList: c.m,
      interclassFilteringThreshold: c.filter,
      threads: 1,
    });
    pfc.writeWeight(new Float32Array(c.weight));
    const { loss, dEmbeddings } = await pfc.forwardBackward(new Float32Array(c.embeddings), c.labels);
    assert.ok(
      Math.abs(loss - c.loss) <= 1e-5 * Math.abs(c.loss) + 1e-5,
      `${c.name} loss ${loss} vs ${c.loss}`,
    );
    near(dEmbeddings, c.d_embeddings, 1e-4, 1e-6, `${c.name} d_embeddings`);
    near(pfc.readGrad(), c.d_weight, 1e-4, 1e-5, `${c.name} d_weight`);
  }
});

Deno.test("SGD and AdamW steps match torch.optim", async () => {
  const g = golden.optim;
  for (const c of g.cases) {
    using opt = c.name === "adamw"
      ? new Optimizer({ kind: "adamw", betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.1 })
      : new Optimizer({
        kind: "sgd",
        momentum: c.name === "sgd" ? 0.9 : 0,
        weightDecay: c.name === "sgd" ? 5e-4 : 0,
      });
    const p = new Float32Array(g.param);
    const slot = opt.add(p.length);
    for (let i = 0; i < c.lrs.length; i++) {
      await opt.step(slot, p, new Float32Array(g.grads[i]), c.lrs[i]);
      near(p, c.params[i], 1e-6, 1e-7, `${c.name} step ${i + 1}`);
    }
    if (c.momentum_buffer) {
      near(opt.readState(slot, 0, p.length), c.momentum_buffer, 1e-6, 1e-7, "momentum_buffer");
    }
    if (c.exp_avg) near(opt.readState(slot, 0, p.length), c.exp_avg, 1e-6, 1e-9, "exp_avg");
    if (c.exp_avg_sq) near(opt.readState(slot, 1, p.length), c.exp_avg_sq, 1e-6, 1e-12, "exp_avg_sq");
    assert.equal(opt.steps(slot), 3);
  }
});

Deno.test("the Partial FC shard steps like torch.optim.SGD on the whole weight", async () => {
  const c = golden.pfc[0];
  using pfc = new PartialFC({ numClasses: c.classes, embeddingSize: c.dim, maxBatch: c.batch, threads: 1 });
  using opt = new Optimizer({ kind: "sgd", momentum: 0.9, weightDecay: 5e-4 });
  pfc.writeWeight(new Float32Array(c.weight));
  await pfc.forwardBackward(new Float32Array(c.embeddings), c.labels);
  await pfc.step(opt, 0.1);
  const w = pfc.readWeight();
  const expected = c.weight.map((w0: number, i: number) => w0 - 0.1 * (c.d_weight[i] + 5e-4 * w0));
  near(w, expected, 1e-4, 1e-6, "updated weight");
  near(
    pfc.readState(0),
    c.weight.map((w0: number, i: number) => c.d_weight[i] + 5e-4 * w0),
    1e-4,
    1e-6,
    "momentum",
  );
  assert.equal(pfc.counters.optimSteps, 1);
});

Deno.test("global-norm clipping matches torch.nn.utils.clip_grad_norm_", () => {
  const g = golden.clip;
  const ss = g.grads.reduce((a: number, x: number[]) => a + sumSquares(new Float32Array(x)), 0);
  assert.ok(Math.abs(Math.sqrt(ss) - g.norm) < 1e-5 * g.norm);
  const coef = clipCoefficient(ss, 1, 5);
  near(g.grads[0].map((v: number) => v * coef), g.clipped[0], 1e-6, 1e-7, "clipped");
});

Deno.test("C29: accumulating two micro-batches averages (w = -0.2, logged loss 2.5)", async () => {
  using opt = new Optimizer({ kind: "sgd", momentum: 0, weightDecay: 0 });
  const w = new Float32Array([0]);
  const slot = opt.add(1);
  const grad = new Float32Array(1);
  const losses: number[] = [];
  for (const y of [-1, -3]) {
    grad[0] += w[0] - y; // mean over two samples of d/dw ½(w·1 − y)²
    losses.push(0.5 * (w[0] - y) ** 2);
  }
  await opt.step(slot, w, grad, 0.1, 1 / 2);
  assert.ok(Math.abs(w[0] + 0.2) < 1e-7, `w = ${w[0]}`);
  assert.equal(losses.reduce((a, b) => a + b) / losses.length, 2.5);
});

Deno.test("Partial FC keeps the positives when sampling and refuses bad labels before the step", async () => {
  using pfc = new PartialFC({ numClasses: 200, embeddingSize: 4, maxBatch: 4, sampleRate: 0.05, threads: 1 });
  const e = new Float32Array(16).fill(0.25);
  await pfc.forwardBackward(e, [3, 150, 3, 77]);
  const s = Array.from(pfc.lastSample(), Number);
  assert.equal(s.length, 10);
  for (const l of [3, 77, 150]) assert.ok(s.includes(l));
  await assert.rejects(
    () => pfc.forwardBackward(e, [1, 2, 3, 200]),
    /label "200" of row 3 is outside \[0, 200\)/,
  );
  await assert.rejects(() => pfc.forwardBackward(e, [1, 2.5, 3, 4]), TypeError);
});

Deno.test("shard weight and momentum round-trip by rows; calls after close throw AfcError", async () => {
  const pfc = new PartialFC({ numClasses: 6, embeddingSize: 2, maxBatch: 1, threads: 1 });
  assert.equal(pfc.numLocal, 6);
  assert.equal(pfc.classStart, 0);
  const rows = new Float32Array([1, 2, 3, 4]);
  pfc.writeWeight(rows, 2);
  assert.deepEqual(pfc.readWeight(2, 2), rows);
  pfc.writeState(0, rows, 4);
  assert.deepEqual(pfc.readState(0, 4, 2), rows);
  pfc.counters = { rng: 12345n, optimSteps: 9 };
  assert.deepEqual(pfc.counters, { rng: 12345n, optimSteps: 9 });
  pfc.close();
  pfc.close();
  assert.throws(
    () => pfc.readWeight(),
    (e: unknown) => e instanceof AfcError && /Partial FC is closed/.test(e.message),
  );
  await assert.rejects(() => pfc.forwardBackward(new Float32Array(2), [0]), AfcError);
});

Deno.test("marginName says the loss in words", () => {
  assert.equal(marginName({ s: 64, marginList: [1, 0.5, 0] }), "ArcFace m=0.5 s=64");
  assert.equal(marginName({ s: 64, marginList: [1, 0, 0.4] }), "CosFace m=0.4 s=64");
  assert.equal(
    marginName({ marginList: [1, 0.5, 0], straightThrough: true }),
    "ArcFace m=0.5 s=64 (straight-through gradient)",
  );
});

Deno.test("restoring weight, momentum and counters continues bit-exactly (sampling included)", async () => {
  const opts = { numClasses: 40, embeddingSize: 4, maxBatch: 4, sampleRate: 0.25, threads: 1, seed: 5 };
  const batches = [[1, 5, 9, 30], [2, 2, 17, 39], [0, 11, 22, 33], [7, 8, 9, 10]];
  const emb = (i: number) => Float32Array.from({ length: 16 }, (_, k) => Math.sin(1 + i * 16 + k));
  using opt = new Optimizer({ kind: "sgd", momentum: 0.9, weightDecay: 5e-4 });
  using a = new PartialFC(opts);
  for (let i = 0; i < 2; i++) {
    await a.forwardBackward(emb(i), batches[i]);
    await a.step(opt, 0.1);
  }
  using b = new PartialFC({ ...opts, seed: 99 });
  b.writeWeight(a.readWeight());
  b.writeState(0, a.readState(0));
  b.counters = a.counters;
  for (let i = 2; i < 4; i++) {
    const ra = await a.forwardBackward(emb(i), batches[i]);
    const rb = await b.forwardBackward(emb(i), batches[i]);
    assert.equal(rb.loss, ra.loss);
    assert.deepEqual(b.lastSample(), a.lastSample());
    await a.step(opt, 0.1);
    await b.step(opt, 0.1);
  }
  assert.deepEqual(b.readWeight(), a.readWeight());
  assert.deepEqual(b.readState(0), a.readState(0));
});
