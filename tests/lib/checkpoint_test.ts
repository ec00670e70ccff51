// Resuming under another split of the global batch (ranks × batch_size × gradient_acc): the
// run continues after the same images, at the step the new split reaches there.
import assert from "node:assert/strict";
import { resumeState, type TrainState } from "../../lib/checkpoint.ts";

// Stopped in epoch 2 after 3 micro-batches of 15 on each of 2 ranks (90 images), at step 23
// of a run with 10 steps per epoch.
const stopped: TrainState = { epoch: 2, microBatch: 3, globalStep: 23, schedulerLastEpoch: 23, lossScale: 1 };
const two = { worldSize: 2, batchSize: 15, gradientAcc: 1 };

Deno.test("the same split continues exactly where it stopped", () => {
  assert.deepEqual(resumeState(stopped, two, { ...two, stepsPerEpoch: 10 }, "w"), stopped);
});

Deno.test("1 rank of 15: 6 micro-batches into epoch 2 of 20 steps, step 46, the schedule with it", () => {
  const s = resumeState(
    stopped,
    two,
    { worldSize: 1, batchSize: 15, gradientAcc: 1, stepsPerEpoch: 20 },
    "w",
  );
  assert.deepEqual(s, { epoch: 2, microBatch: 6, globalStep: 46, schedulerLastEpoch: 46, lossScale: 1 });
});

Deno.test("3 ranks of 10 with gradient_acc 3: 90 images are one step of 3 micro-batches", () => {
  const s = resumeState(stopped, two, { worldSize: 3, batchSize: 10, gradientAcc: 3, stepsPerEpoch: 3 }, "w");
  assert.deepEqual([s.epoch, s.microBatch, s.globalStep, s.schedulerLastEpoch], [2, 3, 7, 7]);
});

Deno.test("an epoch boundary fits any split", () => {
  const atEpoch = { ...stopped, epoch: 3, microBatch: 0, globalStep: 30, schedulerLastEpoch: 30 };
  const s = resumeState(atEpoch, two, { worldSize: 4, batchSize: 15, gradientAcc: 1, stepsPerEpoch: 5 }, "w");
  assert.deepEqual([s.epoch, s.microBatch, s.globalStep], [3, 0, 15]);
});

Deno.test("a stop that is no whole number of the new steps is refused, with both splits", () => {
  assert.throws(
    () => resumeState(stopped, two, { worldSize: 1, batchSize: 15, gradientAcc: 4, stepsPerEpoch: 5 }, "w"),
    /Cannot resume in "w": it stopped 90 images into epoch 2 \(2 ranks × batch_size 15\), which is not a whole number of this run's steps of 60 images \(1 ranks × batch_size 15 × gradient_acc 4\)/,
  );
});
