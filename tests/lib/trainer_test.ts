import assert from "node:assert/strict";
import { loadConfig } from "../../lib/config.ts";
import { train, verificationPaths } from "../../lib/trainer.ts";
import { checkpointPath } from "../../lib/checkpoint.ts";
import { readSafetensors, toFloat32 } from "../../lib/safetensors.ts";
import { AfcError } from "../../ffi/status.ts";
import { Model } from "../../lib/model.ts";

const root = new URL("../..", import.meta.url).pathname;

/** A short run on the shipped ORL faces: 2 steps of 30 images per epoch. */
function tiny(output: string, extra: Record<string, unknown> = {}) {
  return loadConfig(`${root}configs/orl_mbf.yaml`, {
    rec: `${root}data/orl`,
    val_targets: [],
    num_image: 60,
    num_epoch: 2,
    warmup_epoch: 0,
    frequent: 1,
    verbose: 1000,
    threads: 2,
    output,
    ...extra,
  }, { worldSize: 1 });
}

async function weights(path: string): Promise<Map<string, Float32Array>> {
  const f = await readSafetensors(path);
  return new Map([...f.tensors].map(([k, t]) => [k, toFloat32(t)]));
}

function maxDiff(a: Map<string, Float32Array>, b: Map<string, Float32Array>): number {
  assert.deepEqual([...a.keys()], [...b.keys()]);
  let m = 0;
  for (const [k, x] of a) {
    const y = b.get(k)!;
    for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
  }
  return m;
}

Deno.test("training writes the seed's log lines, the model and a checkpoint; loss falls", async () => {
  const out = await Deno.makeTempDir();
  const result = await train(tiny(out, { save_all_states: true, num_epoch: 3 }), { console: false });
  assert.equal(result.steps, 6);
  assert.equal(result.epochs, 3);
  assert.ok(Number.isFinite(result.loss));
  const log = await Deno.readTextFile(`${out}/training.log`);
  assert.match(log, /Loss: ArcFace m=0\.5 s=64/);
  const losses = [...log.matchAll(
    /Speed [\d.]+ samples\/sec {3}Loss ([\d.]+) {3}LearningRate ([\d.]+) {3}Epoch: (\d) {3}Global Step: (\d+) {3}Required: \d+ hours/g,
  )].map((m) => Number(m[1]));
  assert.equal(losses.length, 6);
  assert.ok(losses[5] < losses[0], `loss should fall over 6 steps: ${losses}`);
  const model = await weights(`${out}/model.safetensors`);
  using fresh = Model.create({ network: "mbf", maxBatch: 2 });
  assert.deepEqual([...model.keys()].sort(), fresh.tensors().map((t) => t.name).sort());
  const ckpt = await readSafetensors(checkpointPath(out, 0));
  assert.deepEqual(ckpt.tensors.get("pfc.weight")!.shape, [30, 512]);
  const meta = JSON.parse(ckpt.metadata.arcface_checkpoint);
  assert.deepEqual(meta.state.epoch, 3);
  assert.deepEqual(meta.state.globalStep, 6);
});

Deno.test("resume restores everything: 1 epoch + 1 resumed epoch equals 2 epochs", async () => {
  const straight = await Deno.makeTempDir(), split = await Deno.makeTempDir();
  const a = await train(tiny(straight), { console: false });
  await train(tiny(split, { num_epoch: 1, save_all_states: true }), { console: false });
  const b = await train(tiny(split, { resume: true }), { console: false });
  assert.equal(b.steps, a.steps);
  const diff = maxDiff(
    await weights(`${straight}/model.safetensors`),
    await weights(`${split}/model.safetensors`),
  );
  assert.equal(diff, 0, `resumed weights differ by ${diff}`);
  assert.equal(a.loss, b.loss);
});

Deno.test("a run stopped mid-epoch leaves a checkpoint that resumes bit-exactly; onLog sees every line", async () => {
  const straight = await Deno.makeTempDir(), split = await Deno.makeTempDir();
  const cfg = { num_image: 90 }; // 3 steps per epoch, 6 in all
  await train(tiny(straight, cfg), { console: false });
  const stop = new AbortController(), lines: string[] = [];
  const first = await train(tiny(split, cfg), {
    console: false,
    signal: stop.signal,
    onLog: (line) => {
      lines.push(line);
      if (/Global Step: 2 /.test(line)) stop.abort();
    },
  });
  assert.deepEqual([first.steps, first.epochs, first.stopped], [2, 0, true]);
  assert.ok(lines.some((l) => l.startsWith("Stopped at step 2")), lines.join("\n"));
  assert.ok(lines.some((l) => l.startsWith("Stopped: 2 steps, 0 epochs")), lines.join("\n"));
  assert.ok(lines.some((l) => l.startsWith("Loss: ArcFace")));
  assert.ok(
    lines.some((l) => /^Warning: num_image is 90 but ".*" holds 300 images/.test(l)),
    lines.join("\n"),
  );
  const meta = JSON.parse((await readSafetensors(checkpointPath(split, 0))).metadata.arcface_checkpoint);
  assert.deepEqual([meta.state.epoch, meta.state.microBatch, meta.state.globalStep], [0, 2, 2]);
  assert.equal(meta.state.config.network, "mbf");
  const second = await train(tiny(split, { ...cfg, resume: true }), { console: false });
  assert.deepEqual([second.steps, second.epochs, second.stopped], [6, 2, false]);
  // Finished without save_all_states: the stop's checkpoint is gone, so that resuming again
  // cannot roll the finished model back to step 2.
  assert.throws(() => Deno.statSync(checkpointPath(split, 0)), Deno.errors.NotFound);
  await assert.rejects(
    () => train(tiny(split, { ...cfg, resume: true }), { console: false }),
    /no checkpoint_rank<r>\.safetensors/,
  );
  const diff = maxDiff(
    await weights(`${straight}/model.safetensors`),
    await weights(`${split}/model.safetensors`),
  );
  assert.equal(diff, 0, `resumed weights differ by ${diff}`);
  const png = await Deno.readFile(`${straight}/loss.png`);
  assert.deepEqual([...png.subarray(1, 4)], [80, 78, 71]); // "PNG"
});

