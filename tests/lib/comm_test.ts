// Collectives between real processes (tests/lib/comm_worker.ts), over Gloo's file store.
import assert from "node:assert/strict";
import { Comm } from "../../lib/comm.ts";

const worker = new URL("./comm_worker.ts", import.meta.url).pathname;

interface Out {
  code: number;
  lines: Record<string, unknown>[];
  ms: number;
}

function spawn(args: (string | number)[]) {
  const start = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", worker, ...args.map(String)],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const done = child.output().then((o): Out => ({
    code: o.code,
    lines: new TextDecoder().decode(o.stdout).trim().split("\n").filter(Boolean).map((l) => JSON.parse(l)),
    ms: performance.now() - start,
  }));
  return { child, done };
}

/** Runs every rank of one world and returns their outputs (rank order). */
function world(
  scenario: string,
  store: string,
  runId: string,
  size: number,
  timeoutMs: number,
  delays: number[] = [],
) {
  return Promise.all(
    Array.from(
      { length: size },
      (_, r) => spawn([scenario, store, runId, r, size, timeoutMs, delays[r] ?? 0]).done,
    ),
  );
}

const last = (o: Out) => o.lines[o.lines.length - 1];

Deno.test("time in collectives counts the wait for a late rank", async () => {
  const store = await Deno.makeTempDir();
  const [r0, r1] = (await world("timed", store, "timed-1", 2, 30_000)).map((o) => {
    assert.equal(o.code, 0, JSON.stringify(o.lines));
    return last(o) as { before: number; seconds: number };
  });
  assert.equal(r0.before, 0);
  assert.ok(r0.seconds >= 0.35 && r0.seconds < 5, `rank 0 waited ${r0.seconds} s`);
  assert.ok(r1.seconds < 0.3, `rank 1 came last but counted ${r1.seconds} s`);
});

Deno.test("3 ranks: sum, max, int64, all-gather (equal, variable, empty), broadcast, averaged gradients", async () => {
  const store = await Deno.makeTempDir();
  const outs = await world("all", store, "all-1", 3, 30_000);
  for (const [rank, o] of outs.entries()) {
    assert.equal(o.code, 0, JSON.stringify(o.lines));
    const r = last(o);
    assert.deepEqual(r.sum, [6, 30, -3]);
    assert.deepEqual(r.max, [2, 0]);
    assert.deepEqual(r.isum, ["6", String(3n << 40n)]);
    assert.deepEqual(r.gathered, [0, 0.5, 1, 1.5, 2, 2.5]);
    assert.deepEqual(r.gatheredI, ["0", "7", "14"]);
    assert.deepEqual(r.v, [0, 1, 1, 2, 2, 2]);
    assert.deepEqual(r.vCounts, [1, 2, 3]);
    assert.deepEqual(r.empty, [2, 2, 3, 3]);
    assert.deepEqual(r.b, [42, 42, 42, 42]);
    assert.deepEqual(r.bi, ["9"]);
    assert.deepEqual(r.g1, [2, 2, 2, 2, 2]); // (1 + 2 + 3) / 3
    assert.deepEqual(r.g2, [2, 1], `rank ${rank}`); // (0 + 2 + 4) / 3, 1
  }
});

