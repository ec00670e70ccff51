// Two machines on one box (tasks/netns.ts): two network namespaces joined by a veth pair, a
// Redis store in the first, one rank launched in each with --nnodes 2. The trained model and
// both Partial FC shards must equal those of a 2-process run on one machine. Creating
// namespaces needs root (CAP_NET_ADMIN) and iproute2: without them the test is reported as
// ignored.
import assert from "node:assert/strict";
import { readSafetensors } from "../../lib/safetensors.ts";
import { canUseNetns, sh, twoHosts } from "../../tasks/netns.ts";
import { orlEpochArgs } from "./orl_epoch.ts";

const root = new URL("../../", import.meta.url).pathname;

/** One epoch of 60 ORL images, 2 ranks of 15, 1 thread each (the same in both runs). */
function trainArgs(out: string): string[] {
  return [...orlEpochArgs(out), "--threads=1"];
}

const launch = (args: string[]) => [Deno.execPath(), "run", "-A", `${root}cli.ts`, "launch", ...args];

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
    const outs = {
      local: await Deno.makeTempDir(),
      a: await Deno.makeTempDir(),
      b: await Deno.makeTempDir(),
    };
    const hosts = await twoHosts(`afc${Deno.pid % 100000}`);
    try {
      const node = (rank: 0 | 1, out: string) =>
        hosts.run(
          rank,
          launch([
            "--nnodes=2",
            `--node-rank=${rank}`,
            "--nproc-per-node=1",
            `--rdzv=${hosts.store}`,
            "--run-id=netns",
            `--address=${hosts.addrs[rank]}`,
            ...trainArgs(out),
          ]),
          root,
        );
      const [ra, rb] = await Promise.all([node(0, outs.a), node(1, outs.b)]);
      for (const [name, r] of [["node 0", ra], ["node 1", rb]] as const) {
        assert.equal(r.code, 0, `${name}: ${r.text}`);
      }
      const [cmd, ...args] = launch(["--nproc-per-node=2", ...trainArgs(outs.local)]);
      const local = await sh(cmd, args, root);
      assert.equal(local.code, 0, local.text);

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
      await hosts.close();
      for (const dir of Object.values(outs)) await Deno.remove(dir, { recursive: true });
    }
  },
});