Deno.test("resume without checkpoints, or from a damaged one, fails clearly and keeps the files", async () => {
  const out = await Deno.makeTempDir();
  await assert.rejects(
    () => train(tiny(out, { resume: true }), { console: false }),
    (e: Error) =>
      e instanceof AfcError && /no checkpoint_rank<r>\.safetensors.*save_all_states: true/.test(e.message),
  );
  await train(tiny(out, { num_epoch: 1, save_all_states: true }), { console: false });
  const path = checkpointPath(out, 0);
  const bytes = await Deno.readFile(path);
  await Deno.writeFile(path, bytes.subarray(0, bytes.length - 100));
  await assert.rejects(
    () => train(tiny(out, { resume: true }), { console: false }),
    (e: Error) => e.message.includes(path),
  );
  assert.equal((await Deno.readFile(path)).length, bytes.length - 100);
  // One flipped bit in the tensor data: the file still parses, the checksum refuses it.
  const flipped = bytes.slice();
  flipped[flipped.length - 5] ^= 1;
  await Deno.writeFile(path, flipped);
  await assert.rejects(
    () => train(tiny(out, { resume: true }), { console: false }),
    (e: Error) => e instanceof AfcError && e.message.includes(path) && /checksum.*damaged/.test(e.message),
  );
});

Deno.test("labels beyond num_classes and num_image beyond the data are refused before any step", async () => {
  const out = await Deno.makeTempDir();
  await assert.rejects(
    () => train(tiny(out, { num_classes: 10 }), { console: false }),
    /largest label is 29 but num_classes is 10/,
  );
  await assert.rejects(
    () => train(tiny(out, { num_image: 3000 }), { console: false }),
    /holds 300 images but num_image is 3000 \(set num_image to 300\)/,
  );
});

Deno.test("a diverging run stops after 5 non-finite steps, naming step, lr and scale", async () => {
  const out = await Deno.makeTempDir();
  await assert.rejects(
    () => train(tiny(out, { lr: 1e38, num_image: 300, num_epoch: 1 }), { console: false }),
    (e: Error) =>
      e instanceof AfcError && e.code === "NUMERIC" &&
      /5 steps in a row had a non-finite loss or gradient \(step \d+, lr [\d.e+]+, loss scale 1\)/.test(
        e.message,
      ),
  );
  // The log file ends with the error that ended the run.
  const log = (await Deno.readTextFile(`${out}/training.log`)).trimEnd().split("\n");
  assert.match(log.at(-1)!, /-Failed: Cannot train: 5 steps in a row had a non-finite loss or gradient/);
});

Deno.test("verification targets: names in the rec folder, paths ending in .bin as given", () => {
  const c = loadConfig(
    {
      rec: "/data/ms1m",
      num_classes: 10,
      num_image: 1000,
      num_epoch: 1,
      val_targets: ["lfw", "x/orl_val.bin"],
    },
    {},
    { worldSize: 1 },
  );
  assert.deepEqual([...verificationPaths(c)], [["lfw", "/data/ms1m/lfw.bin"], ["orl_val", "x/orl_val.bin"]]);
});

Deno.test("verification runs on the shipped ORL set with the seed's lines; a missing set is a warning", async () => {
  const out = await Deno.makeTempDir();
  const result = await train(
    tiny(out, { num_epoch: 1, val_targets: [`${root}data/orl_val.bin`, "missing_set"], verbose: 2 }),
    { console: false },
  );
  const log = await Deno.readTextFile(`${out}/training.log`);
  assert.match(log, /Warning: verification set "missing_set" not found at ".*data\/orl\/missing_set\.bin"/);
  assert.match(log, /\[orl_val\]\[2\]XNorm: [\d.]+/);
  assert.match(log, /\[orl_val\]\[2\]Accuracy-Flip: 0\.\d{5}\+-0\.\d{5}/);
  assert.match(log, /\[orl_val\]\[2\]Accuracy-Highest: 0\.\d{5}/);
  // Two steps in, the running batch-norm statistics are far from settled: the figures are
  // real but low (the default run reaches about 0.9 after 300 steps).
  const v = result.verification.orl_val;
  assert.ok(
    v.accuracy >= 0.5 && v.accuracy <= 1 && v.highest === v.accuracy && v.xnorm > 0,
    JSON.stringify(v),
  );
  assert.equal(v.step, 2);
});