Deno.test("C39: leftovers of a killed run, a late rank 0, a run right after, W = 1, two jobs at once", async () => {
  const store = await Deno.makeTempDir();
  // (a) a W = 2 run killed with SIGKILL right after its rendezvous leaves the store populated.
  const held = [0, 1].map((r) => spawn(["hold", store, "job-a", r, 2, 30_000]));
  // Wait on the store: its files appear as the ranks join.
  for (let i = 0; i < 200 && [...Deno.readDirSync(store)].length === 0; i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  await new Promise((r) => setTimeout(r, 1500));
  for (const h of held) h.child.kill("SIGKILL");
  await Promise.all(held.map((h) => h.done));

  // (b) same store, new run id, rank 1 starts 5 s before rank 0.
  const b = await world("sum", store, "job-b", 2, 30_000, [5000, 0]);
  assert.deepEqual(b.map((o) => [o.code, last(o).value]), [[0, 3], [0, 3]]);
  // (c) another run right after.
  const c = await world("sum", store, "job-c", 2, 30_000);
  assert.deepEqual(c.map((o) => [o.code, last(o).value]), [[0, 3], [0, 3]]);
  // (d) W = 1 needs no peer.
  const d = await world("sum", store, "job-d", 1, 30_000);
  assert.equal(last(d[0]).value, 1);
  assert.ok(d[0].ms < 5000, `W = 1 took ${d[0].ms} ms`);
  // (f) two W = 2 jobs at once on the same store never mix.
  const [f1, f2] = await Promise.all([
    world("sum", store, "job-f1", 2, 30_000),
    world("sum", store, "job-f2", 2, 30_000),
  ]);
  assert.deepEqual([...f1, ...f2].map((o) => last(o).value), [3, 3, 3, 3]);
});

Deno.test("C39 (e): a missing rank fails in about the timeout, naming the store, the rank and the timeout", async () => {
  const store = await Deno.makeTempDir();
  const [o] = await Promise.all([spawn(["sum", store, "job-e", 0, 2, 3000]).done]);
  assert.equal(o.code, 3);
  const e = last(o) as { error: string; code: string; ms: number };
  assert.equal(e.code, "TIMEOUT");
  assert.ok(e.ms >= 2500 && e.ms < 6500, `failed after ${e.ms} ms`);
  assert.ok(e.error.includes(store), e.error);
  assert.match(e.error, /rank\(s\) 1 did not arrive/);
  assert.match(e.error, /within 3000 ms/);
  // The rank took its arrival back: the same run id works when both ranks come.
  assert.deepEqual([...Deno.readDirSync(store)], []);
  const again = await world("sum", store, "job-e", 2, 30_000);
  assert.deepEqual(again.map((o) => last(o).value), [3, 3]);
});

Deno.test("a peer that dies after the rendezvous gives the others an error, not a hang", async () => {
  const store = await Deno.makeTempDir();
  const outs = await world("die", store, "job-die", 2, 5000);
  const r = last(outs[0]) as { error?: string; ms: number };
  assert.ok(r.error, JSON.stringify(outs[0].lines));
  assert.ok(r.ms < 8000, `noticed after ${r.ms} ms`);
});

Deno.test("3 ranks: the all-reduce overlapped with backward gives the bits of backward, then all-reduce", async () => {
  const store = await Deno.makeTempDir();
  const outs = (await world("backward", store, "backward-1", 3, 30_000)).map((o) => {
    assert.equal(o.code, 0, JSON.stringify(o.lines));
    return last(o) as {
      buckets: number;
      sameBits: boolean;
      changed: boolean;
      first: { local: number[]; mean: number[] };
      last: { local: number[]; mean: number[] };
    };
  });
  for (const [rank, r] of outs.entries()) {
    assert.ok(r.buckets > 10, `${r.buckets} buckets`);
    assert.ok(r.sameBits, `rank ${rank}: the overlapped sums differ`);
    assert.ok(r.changed, `rank ${rank}: the all-reduce changed nothing`);
    for (const part of ["first", "last"] as const) {
      // Every rank holds the average of the ranks' own gradients.
      const mean = r[part].mean.map((_, k) => outs.reduce((s, o) => s + o[part].local[k], 0) / 3);
      assert.deepEqual(r[part].mean, outs[0][part].mean, `rank ${rank}, ${part}`);
      for (const [k, v] of mean.entries()) {
        assert.ok(
          Math.abs(r[part].mean[k] - v) <= 1e-6 * Math.abs(v) + 1e-12,
          `${part}[${k}]: ${r[part].mean[k]} vs ${v}`,
        );
      }
    }
  }
});

Deno.test("a peer that dies before an overlapped backward all-reduce gives an error naming it, not a hang", async () => {
  const store = await Deno.makeTempDir();
  const outs = await world("backward-die", store, "backward-die-1", 2, 5000);
  const r = last(outs[0]) as { error?: string; ms: number };
  assert.ok(r.error, JSON.stringify(outs[0].lines));
  assert.match(r.error, /lost rank\(s\) 1 \(process exited\)/);
  assert.ok(r.ms < 8000, `noticed after ${r.ms} ms`);
});

Deno.test("ranks whose gradients differ in bucket size or length all fail naming both, not hang or abort", async () => {
  const store = await Deno.makeTempDir();
  const outs = await world("buckets-differ", store, "buckets-1", 2, 20_000);
  for (const [rank, o] of outs.entries()) {
    assert.equal(o.code, 0, JSON.stringify(o.lines));
    const r = last(o) as { error?: string; plainError?: string };
    assert.match(
      r.error ?? "",
      new RegExp(
        `this rank sums 2059520 values in buckets of ${
          rank ? 50000 : 100000
        }, the ranks hold 2059520 to 2059520 values in buckets of 50000 to 100000`,
      ),
    );
    assert.match(
      r.plainError ?? "",
      new RegExp(`sums ${10 + rank} values in buckets of 4, the ranks hold 10 to 11`),
    );
  }
});

Deno.test("a store that accepts connections but never answers fails within the timeout, not a hang", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 }); // never reads, never replies
  const store = `redis://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`;
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const c of listener) held.push(c);
  })();
  const outs = await world("sum", store, "silent-1", 2, 3000);
  listener.close();
  for (const c of held) c.close();
  await accepting.catch(() => {});
  for (const o of outs) {
    assert.equal(o.code, 3, JSON.stringify(o.lines));
    const e = last(o) as { error: string; ms: number };
    assert.ok(e.ms < 8000, `failed after ${e.ms} ms`);
    assert.match(e.error, /store "redis:\/\/127\.0\.0\.1:\d+" failed or did not answer within 3000 ms/);
  }
});

Deno.test({
  name: "Redis store: 2 ranks meet through redis://127.0.0.1:<port> and all-reduce",
  ignore: !(() => {
    try {
      return Deno.statSync("/usr/bin/redis-server").isFile;
    } catch {
      return false;
    }
  })(),
  fn: async () => {
    const port = 20000 + Math.floor(Math.random() * 20000);
    const server = new Deno.Command("/usr/bin/redis-server", {
      args: ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
      stdout: "null",
      stderr: "null",
    }).spawn();
    try {
      // Rank 1 may start before the server answers: the store retries until the timeout.
      const outs = await world("sum", `redis://127.0.0.1:${port}`, "job-redis", 2, 20_000);
      assert.deepEqual(outs.map((o) => [o.code, last(o).value]), [[0, 3], [0, 3]]);
    } finally {
      server.kill("SIGTERM");
      await server.status;
    }
  },
});

Deno.test("bad options reject the promise of Comm.create (a .catch sees them)", async () => {
  await assert.rejects(
    () => Comm.create({ rank: 2, worldSize: 2 }),
    /Invalid rank 2: expected an integer in 0\.\.1/,
  );
  await assert.rejects(
    () => Comm.create({ rank: 0, worldSize: 2, store: "/tmp", runId: "a/b" }),
    /Invalid run id "a\/b"/,
  );
});
