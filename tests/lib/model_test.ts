// The CPU backbones against PyTorch (tests/golden/make_golden.py), parameter counts as
// arcface_torch, and bad input.
import assert from "node:assert/strict";
import { Model } from "../../lib/model.ts";
import { readSafetensors, toFloat32 } from "../../lib/safetensors.ts";
import { AfcError } from "../../ffi/status.ts";
import { seeded } from "./golden_weights.ts";

const fixtures = new URL("../fixtures/", import.meta.url).pathname;

/**
 * Largest difference relative to the reference's largest magnitude. Gradients that are zero
 * analytically (a bias followed by batch norm: PyTorch gives 1e-14) are compared against 0.1,
 * the smallest magnitude of a real gradient here.
 */
function maxRel(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let scale = 0.1, diff = 0;
  for (let i = 0; i < a.length; i++) {
    scale = Math.max(scale, Math.abs(b[i]));
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
  }
  return diff / scale;
}

function norm(a: Float32Array): number {
  let s = 0;
  for (const v of a) s += v * v;
  return Math.sqrt(s);
}

/** Root-mean-square difference relative to the reference's RMS (floored at 0.1, as maxRel). */
function rmsRel(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let d = 0, r = 0;
  for (let i = 0; i < a.length; i++) {
    d += (a[i] - b[i]) ** 2;
    r += b[i] ** 2;
  }
  return Math.sqrt(d / Math.max(r, 0.01 * a.length));
}

/**
 * Gradient tolerance (RMS relative), with every PReLU slope at 1 (tests/golden/make_golden.py
 * says why). Measured: mbf 2.1e-4, r18 2.8e-4.
 */
const GRAD_TOL = 1e-3;

for (const network of ["mbf", "r18"]) {
  Deno.test(`${network} matches PyTorch: eval and train embeddings, running stats, every gradient`, async () => {
    const golden = await readSafetensors(`${fixtures}golden_${network}.safetensors`);
    const g = (k: string) => toFloat32(golden.tensors.get(k)!);
    using model = Model.create({ network, maxBatch: 4, threads: 2 });
    for (const t of model.tensors()) {
      if (network === "r18" && t.name === "features.weight") continue; // frozen at 1
      const w = seeded(t.name, t.shape);
      const s = g(`seeded.${t.name}`);
      assert.deepEqual([w[0], w[1], w[w.length - 2], w[w.length - 1]], [...s], `seeded ${t.name}`);
      model.write(t.name, w);
    }
    const x = g("input");
    const evalEmb = await model.forward(x, 4);
    assert.ok(maxRel(evalEmb, g("eval_emb")) < 1e-4, `eval embeddings ${maxRel(evalEmb, g("eval_emb"))}`);
    const trainEmb = await model.forward(x, 4, { train: true });
    assert.ok(
      maxRel(trainEmb, g("train_emb")) < 1e-4,
      `train embeddings ${maxRel(trainEmb, g("train_emb"))}`,
    );
    for (const t of model.tensors()) {
      if (t.kind !== "buffer") continue;
      assert.ok(maxRel(model.read(t.name), g(`after.${t.name}`)) < 1e-4, `running stat ${t.name}`);
    }
    // The gradients are PyTorch's with every PReLU slope at 1 (make_golden.py says why).
    const prelus: string[] = JSON.parse(golden.metadata.prelu);
    assert.equal(prelus.length, network === "mbf" ? 33 : 9);
    for (const name of prelus) model.write(name, new Float32Array(model.read(name).length).fill(1));
    await model.forward(x, 4, { train: true });
    const dInput = (await model.backward(g("d_emb"), 4, { inputGrad: true }))!;
    assert.ok(
      rmsRel(dInput, g("input_grad")) < GRAD_TOL,
      `input gradient ${rmsRel(dInput, g("input_grad"))}`,
    );
    let checked = 0;
    for (const t of model.tensors()) {
      if (!t.trainable) continue;
      const grad = model.grad(t.name);
      if (golden.tensors.has(`grad.${t.name}`)) {
        const e = rmsRel(grad, g(`grad.${t.name}`));
        assert.ok(e < GRAD_TOL, `gradient of ${t.name}: relative error ${e}`);
      } else {
        const sample = g(`gsample.${t.name}`);
        const mine = sample.map((_, j) => grad[Math.floor(j * grad.length / sample.length)]);
        assert.ok(rmsRel(mine, sample) < GRAD_TOL, `gradient sample of ${t.name}: ${rmsRel(mine, sample)}`);
        const n = toFloat32(golden.tensors.get(`gnorm.${t.name}`)!)[0];
        assert.ok(Math.abs(norm(grad) - n) / n < GRAD_TOL, `gradient norm of ${t.name}`);
      }
      checked++;
    }
    assert.ok(checked > 20, `only ${checked} gradients compared`);
  });
}

