// Data parallelism end to end: W processes on one global batch against one process on all
// of it (tests/lib/dp_step_worker.ts), through one SGD step with momentum, weight decay and
// clipping: the same loss, class centres and backbone.
//
// Tolerances are float32's, measured: from initialisation (loss ≈ 30 at s = 64) every
// summation order moves the loss by up to 2e-6 (one process on 1 thread against 2 threads),
// the class centres' update by 6e-5 and the backbone's by 7e-4 (RMS, relative to the update).
// A wrong average, scale or shard moves them by order 1.
import assert from "node:assert/strict";
import { Model } from "../../lib/model.ts";
import { readSafetensors, type SafetensorsFile, toFloat32 } from "../../lib/safetensors.ts";
import { setMbfPReLUSlopesToOne } from "./mbf_prelu.ts";

const worker = new URL("./dp_step_worker.ts", import.meta.url).pathname;

interface RankOut {
  losses: number[];
  classStart: number;
  rows: number[];
}

/** Runs every rank; returns each rank's losses, all class centres in class order and each backbone. */
async function run(
  worldSize: number,
  globalBatch: number,
  numClasses: number,
  microBatches: number,
) {
  const out = await Deno.makeTempDir();
  const store = await Deno.makeTempDir();
  const args = (
    rank: number,
  ) => [worker, out, rank, worldSize, store, globalBatch, numClasses, 1, 1, microBatches];
  const outs = await Promise.all(
    Array.from({ length: worldSize }, (_, rank) =>
      new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", ...args(rank).map(String)],
        stdout: "piped",
        stderr: "piped",
      }).output()),
  );
  for (const [rank, o] of outs.entries()) {
    assert.equal(o.code, 0, `rank ${rank}: ${new TextDecoder().decode(o.stderr).slice(-800)}`);
  }
  const ranks: RankOut[] = [];
  const backbones: SafetensorsFile[] = [];
  for (let r = 0; r < worldSize; r++) {
    ranks.push(JSON.parse(await Deno.readTextFile(`${out}/rank${r}.json`)));
    backbones.push(await readSafetensors(`${out}/rank${r}.safetensors`));
  }
  await Deno.remove(out, { recursive: true });
  await Deno.remove(store, { recursive: true });
  return {
    losses: ranks.map((r) => r.losses),
    shards: ranks.map((r) => r.rows.length / 512),
    rows: ranks.flatMap((r) => r.rows),
    backbones,
  };
}

/**
 * RMS of (a − b) over the RMS of the update (b − before), floored at 1e-4: a bias that a
 * batch norm follows has no gradient, and weight decay alone moves it by 1e-6.
 */
function updateError(a: Float32Array, b: Float32Array, before: Float32Array): number {
  let d = 0, u = 0;
  for (let i = 0; i < a.length; i++) {
    d += (a[i] - b[i]) ** 2;
    u += (b[i] - before[i]) ** 2;
  }
  return Math.sqrt(d / a.length) / Math.max(Math.sqrt(u / a.length), 1e-4);
}

/** The largest update error over the trainable tensors of `a` against `b`, and where. */
function worstUpdateError(a: SafetensorsFile, b: SafetensorsFile, initial: Model): [number, string] {
  let worst: [number, string] = [0, ""];
  for (const t of initial.tensors()) {
    if (!t.trainable) continue;
    const e = updateError(
      toFloat32(a.tensors.get(t.name)!),
      toFloat32(b.tensors.get(t.name)!),
      initial.read(t.name),
    );
    if (e > worst[0]) worst = [e, t.name];
  }
  return worst;
}

for (
  const [worldSize, numClasses, shards, microBatches] of [
    [2, 10, [5, 5], 1],
    [3, 10, [4, 3, 3], 1],
    [3, 2, [1, 1, 0], 1],
    [2, 10, [5, 5], 2],
  ] as const
) {
  const what = microBatches > 1 ? `, ${microBatches} micro-batches per step` : "";
  Deno.test(`${worldSize} processes equal 1 on the same global batch: ${numClasses} classes, shards ${shards}${what}`, async () => {
    const globalBatch = 4 * worldSize;
    const one = await run(1, globalBatch, numClasses, microBatches);
    const many = await run(worldSize, globalBatch, numClasses, microBatches);
    assert.deepEqual(many.shards, shards);
    for (const losses of many.losses) {
      assert.equal(losses.length, microBatches);
      for (const [k, loss] of losses.entries()) {
        const ref = one.losses[0][k];
        assert.ok(Math.abs(loss - ref) < 5e-6 * ref, `loss ${loss} vs ${ref}`);
      }
    }
    // The worker's initial class centres: element i of the whole matrix is sin(i)·0.05.
    const initialRows = new Float32Array(numClasses * 512).map((_, i) => Math.sin(i) * 0.05);
    const rowsError = updateError(new Float32Array(many.rows), new Float32Array(one.rows), initialRows);
    assert.ok(rowsError < 1e-4, `class centres: update error ${rowsError}`);
    // Every rank applies the same averaged gradient: their backbones are identical.
    for (const [rank, st] of many.backbones.entries()) {
      for (const [name, t] of st.tensors) {
        const mine = toFloat32(t), first = toFloat32(many.backbones[0].tensors.get(name)!);
        const at = mine.findIndex((v, i) => v !== first[i]);
        assert.equal(at, -1, `${name}[${at}] differs between rank ${rank} and rank 0`);
      }
    }
    using initial = Model.create({ network: "mbf", maxBatch: 2, threads: 1 });
    setMbfPReLUSlopesToOne(initial);
    const [error, errorAt] = worstUpdateError(many.backbones[0], one.backbones[0], initial);
    assert.ok(error < 3e-3, `${worldSize} processes: backbone update error ${error} at ${errorAt}`);
  });
}
