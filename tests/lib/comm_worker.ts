// A child process of comm_test.ts: joins a world, runs one scenario, prints JSON lines.
// Usage: comm_worker.ts <scenario> <store> <runId> <rank> <worldSize> <timeoutMs> [delayMs]
import { Comm } from "../../lib/comm.ts";
import { IMAGE_FLOATS, Model } from "../../lib/model.ts";

const [scenario, store, runId, r, w, t, delay] = Deno.args;
const rank = Number(r), worldSize = Number(w), timeoutMs = Number(t);
if (delay) await new Promise((res) => setTimeout(res, Number(delay)));
const started = performance.now();
let comm: Comm;
try {
  comm = await Comm.create({ rank, worldSize, store, runId, timeoutMs });
} catch (e) {
  console.log(
    JSON.stringify({
      error: (e as Error).message,
      code: (e as { code?: string }).code,
      ms: performance.now() - started,
    }),
  );
  Deno.exit(3);
}
console.log(JSON.stringify({ joined: true, ms: performance.now() - started }));

const out: Record<string, unknown> = {};
if (scenario === "all") {
  const sum = new Float32Array([rank + 1, 10 * rank, -rank]);
  await comm.allReduce(sum);
  const max = new Float32Array([rank, -rank]);
  await comm.allReduce(max, "max");
  const isum = new BigInt64Array([BigInt(rank + 1), 1n << 40n]);
  await comm.allReduce(isum);
  const gathered = await comm.allGather(new Float32Array([rank, rank + 0.5]));
  const gatheredI = await comm.allGather(new BigInt64Array([BigInt(rank * 7)]));
  // Rank r contributes r + 1 copies of r; rank 1 of 3 may also be empty in another test.
  const v = await comm.allGatherV(new Float32Array(rank + 1).fill(rank));
  const empty = await comm.allGatherV(new Float32Array(rank === 0 ? 0 : 2).fill(rank + 1));
  const b = new Float32Array(4).fill(rank === worldSize - 1 ? 42 : -1);
  await comm.broadcast(b, worldSize - 1);
  const bi = new BigInt64Array([BigInt(rank === 0 ? 9 : 0)]);
  await comm.broadcast(bi, 0);
  await comm.barrier();
  // Gradients: two parameters, one larger than the bucket, averaged over ranks.
  const g1 = new Float32Array(5).fill(rank + 1), g2 = new Float32Array([rank * 2, 1]);
  await comm.allReduceGrads([g1, g2], { bucketElems: 3 });
  Object.assign(out, {
    sum: [...sum],
    max: [...max],
    isum: [...isum].map(String),
    gathered: [...gathered],
    gatheredI: [...gatheredI].map(String),
    v: [...v.data],
    vCounts: v.counts,
    empty: [...empty.data],
    b: [...b],
    bi: [...bi].map(String),
    g1: [...g1],
    g2: [...g2],
  });
} else if (scenario === "sum") {
  const x = new Float32Array([rank + 1]);
  await comm.allReduce(x);
  out.value = x[0];
} else if (scenario === "die") {
  // The last rank vanishes after the rendezvous; the others then try to all-reduce.
  if (rank === worldSize - 1) Deno.exit(1);
  await new Promise((res) => setTimeout(res, 300));
  const t0 = performance.now();
  try {
    await comm.allReduce(new Float32Array(1000));
    out.value = "no error";
  } catch (e) {
    out.error = (e as Error).message;
    out.code = (e as { code?: string }).code;
  }
  out.ms = performance.now() - t0;
} else if (scenario === "timed") {
  // Rank 1 comes to the barrier 400 ms late: rank 0's time in collectives includes the wait.
  const before = comm.seconds;
  if (rank === 1) await new Promise((res) => setTimeout(res, 400));
  await comm.barrier();
  out.before = before;
  out.seconds = comm.seconds;
} else if (scenario === "backward" || scenario === "backward-die") {
  // mbf on images and embedding gradients of this rank: backward then allReduceModelGrads,
  // against backward with the all-reduce overlapped, both in buckets of 100 000 values.
  const bucketElems = 100_000;
  using model = Model.create({ network: "mbf", maxBatch: 2, threads: 1 });
  const input = new Float32Array(2 * IMAGE_FLOATS).map((_, k) => Math.sin(rank * 1e3 + k * 0.37));
  const dEmb = new Float32Array(2 * 512).map((_, k) => Math.cos(rank * 7 + k * 0.1));
  const names = model.tensors().filter((t) => t.trainable).map((t) => t.name);
  const grads = () => names.map((n) => model.grad(n));
  if (scenario === "backward-die" && rank === worldSize - 1) Deno.exit(1);
  // Training-mode forwards use batch statistics: both give the same embeddings.
  await model.forward(input, 2, { train: true });
  const t0 = performance.now();
  try {
    if (scenario === "backward-die") await new Promise((res) => setTimeout(res, 300));
    await model.backward(dEmb, 2, { allReduce: comm, bucketElems });
  } catch (e) {
    out.error = (e as Error).message;
    out.ms = performance.now() - t0;
    console.log(JSON.stringify(out));
    Deno.exit(0);
  }
  const overlapped = grads();
  await model.forward(input, 2, { train: true });
  await model.backward(dEmb, 2);
  const local = grads();
  await comm.allReduceModelGrads(model, bucketElems);
  const after = grads();
  // Bit patterns, so that NaN and -0 compare too.
  const same = (a: Float32Array[], b: Float32Array[]) =>
    a.every((g, i) => {
      const other = new Uint32Array(b[i].buffer);
      return new Uint32Array(g.buffer).every((v, k) => v === other[k]);
    });
  out.buckets = Math.ceil(local.reduce((n, g) => n + g.length, 0) / bucketElems);
  out.sameBits = same(overlapped, after);
  out.changed = !same(after, local);
  // The stem's weight, from the first (last-reduced) bucket, and the last gradient.
  out.first = { local: [...local[0].subarray(0, 8)], mean: [...overlapped[0].subarray(0, 8)] };
  out.last = { local: [...local.at(-1)!.subarray(0, 8)], mean: [...overlapped.at(-1)!.subarray(0, 8)] };
} else if (scenario === "buckets-differ") {
  // The last rank cuts its gradients into buckets of another size.
  using model = Model.create({ network: "mbf", maxBatch: 2, threads: 1 });
  await model.forward(new Float32Array(2 * IMAGE_FLOATS).fill(rank), 2, { train: true });
  const bucketElems = rank === worldSize - 1 ? 50_000 : 100_000;
  try {
    await model.backward(new Float32Array(2 * 512).fill(1), 2, { allReduce: comm, bucketElems });
  } catch (e) {
    out.error = (e as Error).message;
  }
  try {
    await comm.allReduceGrads([new Float32Array(10 + rank)], { bucketElems: 4 });
  } catch (e) {
    out.plainError = (e as Error).message;
  }
} else if (scenario === "hold") {
  // Joins, then waits to be killed.
  await new Promise((res) => setTimeout(res, 60_000));
}
console.log(JSON.stringify(out));
comm.close();
