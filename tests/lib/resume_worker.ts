// A child process of launch_test.ts: joins a world of W ranks, loads the checkpoints of a
// folder into its Partial FC shard, and prints its class range with the rows and momentum.
// With "save" it instead writes a checkpoint whose row of class c holds c·512 + j and whose
// momentum holds c·512 + j + 0.5, so that any later partition knows every value it must find.
// Usage: resume_worker.ts <store> <runId> <rank> <worldSize> <checkpoint folder> <numClasses> [save]
import { Comm } from "../../lib/comm.ts";
import { Model } from "../../lib/model.ts";
import { PartialFC } from "../../lib/head.ts";
import { loadCheckpoint, saveCheckpoint } from "../../lib/checkpoint.ts";

const [store, runId, r, w, dir, classes, mode] = Deno.args;
using comm = await Comm.create({ rank: Number(r), worldSize: Number(w), store, runId, timeoutMs: 60_000 });
using model = Model.create({ network: "mbf", maxBatch: 15, threads: 1 });
using pfc = new PartialFC({
  numClasses: Number(classes),
  embeddingSize: 512,
  maxBatch: 15,
  threads: 1,
  comm: comm.handle,
});
if (mode === "save") {
  const values = Float32Array.from({ length: pfc.numLocal * 512 }, (_, i) => pfc.classStart * 512 + i);
  if (pfc.numLocal) {
    pfc.writeWeight(values);
    pfc.writeState(0, values.map((v) => v + 0.5));
  }
  const state = { epoch: 1, microBatch: 0, globalStep: 1, schedulerLastEpoch: 1, lossScale: 1 };
  await saveCheckpoint(dir, Number(r), Number(w), "sgd", model, pfc, state);
  Deno.exit(0);
}
const state = await loadCheckpoint(dir, Number(r), "sgd", model, pfc);
console.log(JSON.stringify({
  start: pfc.classStart,
  count: pfc.numLocal,
  step: state.globalStep,
  weight: [...pfc.readWeight()],
  momentum: [...pfc.readState(0)],
}));
