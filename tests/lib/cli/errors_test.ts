// Bad command lines get one clear message and an exit code, before any work or file is made.
import assert from "node:assert/strict";
import { main as trainMain } from "../../../lib/cli/train.ts";
import { main as exportMain } from "../../../lib/cli/export.ts";
import { main as evalMain } from "../../../lib/cli/eval.ts";
import { main as launchMain } from "../../../lib/cli/launch.ts";
import { main as importMain } from "../../../lib/cli/import.ts";
import { Model } from "../../../lib/model.ts";

const root = new URL("../../..", import.meta.url).pathname;

async function run(main: (a: string[]) => Promise<number>, args: string[]) {
  const { log, error } = console;
  let out = "";
  console.log = console.error = (...a: unknown[]) => void (out += a.join(" ") + "\n");
  try {
    return { code: await main(args), out };
  } finally {
    console.log = log;
    console.error = error;
  }
}

const short = [
  `--rec=${root}data/orl`,
  "--num_image=60",
  "--num_epoch=1",
  "--warmup_epoch=0",
  "--val_targets=[]",
];

Deno.test("train: a space instead of '=', an unknown network, a missing rec, too many threads", async () => {
  const cfg = `${root}configs/orl_mbf.yaml`;
  let r = await run(trainMain, [cfg, "--lr", "0.1"]);
  assert.equal(r.code, 2);
  assert.match(r.out, /Invalid option "--lr": overrides are written --key=value \(e\.g\. --lr=0\.1\)/);
  const out = await Deno.makeTempDir();
  r = await run(trainMain, [cfg, ...short, "--network=r51", `--output=${out}/a`]);
  assert.equal(r.code, 1);
  assert.match(r.out, /network "r51" is not one of r18, r34, r50, r100, r200, mbf, r2060/);
  r = await run(trainMain, [cfg, ...short, "--rec=/nonexistent/ms1m", `--output=${out}/b`]);
  assert.match(r.out, /rec "\/nonexistent\/ms1m" does not exist \(set rec to the folder holding train\.rec/);
  r = await run(trainMain, [cfg, ...short, "--threads=100000", `--output=${out}/c`]);
  assert.match(r.out, /Cannot train with threads 100000: this machine has \d+ cores/);
  // Nothing was created for the refused runs.
  assert.deepEqual([...Deno.readDirSync(out)], []);
  r = await run(trainMain, [cfg, ...short, "--output=/proc/arcface-out"]);
  assert.equal(r.code, 1);
  assert.match(
    r.out,
    /Cannot use the output folder "\/proc\/arcface-out": .* \(set output to a writable folder\)/,
  );
  assert.doesNotMatch(r.out, /at .*\.ts:\d+/); // no stack trace
  // A folder that exists but takes no files (even for root) is named too.
  r = await run(trainMain, [cfg, ...short, "--output=/proc"]);
  assert.equal(r.code, 1);
  assert.match(r.out, /Cannot use the output folder "\/proc": .* \(set output to a writable folder\)/);
});

Deno.test("train: resuming a checkpoint that is already past the end of the run is refused", async () => {
  const out = await Deno.makeTempDir();
  const cfg = `${root}configs/orl_mbf.yaml`;
  let r = await run(trainMain, [cfg, ...short, "--num_epoch=2", "--save_all_states=true", `--output=${out}`]);
  assert.equal(r.code, 0, r.out);
  const before = await Deno.readFile(`${out}/model.safetensors`);
  r = await run(trainMain, [cfg, ...short, "--resume=true", `--output=${out}`]);
  assert.equal(r.code, 1);
  assert.match(
    r.out,
    /its checkpoint is at step 4 \(epoch 2\), and this run ends at step 2 \(num_epoch 1\): raise num_epoch/,
  );
  assert.deepEqual(await Deno.readFile(`${out}/model.safetensors`), before);
});

Deno.test("export and eval check their output path first: not the input, the right extension, an existing folder", async () => {
  const dir = await Deno.makeTempDir();
  {
    using model = Model.create({ network: "mbf", maxBatch: 1 });
    await model.save(`${dir}/m.safetensors`);
  }
  const before = await Deno.readFile(`${dir}/m.safetensors`);
  let r = await run(exportMain, [`${dir}/m.safetensors`, `${dir}/m.safetensors`]);
  assert.equal(r.code, 2);
  assert.match(r.out, /it is also the input/);
  assert.deepEqual(await Deno.readFile(`${dir}/m.safetensors`), before);
  r = await run(exportMain, [`${dir}/m.safetensors`, `${dir}/out.txt`]);
  assert.match(r.out, /expected a file name ending in \.onnx/);
  r = await run(evalMain, [
    "--model",
    `${dir}/m.safetensors`,
    "--bin",
    `${root}data/orl_val.bin`,
    "--roc",
    "/nodir/r.png",
  ]);
  assert.equal(r.code, 2);
  assert.match(r.out, /Cannot write "\/nodir\/r\.png": the folder "\/nodir" does not exist/);
});

Deno.test("a usage error prints the message and the synopsis, not every option", async () => {
  for (
    const [main, args, message] of [
      [importMain, [], "Expected 2 arguments, got 0"],
      [
        exportMain,
        ["m.safetensors"],
        "Cannot export: expected <model.safetensors> <out.onnx>, got 1 argument",
      ],
      [evalMain, ["--bogus"], "Unknown option '--bogus'"],
      [launchMain, ["--nproc-per-node=2"], "Expected a config file after the launch options"],
    ] as const
  ) {
    const r = await run(main, [...args]);
    assert.equal(r.code, 2, r.out);
    const lines = r.out.trimEnd().split("\n");
    assert.match(lines[0], new RegExp(message.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")));
    assert.match(lines[1], /^Usage: arcface /);
    assert.equal(lines.at(-1), "(--help describes the options)");
    assert.ok(lines.length <= 4 && !r.out.includes("Options"), r.out);
  }
});

Deno.test("launch: torchrun's spelling is ours; bad counts, late options, run ids and stores are refused up front", async () => {
  let r = await run(launchMain, ["--nproc_per_node=2", "--rdzv=http://x", "configs/orl_mbf.yaml"]);
  assert.equal(r.code, 2);
  assert.match(r.out, /Invalid --rdzv "http:\/\/x": expected a shared directory or redis:\/\/host:port/);
  r = await run(launchMain, ["--nproc_per_node=0", "configs/orl_mbf.yaml"]);
  assert.match(r.out, /Invalid --nproc-per-node "0"/);
  r = await run(launchMain, ["--nproc-per-node=0x2", "configs/orl_mbf.yaml"]);
  assert.match(r.out, /Invalid --nproc-per-node "0x2": expected an integer >= 1/);
  r = await run(launchMain, ["--timeout-s=99999999999", "configs/orl_mbf.yaml"]);
  assert.match(r.out, /Invalid --timeout-s "99999999999": expected an integer in 1\.\.604800/);
  r = await run(launchMain, ["configs/orl_mbf.yaml", "--nproc-per-node=2"]);
  assert.match(
    r.out,
    /Launch option "--nproc-per-node=2" comes after the config: give launch options before it/,
  );
  r = await run(launchMain, ["--run-id=bad/id", "configs/orl_mbf.yaml"]);
  assert.match(r.out, /Invalid --run-id "bad\/id": expected 1 to 128 letters/);
  r = await run(launchMain, ["--rdzv=redis://", "configs/orl_mbf.yaml"]);
  assert.match(r.out, /Invalid --rdzv "redis:\/\/": no host/);
  r = await run(launchMain, ["--bogus", "1", "configs/orl_mbf.yaml"]);
  assert.equal(r.code, 2);
  assert.match(
    r.out,
    /Unknown launch option "--bogus": expected --nproc-per-node, --nnodes, .*then the config file/,
  );
  r = await run(launchMain, ["--rdzv_endpoint=127.0.0.1:29400", "configs/orl_mbf.yaml"]);
  assert.match(r.out, /Unknown launch option "--rdzv_endpoint" \(--rdzv takes a shared directory or redis:/);
  r = await run(launchMain, ["--nproc-per-node", "configs/orl_mbf.yaml"]);
  assert.match(
    r.out,
    /--nproc-per-node took "configs\/orl_mbf\.yaml" as its value: give it one, as --nproc-per-node=2/,
  );
  r = await run(launchMain, ["--standalone", "--nnodes=2", "configs/orl_mbf.yaml"]);
  assert.match(r.out, /--standalone is one machine, but --nnodes is 2/);
});