Deno.test("eval folds the current batch norms: after a training forward, a write, and a batch change", async () => {
  // Eval runs each convolution with the batch norm after it folded in, prepared once and
  // kept while nothing changes. A second model given the same values must agree each time.
  const network = "r18";
  const golden = await readSafetensors(`${fixtures}golden_${network}.safetensors`);
  const x = toFloat32(golden.tensors.get("input")!);
  using a = Model.create({ network, maxBatch: 4, threads: 2 });
  using b = Model.create({ network, maxBatch: 4, threads: 2 });
  const copy = () => {
    for (const t of a.tensors()) b.write(t.name, a.read(t.name));
  };
  for (const t of a.tensors()) if (t.name !== "features.weight") a.write(t.name, seeded(t.name, t.shape));
  const before = await a.forward(x, 4);
  await a.forward(x, 4, { train: true }); // moves every running mean and variance
  copy();
  const after = await a.forward(x, 4);
  assert.ok(maxRel(after, before) > 1e-3, "the training forward should change the eval embeddings");
  assert.ok(maxRel(after, await b.forward(x, 4)) < 1e-6, "eval after a training forward");

  const name = "layer1.0.bn2.running_var";
  a.write(name, a.read(name).map((v) => v * 2));
  copy();
  const written = await a.forward(x, 4);
  assert.ok(maxRel(written, after) > 1e-4, "the write should change the eval embeddings");
  assert.ok(maxRel(written, await b.forward(x, 4)) < 1e-6, "eval after a write");

  const two = await a.forward(x.subarray(0, 2 * 3 * 112 * 112), 2);
  assert.ok(maxRel(two, written.subarray(0, 2 * 512)) < 1e-5, "batch 2 after batch 4");
  assert.ok(maxRel(await a.forward(x, 4), written) < 1e-6, "batch 4 again");
});

Deno.test("winograd eval matches PyTorch too (direct where the CPU has no Winograd)", async () => {
  const golden = await readSafetensors(`${fixtures}golden_r18.safetensors`);
  using model = Model.create({ network: "r18", maxBatch: 4, threads: 2, winograd: true });
  for (const t of model.tensors()) {
    if (t.name !== "features.weight") model.write(t.name, seeded(t.name, t.shape));
  }
  const emb = await model.forward(toFloat32(golden.tensors.get("input")!), 4);
  const want = toFloat32(golden.tensors.get("eval_emb")!);
  assert.ok(maxRel(emb, want) < 1e-4, `eval embeddings ${maxRel(emb, want)}`);
});

Deno.test("parameter counts match arcface_torch", () => {
  // sum(p.numel()) of tests/golden/backbones.py (arcface_torch's modules) in PyTorch 1.13.
  const expected: Record<string, number> = {
    r18: 24_025_600,
    r34: 34_139_328,
    r50: 43_590_848,
    r100: 65_156_160,
    mbf: 2_059_520,
  };
  for (const [network, count] of Object.entries(expected)) {
    using model = Model.create({ network, maxBatch: 2, threads: 1 });
    assert.equal(model.info.parameters, count, network);
  }
});

Deno.test("r2060 is known by name and refused with its size when it does not fit", () => {
  try {
    using model = Model.create({ network: "r2060", maxBatch: 64, threads: 1 });
    assert.ok(model.info.parameters > 100e6);
  } catch (e) {
    assert.ok(e instanceof AfcError);
    assert.match((e as Error).message, /r2060.*parameters.*GiB/);
  }
});

