import assert from "node:assert/strict";
import { worldFromEnv } from "../../lib/launch.ts";
import { readSafetensors, toFloat32 } from "../../lib/safetensors.ts";
import { loadCheckpoint, saveCheckpoint } from "../../lib/checkpoint.ts";
import { Model } from "../../lib/model.ts";
import { PartialFC } from "../../lib/head.ts";
import { orlEpochArgs } from "./orl_epoch.ts";
import { decodeSet, readBin, verify } from "../../lib/verification.ts";

const root = new URL("../..", import.meta.url).pathname;

Deno.test("world from torchrun's environment, Slurm's, and none", () => {
  assert.deepEqual(
    worldFromEnv({
      RANK: "3",
      WORLD_SIZE: "4",
      LOCAL_RANK: "1",
      LOCAL_WORLD_SIZE: "2",
      MASTER_ADDR: "10.0.0.1",
      MASTER_PORT: "6379",
      TORCHELASTIC_RUN_ID: "job7",
    }),
    {
      rank: 3,
      worldSize: 4,
      localRank: 1,
      localWorldSize: 2,
      store: "redis://10.0.0.1:6379",
      runId: "job7",
      timeoutMs: 300000,
      address: undefined,
    },
  );
  const slurm = worldFromEnv({
    SLURM_PROCID: "5",
    SLURM_NTASKS: "8",
    SLURM_LOCALID: "1",
    SLURM_NTASKS_PER_NODE: "4(x2)",
    SLURM_JOB_ID: "991",
    ARCFACE_RDZV: "/shared/rdzv",
  });
  assert.deepEqual(
    [slurm.rank, slurm.worldSize, slurm.localRank, slurm.localWorldSize, slurm.store, slurm.runId],
    [5, 8, 1, 4, "/shared/rdzv", "991"],
  );
  // A second machine's first rank: the thread/device slot is the local rank, never the global one.
  const second = worldFromEnv({
    RANK: "8",
    WORLD_SIZE: "16",
    LOCAL_RANK: "0",
    LOCAL_WORLD_SIZE: "8",
    ARCFACE_RDZV: "/x",
  });
  assert.deepEqual([second.rank, second.localRank, second.localWorldSize], [8, 0, 8]);
  const one = worldFromEnv({});
  assert.deepEqual([one.rank, one.worldSize, one.localRank, one.localWorldSize], [0, 1, 0, 1]);
});

