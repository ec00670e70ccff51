// Values across the FFI boundary: 64-bit integers (case C34) and empty buffers (case C36).
import assert from "node:assert/strict";
import { candidatePaths, lib } from "../../ffi/load.ts";
import { toI64, toSafeNumber, toU32 } from "../../ffi/mod.ts";
import { PartialFC, sumSquares } from "../../lib/head.ts";
import { Model } from "../../lib/model.ts";
import { Comm } from "../../lib/comm.ts";

const U64 = [4_294_967_304n, 9_007_199_254_740_993n, 18_446_744_073_709_551_615n];

Deno.test("C34: 64-bit values return as equal bigints, blocking and nonblocking", async () => {
  const path = candidatePaths().find((p) => {
    try {
      return Deno.statSync(p).isFile;
    } catch {
      return false;
    }
  })!;
  const nonblocking = Deno.dlopen(path, {
    afc_echo_u64: { parameters: ["u64"], result: "u64", nonblocking: true },
    afc_echo_i64: { parameters: ["i64"], result: "i64", nonblocking: true },
  });
  try {
    for (const v of U64) {
      assert.equal(lib().afc_echo_u64(v), v);
      assert.equal(await nonblocking.symbols.afc_echo_u64(v), v);
    }
    assert.equal(lib().afc_echo_i64(-1n), -1n);
    assert.equal(await nonblocking.symbols.afc_echo_i64(-1n), -1n);
    assert.equal(lib().afc_echo_u32(toU32(4_294_967_295, "value")), 4_294_967_295);
  } finally {
    nonblocking.close();
  }
});

Deno.test("C34: values that do not fit are refused, never truncated", () => {
  assert.throws(
    () => toU32(2 ** 32 + 8, "value"),
    /Invalid value 4294967304: expected an integer in 0\.\.4294967295/,
  );
  assert.throws(() => lib().afc_echo_u32(2 ** 32 + 8), TypeError); // Deno's own check
  assert.throws(() => toI64(2 ** 53, "offset"), /expected an integer within ±\(2\^53 - 1\), or a bigint/);
  assert.throws(() => toI64(2n ** 63n, "offset"), /expected a signed 64-bit integer/);
  assert.equal(toI64(-(2n ** 63n), "offset"), -(2n ** 63n));
  assert.throws(
    () => toSafeNumber(9_007_199_254_740_993n, "count"),
    /exceeds 2\^53 - 1 \(keep it as a bigint\)/,
  );
  assert.equal(toSafeNumber(9_007_199_254_740_991n, "count"), Number.MAX_SAFE_INTEGER);
});

Deno.test("C36: empty buffers and (NULL, 0) are accepted: sums, forward, collectives, Partial FC", async () => {
  assert.equal(sumSquares(new Float32Array(0)), 0);
  assert.equal(sumSquares(new Float32Array(4).subarray(4)), 0);
  const out = new Float64Array([7]);
  assert.equal(lib().afc_optim_sum_squares(null, 0n, out), 0);
  assert.equal(out[0], 0);

  using model = Model.create({ network: "mbf", maxBatch: 2, threads: 1 });
  assert.equal((await model.forward(new Float32Array(0), 0)).length, 0);

  using comm = await Comm.local();
  const empty = new Float32Array(0);
  await comm.allReduce(empty);
  assert.equal((await comm.allGather(empty)).length, 0);

  using pfc = new PartialFC({ numClasses: 4, embeddingSize: 8, maxBatch: 2, threads: 1 });
  const step = await pfc.forwardBackward(new Float32Array(0), []);
  assert.equal(step.dEmbeddings.length, 0);
  assert.equal(step.loss, 0); // no rows: nothing to average, no NaN
  assert.deepEqual(pfc.readGrad(), new Float32Array(4 * 8));
});
