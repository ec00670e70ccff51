// Ctrl-C as a terminal sends it: SIGINT to the whole foreground process group, which under
// `deno task` holds the task runner and the command (and the launcher's ranks). The runner
// passes the signal on too, so the command sees one key press twice. And the stops that
// reach one process only: a scheduler's SIGTERM to the launcher, a Ctrl-C to one rank.
import assert from "node:assert/strict";

const root = new URL("../../..", import.meta.url).pathname;

/** `deno task <args>` in a process group of its own, its output collected as it comes. */
function task(args: string[], command = "task") {
  const child = new Deno.Command("setsid", {
    args: [Deno.execPath(), ...(command === "task" ? ["task"] : ["run", "-A", "cli.ts"]), ...args],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let text = "";
  const dec = new TextDecoder();
  const read = (s: ReadableStream<Uint8Array>) =>
    s.pipeTo(new WritableStream({ write: (b) => void (text += dec.decode(b, { stream: true })) }));
  const done = Promise.all([read(child.stdout), read(child.stderr)]).then(() => child.status);
  return {
    done,
    text: () => text,
    /** Resolves once the output matches `re` (or the command ended). */
    async until(re: RegExp) {
      let ended = false;
      done.then(() => (ended = true));
      while (!re.test(text) && !ended) await new Promise((r) => setTimeout(r, 50));
      assert.match(text, re);
    },
    ctrlC: () => Deno.kill(-child.pid, "SIGINT"), // the group: setsid made the child its leader
    pid: child.pid,
  };
}

const run = ["--val_targets=[]", "--warmup_epoch=0", "--num_epoch=50", "--frequent=1"];

/** Launch arguments of 2 ranks of 1 thread writing to `<out>/o`. */
const launchTwo = (out: string) => [
  "launch",
  "--nproc-per-node=2",
  "configs/orl_mbf.yaml",
  ...run,
  "--threads=1",
  `--output=${out}/o`,
];

Deno.test("Ctrl-C under deno task train: one press stops after the step and writes the checkpoint", async () => {
  const out = await Deno.makeTempDir();
  const t = task(["train", "configs/orl_mbf.yaml", ...run, `--output=${out}/o`]);
  await t.until(/Global Step: 2 /);
  t.ctrlC();
  const status = await t.done;
  assert.equal(status.code, 130, t.text());
  assert.equal(t.text().match(/Interrupted/g)?.length, 1, t.text());
  assert.match(
    t.text(),
    /Stopped at step \d+: .*checkpoint_rank0\.safetensors" continues it with --resume=true/,
  );
  assert.ok(Deno.statSync(`${out}/o/checkpoint_rank0.safetensors`).size > 0);
  await Deno.remove(out, { recursive: true });
});

Deno.test("Ctrl-C under deno task train: a second press a second later quits at once, without a crash", async () => {
  const out = await Deno.makeTempDir();
  // r50 steps take seconds here: the second press comes in the middle of one.
  const t = task([
    "train",
    "configs/orl_mbf.yaml",
    ...run,
    "--network=r50",
    "--batch_size=32",
    `--output=${out}/o`,
  ]);
  await t.until(/Global Step: 1 /);
  t.ctrlC();
  await new Promise((r) => setTimeout(r, 1200));
  t.ctrlC();
  const status = await t.done;
  // Killed by the signal, as a program without a handler: no exit handlers under running threads.
  assert.equal(status.code, 130, t.text());
  assert.doesNotMatch(t.text(), /Stopped at step|Segmentation|core dumped/);
  assert.throws(() => Deno.statSync(`${out}/o/checkpoint_rank0.safetensors`), Deno.errors.NotFound);
  await Deno.remove(out, { recursive: true });
});

Deno.test("Ctrl-C under deno task launch: both ranks stop at the same step and write their checkpoints", async () => {
  const out = await Deno.makeTempDir();
  const t = task(launchTwo(out));
  await t.until(/Global Step: 2 /);
  t.ctrlC();
  const status = await t.done;
  assert.equal(status.code, 130, t.text());
  assert.match(t.text(), /Stopped: every rank wrote its checkpoint/);
  for (const rank of [0, 1]) assert.ok(Deno.statSync(`${out}/o/checkpoint_rank${rank}.safetensors`).size > 0);
  await Deno.remove(out, { recursive: true });
});

/** The processes whose command line contains `text`. */
async function pids(text: string): Promise<number[]> {
  const o = await new Deno.Command("pgrep", { args: ["-f", text], stdout: "piped" }).output();
  return new TextDecoder().decode(o.stdout).trim().split("\n").filter(Boolean).map(Number);
}

Deno.test("SIGTERM to the launcher alone (a scheduler's stop): the ranks stop with checkpoints, none is left", async () => {
  const out = await Deno.makeTempDir();
  const t = task(launchTwo(out), "run");
  await t.until(/Global Step: 2 /);
  Deno.kill(t.pid, "SIGTERM");
  const status = await t.done;
  assert.equal(status.code, 130, t.text());
  for (const rank of [0, 1]) assert.ok(Deno.statSync(`${out}/o/checkpoint_rank${rank}.safetensors`).size > 0);
  assert.deepEqual(await pids(`${out}/o`), []);
  await Deno.remove(out, { recursive: true });
});

Deno.test("Ctrl-C to one rank only: the other stops at the same step, the launcher reports a stop, not a failure", async () => {
  const out = await Deno.makeTempDir();
  const t = task(launchTwo(out), "run");
  await t.until(/Global Step: 2 /);
  const ranks = await pids(`cli.ts train .*${out}/o`);
  assert.equal(ranks.length, 2, t.text());
  Deno.kill(ranks[1], "SIGINT");
  const status = await t.done;
  assert.equal(status.code, 130, t.text());
  assert.doesNotMatch(t.text(), /failed/);
  assert.match(t.text(), /Stopped: every rank wrote its checkpoint/);
  for (const rank of [0, 1]) assert.ok(Deno.statSync(`${out}/o/checkpoint_rank${rank}.safetensors`).size > 0);
  await Deno.remove(out, { recursive: true });
});

Deno.test("Ctrl-C while the ranks wait for a missing machine ends them at once, claiming no checkpoint", async () => {
  const store = await Deno.makeTempDir();
  const t = task([
    "launch",
    "--nnodes=2",
    "--node-rank=0",
    "--nproc-per-node=1",
    `--rdzv=${store}`,
    "--run-id=waiting",
    "configs/orl_mbf.yaml",
    ...run,
    `--output=${store}/o`,
  ], "run");
  await new Promise((r) => setTimeout(r, 3000)); // rank 0 is in the rendezvous, rank 1 never comes
  const start = performance.now();
  t.ctrlC();
  const status = await t.done;
  assert.ok(performance.now() - start < 3000, `ended after ${performance.now() - start} ms`);
  assert.notEqual(status.code, 0);
  assert.doesNotMatch(t.text(), /wrote its checkpoint/);
  assert.match(t.text(), /Stopped: rank\(s\) 0 ended by a signal .* and wrote no checkpoint/);
  await Deno.remove(store, { recursive: true });
});