Deno.test("a bad or incomplete launch environment is named", () => {
  assert.throws(() => worldFromEnv({ RANK: "2", WORLD_SIZE: "2" }), /rank 2 of world size 2/);
  assert.throws(
    () => worldFromEnv({ RANK: "x", WORLD_SIZE: "2" }),
    /RANK="x": expected a non-negative integer/,
  );
  assert.throws(() => worldFromEnv({ RANK: "0", WORLD_SIZE: "2" }), /no rendezvous store \(set ARCFACE_RDZV/);
});

async function launch(args: string[]): Promise<{ code: number; text: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${root}cli.ts`, "launch", ...args],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, text: dec.decode(out.stdout) + dec.decode(out.stderr) };
}

/** One epoch of 60 ORL images over `nproc` ranks of 15, every rank saving its checkpoint. */
function launchEpoch(nproc: number, out: string, extra: string[] = []) {
  return launch([`--nproc-per-node=${nproc}`, ...orlEpochArgs(out), ...extra]);
}

Deno.test("launch: bad rendezvous, address and config are named once, before or as ranks start", async () => {
  let r = await launch(["--nproc-per-node=2", "--rdzv=/nonexistent-afc/dir", "configs/orl_mbf.yaml"]);
  assert.equal(r.code, 2);
  assert.match(r.text, /Invalid --rdzv "\/nonexistent-afc\/dir": no such directory/);
  await assert.rejects(() => Deno.stat("/nonexistent-afc"), Deno.errors.NotFound);
  r = await launch(["--nproc-per-node=2", "--master-addr=10.0.0.1", "configs/orl_mbf.yaml"]);
  assert.equal(r.code, 2);
  assert.match(r.text, /--master-addr and --master-port go together/);
  r = await launch(["--nproc-per-node=2", "configs/orl_mbf.yaml", "--bogus=1"]);
  assert.equal(r.code, 2);
  assert.equal([...r.text.matchAll(/unknown key "bogus"/g)].length, 1, r.text);
  const file = await Deno.makeTempFile();
  r = await launch(["--nproc-per-node=2", "configs/orl_mbf.yaml", `--output=${file}`]);
  assert.equal(r.code, 2);
  assert.equal([...r.text.matchAll(/Cannot use the output folder/g)].length, 1, r.text);
  r = await launch(["--nproc-per-node=2", "--address=nosuchhost.invalid", ...orlEpochArgs("/tmp/unused")]);
  assert.equal(r.code, 1);
  assert.match(
    r.text,
    /address "nosuchhost\.invalid" is neither a network interface nor a host name that resolves/,
  );
});

Deno.test("launch: 2 ranks train one epoch; rank 0 logs, every rank writes its Partial FC shard", async () => {
  const out = await Deno.makeTempDir();
  const r = await launchEpoch(2, out, ["--frequent=1", `--val_targets=[${root}data/orl_val.bin]`]);
  assert.equal(r.code, 0, r.text);
  assert.match(r.text, /Ranks: 2, threads per rank: 1/);
  assert.equal([...r.text.matchAll(/Global Step: \d+/g)].length, 2, r.text); // rank 0 only
  // The ranks share the verification; its figures are those of the saved model (rank 0's).
  const logged = [...r.text.matchAll(/\[orl_val\]\[2\]XNorm: ([\d.]+)/g)].map((m) => Number(m[1]));
  assert.equal(logged.length, 1, r.text);
  using model = await Model.load(`${out}/model.safetensors`, { maxBatch: 64, threads: 2 });
  const set = decodeSet({ ...(await readBin(`${root}data/orl_val.bin`)), name: "orl_val" });
  const alone = await verify(set, (x, n) => model.forward(x, n), { batchSize: 64 });
  assert.ok(Math.abs(alone.xnorm - logged[0]) < 1e-4 * alone.xnorm, `XNorm ${logged[0]} vs ${alone.xnorm}`);
  const shards = await Promise.all(
    [0, 1].map((k) => readSafetensors(`${out}/checkpoint_rank${k}.safetensors`)),
  );
  assert.deepEqual(shards.map((s) => s.tensors.get("pfc.weight")!.shape), [[15, 512], [15, 512]]);
  assert.deepEqual(
    shards.map((s) => JSON.parse(s.metadata.arcface_checkpoint).class_start),
    [0, 15],
  );
});

Deno.test("launch: one rank's failure stops the others with its message and exit code", async () => {
  const r = await launch(["--nproc-per-node=2", "--timeout-s=60", "configs/orl_mbf.yaml", "--num_classes=5"]);
  assert.equal(r.code, 1, r.text);
  assert.match(r.text, /largest label is 29 but num_classes is 5/);
  assert.match(r.text, /Rank [01] failed \(exit code 1\): stopping the other ranks/);
});

Deno.test("resume on another world size: 2 ranks' shards load on 1 rank, class c keeps its row", async () => {
  const out = await Deno.makeTempDir();
  const r = await launchEpoch(2, out);
  assert.equal(r.code, 0, r.text);
  const shards = await Promise.all(
    [0, 1].map((k) => readSafetensors(`${out}/checkpoint_rank${k}.safetensors`)),
  );
  const rows = shards.map((s) => toFloat32(s.tensors.get("pfc.weight")!));
  const momentum = shards.map((s) => toFloat32(s.tensors.get("pfc_state0")!));

  // One rank now: the whole class range, rows in class order, momentum with them.
  using model = Model.create({ network: "mbf", maxBatch: 30, threads: 2 });
  using pfc = new PartialFC({ numClasses: 30, embeddingSize: 512, maxBatch: 30, threads: 2 });
  const state = await loadCheckpoint(out, 0, "sgd", model, pfc);
  assert.deepEqual([state.epoch, state.globalStep], [1, 2]);
  assert.deepEqual(pfc.readWeight(), Float32Array.from([...rows[0], ...rows[1]]));
  assert.deepEqual(pfc.readState(0), Float32Array.from([...momentum[0], ...momentum[1]]));

  // A shard gone: refused with both counts, never re-initialised.
  const partial = await Deno.makeTempDir();
  await Deno.copyFile(`${out}/checkpoint_rank0.safetensors`, `${partial}/checkpoint_rank0.safetensors`);
  await assert.rejects(
    () => loadCheckpoint(partial, 0, "sgd", model, pfc),
    /1 Partial FC shards \(of 2 ranks\) hold 15 contiguous classes from 0 up to 15, but num_classes is 30/,
  );

  // Saving on 1 rank removes rank 1's shard of the old run, which would make the folder two runs.
  await saveCheckpoint(out, 0, 1, "sgd", model, pfc, state);
  assert.deepEqual([...Deno.readDirSync(out)].map((e) => e.name).filter((n) => n.startsWith("checkpoint")), [
    "checkpoint_rank0.safetensors",
  ]);
  assert.equal((await loadCheckpoint(out, 0, "sgd", model, pfc)).worldSize, 1);
  await Deno.remove(partial, { recursive: true });
  await Deno.remove(out, { recursive: true });
});

/** Rank `r` of 2, started by hand with torchrun's environment and our store variables. */
function rankCommand(r: number, store: string, runId: string, args: string[]): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${root}cli.ts`, "train", "configs/orl_mbf.yaml", "--val_targets=[]", ...args],
    cwd: root,
    env: {
      RANK: String(r),
      WORLD_SIZE: "2",
      LOCAL_RANK: String(r),
      LOCAL_WORLD_SIZE: "2",
      ARCFACE_RDZV: store,
      ARCFACE_RUN_ID: runId,
      ARCFACE_TIMEOUT_MS: "20000",
    },
    stdout: "piped",
    stderr: "piped",
  });
}

