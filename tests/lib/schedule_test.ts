import assert from "node:assert/strict";
import { polyLr, PolyScheduler } from "../../lib/schedule.ts";

const golden = JSON.parse(Deno.readTextFileSync(new URL("../fixtures/head_golden.json", import.meta.url)));

function close(a: number, b: number, tol = 1e-12) {
  assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);
}

Deno.test("PolyScheduler gives the lr arcface_torch's PolyScheduler uses and logs at every step", () => {
  for (const g of golden.schedule) {
    const s = new PolyScheduler({ baseLr: g.base_lr, totalSteps: g.total, warmupSteps: g.warmup });
    for (let i = 0; i < g.total; i++) {
      close(s.lr, g.used[i]);
      close(s.step(), g.logged[i]);
    }
  }
});

Deno.test("polyLr: 0 at step 0, the peak at the end of warmup, power 2 decay to the last step", () => {
  const o = { baseLr: 0.1, totalSteps: 100, warmupSteps: 10 };
  assert.equal(polyLr(0, o), 0);
  close(polyLr(5, o), 0.05);
  close(polyLr(10, o), 0.1);
  close(polyLr(55, o), 0.1 * 0.25); // halfway through decay: (1/2)^2
  close(polyLr(99, o), 0.1 * (1 / 90) ** 2);
  assert.equal(polyLr(100, o), 0);
  close(polyLr(55, { ...o, power: 1 }), 0.05);
});

Deno.test("PolyScheduler resumes from lastEpoch", () => {
  const o = { baseLr: 0.1, totalSteps: 20, warmupSteps: 4 };
  const a = new PolyScheduler(o);
  for (let i = 0; i < 7; i++) a.step();
  const b = new PolyScheduler(o, a.lastEpoch);
  assert.equal(b.lr, a.lr);
  assert.equal(b.step(), a.step());
});

Deno.test("PolyScheduler refuses warmup that does not end before training", () => {
  assert.throws(
    () => new PolyScheduler({ baseLr: 0.1, totalSteps: 10, warmupSteps: 10 }),
    /Invalid warmup steps "10"/,
  );
  assert.throws(() => new PolyScheduler({ baseLr: 0.1, totalSteps: 0, warmupSteps: 0 }), RangeError);
});
