// A child process of dp_step_test.ts: one rank of a data-parallel run of a few training
// steps (the backward pass with its overlapped all-reduce, then the trainer's applyStep),
// written to <out>/rank<r>.json and rank<r>.safetensors.
// Usage: dp_step_worker.ts <out> <rank> <worldSize> <store> <globalBatch> <numClasses> <steps> <threads> <microBatches>
//
// A step of several micro-batches accumulates their gradients, as the trainer's
// gradient_acc; the micro-batches have the same images but other labels.
//
// Every rank gets the same images but its own labels: per-rank batch norm (as the seed)
// then sees the statistics one process sees on all W copies, so the result must equal the
// one-process run on the global batch, while labels, Partial FC shards and gradients differ
// between ranks.
//
// Every PReLU slope is 1, so that the comparison measures the data parallelism and not luck
// of rounding: PReLU's derivative jumps at 0, and one of the millions of PReLU inputs that
// rounding moves across 0 moves the update of a small tensor by ~1e-2.
import { Comm } from "../../lib/comm.ts";
import { Model } from "../../lib/model.ts";
import { Optimizer, PartialFC } from "../../lib/head.ts";
import { applyStep } from "../../lib/trainer.ts";
import { setMbfPReLUSlopesToOne } from "./mbf_prelu.ts";

const [out, r, w, store, g, c, s, t, mb] = Deno.args;
const rank = Number(r),
  worldSize = Number(w),
  globalBatch = Number(g),
  numClasses = Number(c),
  steps = Number(s),
  microBatches = Number(mb);
const local = globalBatch / worldSize;
const images = 4; // distinct images; a batch is these, in turn (a rank's batch in the test)
using comm = worldSize > 1
  ? await Comm.create({ rank, worldSize, store, runId: "dp", timeoutMs: 60_000 })
  : null;
using model = Model.create({ network: "mbf", maxBatch: local, threads: Number(t) });
using pfc = new PartialFC({
  numClasses,
  embeddingSize: 512,
  maxBatch: local,
  threads: Number(t),
  comm: comm?.handle,
});
using opt = new Optimizer({ kind: "sgd", momentum: 0.9, weightDecay: 5e-4 });
setMbfPReLUSlopesToOne(model);
// Class c's row depends on c only, whatever the sharding.
const rows = new Float32Array(pfc.numLocal * 512);
for (let i = 0; i < rows.length; i++) rows[i] = Math.sin(pfc.classStart * 512 + i) * 0.05;
pfc.writeWeight(rows);

const pixels = 3 * 112 * 112;
const input = new Float32Array(local * pixels);
for (let i = 0; i < local; i++) {
  for (let k = 0; k < pixels; k++) input[i * pixels + k] = Math.sin((i % images) * 1e4 + k * 0.37);
}
// Labels by global position; this rank holds positions [rank·local, (rank+1)·local). Each
// group of `images` positions is shifted by one, so that neighbouring ranks get other labels
// even with 2 classes, and their gradients differ.
const label = (pos: number) => (pos * 7 + 3 + Math.floor(pos / images)) % numClasses;
const labels = new BigInt64Array(local);

const losses: number[] = [];
for (let step = 0; step < steps; step++) {
  let loss = 0;
  for (let micro = 0; micro < microBatches; micro++) {
    for (let i = 0; i < local; i++) labels[i] = BigInt(label(micro * globalBatch + rank * local + i));
    const emb = await model.forward(input, local, { train: true });
    const out = await pfc.forwardBackward(emb, labels, micro > 0);
    // The step's last backward pass averages the gradients over the ranks.
    await model.backward(out.dEmbeddings as Float32Array<ArrayBuffer>, local, {
      accumulate: micro > 0,
      allReduce: micro === microBatches - 1 ? comm ?? undefined : undefined,
    });
    loss = out.loss;
    losses.push(loss);
  }
  const applied = await applyStep({ model, pfc, opt }, { lr: 0.1, loss, microBatches, maxGradNorm: 5 });
  if (!applied) throw new Error(`step ${step} was skipped`);
}
await model.save(`${out}/rank${rank}.safetensors`);
await Deno.writeTextFile(
  `${out}/rank${rank}.json`,
  JSON.stringify({ losses, classStart: pfc.classStart, rows: [...pfc.readWeight()] }),
);