Deno.test("a rank killed mid-training: the other exits non-zero naming the lost rank, within the timeout", async () => {
  const store = await Deno.makeTempDir(), out = await Deno.makeTempDir();
  const rank = (r: number) => rankCommand(r, store, "kill-test", ["--frequent=1", `--output=${out}`]).spawn();
  const r0 = rank(0), r1 = rank(1);
  // Kill rank 1 once rank 0 has logged a step.
  const reader = r0.stdout.getReader();
  let text = "";
  while (!/Global Step: 1 /.test(text)) {
    const { value, done } = await reader.read();
    if (done) break;
    text += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  const killed = performance.now();
  r1.kill("SIGKILL");
  await r1.status;
  const o0 = await r0.output();
  const err = new TextDecoder().decode(o0.stderr);
  assert.notEqual(o0.code, 0);
  assert.match(err, /lost rank\(s\) 1/);
  assert.ok(performance.now() - killed < 25_000, "rank 0 noticed within the timeout");
});

Deno.test("save with 4 ranks (8, 8, 7, 7 classes), resume on 3 (10, 10, 10): every row and its momentum", async () => {
  const out = await Deno.makeTempDir();
  const r = await launchEpoch(4, out, ["--threads=1"]);
  assert.equal(r.code, 0, r.text);
  const saved = await Promise.all(
    [0, 1, 2, 3].map((k) => readSafetensors(`${out}/checkpoint_rank${k}.safetensors`)),
  );
  assert.deepEqual(saved.map((s) => s.tensors.get("pfc.weight")!.shape[0]), [8, 8, 7, 7]);
  const rows = saved.flatMap((s) => [...toFloat32(s.tensors.get("pfc.weight")!)]);
  const momentum = saved.flatMap((s) => [...toFloat32(s.tensors.get("pfc_state0")!)]);

  const store = await Deno.makeTempDir();
  const worker = new URL("./resume_worker.ts", import.meta.url).pathname;
  const outs = await Promise.all([0, 1, 2].map((k) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", worker, store, "resume-4-3", String(k), "3", out, "30"],
      stdout: "piped",
      stderr: "piped",
    }).output()
  ));
  for (const [k, o] of outs.entries()) {
    assert.equal(o.code, 0, new TextDecoder().decode(o.stderr));
    const got = JSON.parse(new TextDecoder().decode(o.stdout));
    assert.deepEqual([got.start, got.count, got.step], [10 * k, 10, 1]); // 60 images over 4 ranks of 15: one step
    assert.deepEqual(got.weight, rows.slice(10 * k * 512, (10 * k + 10) * 512));
    assert.deepEqual(got.momentum, momentum.slice(10 * k * 512, (10 * k + 10) * 512));
  }
});

