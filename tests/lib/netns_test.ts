// Two machines on one box: two network namespaces joined by a veth pair, a Redis store in
// the first, one rank launched in each with --nnodes 2. The trained model and both Partial
// FC shards must equal those of a 2-process run on one machine. Creating namespaces needs
// root (CAP_NET_ADMIN) and iproute2: without them the test is reported as ignored.
import assert from "node:assert/strict";
import { readSafetensors } from "../../lib/safetensors.ts";
import { orlEpochArgs } from "./orl_epoch.ts";

const root = new URL("../../", import.meta.url).pathname;
const tag = `afc${Deno.pid % 100000}`;

async function sh(cmd: string, args: string[]): Promise<{ code: number; text: string }> {
  try {
    const o = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
    const dec = new TextDecoder();
    return { code: o.code, text: dec.decode(o.stdout) + dec.decode(o.stderr) };
  } catch (e) {
    return { code: -1, text: String(e) };
  }
}

async function ip(...args: string[]): Promise<void> {
  const r = await sh("ip", args);
  assert.equal(r.code, 0, `ip ${args.join(" ")}: ${r.text}`);
}

/** Whether this process may create network namespaces and has a Redis server to start. */
async function canUseNetns(): Promise<boolean> {
  const probe = `${tag}p`;
  if ((await sh("ip", ["netns", "add", probe])).code !== 0) return false;
  await sh("ip", ["netns", "del", probe]);
  return (await sh("redis-server", ["--version"])).code === 0;
}

/** One epoch of 60 ORL images, 2 ranks of 15, 1 thread each (the same in both runs). */
function trainArgs(out: string): string[] {
  return [...orlEpochArgs(out), "--threads=1"];
}

function launchIn(netns: string | null, args: string[]) {
  const deno = [Deno.execPath(), "run", "-A", `${root}cli.ts`, "launch", ...args];
  const [cmd, ...rest] = netns ? ["ip", "netns", "exec", netns, ...deno] : deno;
  return new Deno.Command(cmd, { args: rest, cwd: root, stdout: "piped", stderr: "piped" }).output();
}

async function tensors(path: string): Promise<Map<string, Uint8Array>> {
  const f = await readSafetensors(path);
  return new Map(
    [...f.tensors].map(([k, t]) => [k, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)]),
  );
}

function assertSameTensors(a: Map<string, Uint8Array>, b: Map<string, Uint8Array>, what: string) {
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort(), what);
  for (const [name, bytes] of a) {
    const other = b.get(name)!;
    const at = bytes.findIndex((v, i) => v !== other[i]);
    assert.ok(at === -1 && bytes.length === other.length, `${what}: ${name} differs at byte ${at}`);
  }
}

Deno.test({
  name: "two network namespaces over a veth pair with Redis rendezvous equal a 2-process local run",
  ignore: !(await canUseNetns()),
  async fn() {
    const [a, b] = [`${tag}a`, `${tag}b`];
    const [addrA, addrB] = ["10.213.7.1", "10.213.7.2"];
    const port = "6390";
    const outs = {
      local: await Deno.makeTempDir(),
      a: await Deno.makeTempDir(),
      b: await Deno.makeTempDir(),
    };
    let redis: Deno.ChildProcess | undefined;
    try {
      await ip("netns", "add", a);
      await ip("netns", "add", b);
      await ip("link", "add", `${tag}va`, "type", "veth", "peer", "name", `${tag}vb`);
      for (const [ns, dev, addr] of [[a, `${tag}va`, addrA], [b, `${tag}vb`, addrB]]) {
        await ip("link", "set", dev, "netns", ns);
        await ip("-n", ns, "addr", "add", `${addr}/24`, "dev", dev);
        await ip("-n", ns, "link", "set", dev, "up");
        await ip("-n", ns, "link", "set", "lo", "up");
      }
      redis = new Deno.Command("ip", {
        args: [
          "netns",
          "exec",
          a,
          "redis-server",
          "--port",
          port,
          "--bind",
          addrA,
          "--protected-mode",
          "no",
          "--save",
          "",
          "--appendonly",
          "no",
        ],
        stdout: "null",
        stderr: "null",
      }).spawn();
      // Ready when the other namespace reaches it.
      let ready = false;
      for (let i = 0; i < 50 && !ready; i++) {
        ready = (await sh("ip", ["netns", "exec", b, "redis-cli", "-h", addrA, "-p", port, "ping"])).text
          .includes(
            "PONG",
          );
        if (!ready) await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(ready, `redis-server in ${a} did not answer from ${b}`);

      const node = (rank: number, addr: string, out: string) => [
        "--nnodes=2",
        `--node-rank=${rank}`,
        "--nproc-per-node=1",
        `--rdzv=redis://${addrA}:${port}`,
        "--run-id=netns",
        `--address=${addr}`,
        ...trainArgs(out),
      ];
      const [ra, rb] = await Promise.all([
        launchIn(a, node(0, addrA, outs.a)),
        launchIn(b, node(1, addrB, outs.b)),
      ]);
      const dec = new TextDecoder();
      for (const [name, r] of [["node 0", ra], ["node 1", rb]] as const) {
        assert.equal(r.code, 0, `${name}: ${dec.decode(r.stdout)}${dec.decode(r.stderr)}`);
      }
      const local = await launchIn(null, ["--nproc-per-node=2", ...trainArgs(outs.local)]);
      assert.equal(local.code, 0, dec.decode(local.stderr));

      assertSameTensors(
        await tensors(`${outs.a}/model.safetensors`),
        await tensors(`${outs.local}/model.safetensors`),
        "model",
      );
      for (const [rank, out] of [[0, outs.a], [1, outs.b]] as const) {
        const path = (dir: string) => `${dir}/checkpoint_rank${rank}.safetensors`;
        assertSameTensors(
          await tensors(path(out)),
          await tensors(path(outs.local)),
          `rank ${rank} checkpoint`,
        );
      }
    } finally {
      redis?.kill("SIGKILL");
      await redis?.status;
      await sh("ip", ["netns", "del", a]); // takes its end of the veth pair, and so both
      await sh("ip", ["netns", "del", b]);
      for (const dir of Object.values(outs)) await Deno.remove(dir, { recursive: true });
    }
  },
});
