// A child process of launch_test.ts: joins a world of W ranks, loads the checkpoints of a
// folder into its Partial FC shard, and prints its class range with the rows and momentum.
// Usage: resume_worker.ts <store> <runId> <rank> <worldSize> <checkpoint folder> <numClasses>
import { Comm } from "../../lib/comm.ts";
import { Model } from "../../lib/model.ts";
import { PartialFC } from "../../lib/head.ts";
import { loadCheckpoint } from "../../lib/checkpoint.ts";

const [store, runId, r, w, dir, classes] = Deno.args;
using comm = await Comm.create({ rank: Number(r), worldSize: Number(w), store, runId, timeoutMs: 60_000 });
using model = Model.create({ network: "mbf", maxBatch: 15, threads: 1 });
using pfc = new PartialFC({
  numClasses: Number(classes),
  embeddingSize: 512,
  maxBatch: 15,
  threads: 1,
  comm: comm.handle,
});
const state = await loadCheckpoint(dir, Number(r), "sgd", model, pfc);
console.log(JSON.stringify({
  start: pfc.classStart,
  count: pfc.numLocal,
  step: state.globalStep,
  weight: [...pfc.readWeight()],
  momentum: [...pfc.readState(0)],
}));