Deno.test("10 classes saved by 4 ranks (3, 3, 2, 2) resume on 3 (4, 3, 3): every row and its momentum", async () => {
  const dir = await Deno.makeTempDir();
  const worker = new URL("./resume_worker.ts", import.meta.url).pathname;
  const world = async (w: number, runId: string, extra: string[]) => {
    const store = await Deno.makeTempDir();
    const outs = await Promise.all([...Array(w).keys()].map((k) =>
      new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", worker, store, runId, String(k), String(w), dir, "10", ...extra],
        stdout: "piped",
        stderr: "piped",
      }).output()
    ));
    for (const o of outs) assert.equal(o.code, 0, new TextDecoder().decode(o.stderr));
    return outs.map((o) => new TextDecoder().decode(o.stdout));
  };
  await world(4, "save-10", ["save"]);
  const saved = await Promise.all(
    [0, 1, 2, 3].map((k) => readSafetensors(`${dir}/checkpoint_rank${k}.safetensors`)),
  );
  assert.deepEqual(saved.map((s) => s.tensors.get("pfc.weight")!.shape[0]), [3, 3, 2, 2]);
  const outs = await world(3, "load-10", []);
  for (const [k, text] of outs.entries()) {
    const got = JSON.parse(text);
    const start = [0, 4, 7][k], count = [4, 3, 3][k];
    const rows = Array.from({ length: count * 512 }, (_, i) => start * 512 + i);
    assert.deepEqual([got.start, got.count], [start, count]);
    assert.deepEqual(got.weight, rows);
    assert.deepEqual(got.momentum, rows.map((v) => v + 0.5));
  }
});

Deno.test("ranks started with different configs are refused by name, before their collectives disagree", async () => {
  const store = await Deno.makeTempDir(), out = await Deno.makeTempDir();
  const rank = (r: number, extra: string[]) => rankCommand(r, store, "config-test", extra).output();
  // Rank 1 trains another network, with its own output folder and thread count (allowed).
  const [o0, o1] = await Promise.all([
    rank(0, [`--output=${out}/a`]),
    rank(1, [`--output=${out}/b`, "--network=r18", "--threads=1"]),
  ]);
  const text = (o: Deno.CommandOutput) =>
    new TextDecoder().decode(o.stdout) + new TextDecoder().decode(o.stderr);
  assert.equal(o0.code, 1, text(o0));
  assert.equal(o1.code, 1, text(o1));
  assert.match(
    text(o0),
    /the ranks were started with different configs, differing in network \(rank 0 has network "mbf"\)/,
  );
  assert.match(text(o1), /differing in network \(rank 1 has network "r18"\)/);
  await Deno.remove(store, { recursive: true });
  await Deno.remove(out, { recursive: true });
});