Deno.test("a model for inference at batch 1000 is not refused for the memory training would need", async () => {
  // mbf training keeps about 85 MB per image, inference a few activation slots.
  using model = Model.create({ network: "mbf", maxBatch: 1000, threads: 1 });
  const x = new Float32Array(1000 * 3 * 112 * 112);
  await assert.rejects(
    () => model.forward(x, 1000, { train: true }),
    /"mbf" has 2059520 parameters \(2\.1 M\) and needs about \d+\.\d+ GiB for training at batch 1000/,
  );
});

Deno.test("bad input: unknown backbone, wrong shapes, unknown tensor, use after close", async () => {
  assert.throws(() => Model.create({ network: "r51", maxBatch: 2 }), (e: Error) => {
    assert.ok(e instanceof AfcError);
    assert.match(e.message, /"r51" is unknown: expected one of .*r50.*mbf/);
    return true;
  });
  assert.throws(() => Model.create({ network: "mbf", maxBatch: 0 }), RangeError);
  assert.throws(() => Model.create({ network: "mbf", maxBatch: 2, threads: 1.5 }), /Invalid threads "1\.5"/);
  const model = Model.create({ network: "mbf", maxBatch: 2, threads: 1 });
  await assert.rejects(model.forward(new Float32Array(10), 1), /input has 10 values, expected 1×3×112×112/);
  await assert.rejects(
    model.forward(new Float32Array(3 * 3 * 112 * 112), 3),
    /batch 3 is outside \[0, max_batch 2\]/,
  );
  assert.throws(() => model.read("conv9.weight"), /tensor "conv9.weight" does not exist in backbone "mbf"/);
  assert.throws(
    () => model.write("features.layers.3.weight", new Float32Array(3)),
    /got 3 values, expected 512/,
  );
  await assert.rejects(model.backward(new Float32Array(2 * 512), 2), /needs a training-mode forward first/);
  await assert.rejects(
    model.forward(new Float32Array(3 * 112 * 112), 1, { train: true }),
    /training mode needs a batch of at least 2/,
  );
  const bad = model.stateDict();
  bad.delete("layers.0.layers.0.weight");
  bad.set("fc.weight", { shape: [2, 2], data: new Float32Array(4) });
  assert.throws(
    () => model.loadStateDict(bad),
    /1 missing \("layers.0.layers.0.weight"\); 1 unexpected \("fc.weight"\)/,
  );
  model.close();
  model.close(); // idempotent
  await assert.rejects(model.forward(new Float32Array(0), 0), /Cannot run forward: model is closed/);
  assert.throws(() => model.read("features.layers.3.weight"), /model is closed/);
});

Deno.test("optimizer step on the model equals torch.optim.SGD on a copy of its parameters", async () => {
  const { Optimizer } = await import("../../lib/head.ts");
  using model = Model.create({ network: "mbf", maxBatch: 2, threads: 2 });
  using opt = new Optimizer({ kind: "sgd", momentum: 0.9, weightDecay: 5e-4 });
  using ref = new Optimizer({ kind: "sgd", momentum: 0.9, weightDecay: 5e-4 });
  const name = "layers.0.layers.0.weight";
  const slot = ref.add(model.read(name).length);
  const x = new Float32Array(2 * 3 * 112 * 112).map((_, i) => Math.sin(i));
  const param = model.read(name);
  for (let step = 0; step < 2; step++) {
    const emb = await model.forward(x, 2, { train: true });
    await model.backward(emb, 2);
    const grad = model.grad(name);
    await ref.step(slot, param, grad, 0.1, 0.5);
    await model.step(opt, 0.1, 0.5);
  }
  assert.deepEqual(model.read(name), param);
  assert.deepEqual(model.readState(name, 0), ref.readState(slot, 0, param.length));
  assert.equal(model.optimSteps, 2);
  let sum = 0;
  for (const p of model.parameters()) for (const v of model.grad(p)) sum += v * v;
  assert.ok(Math.abs(model.gradSumSquares() - sum) / sum < 1e-6);
  model.writeState(name, 0, new Float32Array(param.length).fill(1));
  assert.equal(model.readState(name, 0)[5], 1);
  assert.throws(
    () => model.readState("layers.0.layers.1.running_mean", 0),
    /no optimizer state: it is a buffer/,
  );
});
