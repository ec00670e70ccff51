import assert from "node:assert/strict";
import { decodeImage, imageInfo } from "../../lib/image.ts";
import {
  crc32,
  encodePng,
  linePlot,
  logTickLabel,
  niceTicks,
  PALETTE,
  renderLinePlot,
  tickLabel,
} from "../../lib/plot.ts";

Deno.test("crc32 check value and PNG round trip through the native decoder (grey and RGB)", async () => {
  assert.equal(crc32(new TextEncoder().encode("123456789")), 0xcbf43926);
  const w = 37, h = 23;
  const rgb = new Uint8Array(w * h * 3).map((_, i) => (i * 7 + (i >> 5)) & 255);
  const png = await encodePng(rgb, w, h, 3);
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  assert.deepEqual(imageInfo(png), { width: w, height: h, channels: 3 });
  assert.deepEqual(decodeImage(png), rgb);
  const grey = new Uint8Array(w * h).map((_, i) => (i * 13) & 255);
  const g = await encodePng(grey, w, h, 1);
  assert.deepEqual(imageInfo(g), { width: w, height: h, channels: 1 });
  const back = decodeImage(g);
  for (let i = 0; i < w * h; i++) assert.equal(back[3 * i], grey[i]);
  await assert.rejects(
    encodePng(rgb, w, h + 1, 3),
    /Cannot encode PNG: 2553 bytes given, expected 37x24x3 = 2664/,
  );
});

Deno.test("ticks: 1-2-5 steps, short labels, decades on log axes", () => {
  assert.deepEqual(niceTicks(0, 1, 6), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  assert.deepEqual(niceTicks(0, 4900, 7), [0, 1000, 2000, 3000, 4000]);
  assert.deepEqual(niceTicks(-3, 3, 7), [-3, -2, -1, 0, 1, 2, 3]);
  assert.equal(tickLabel(0.30000000000000004), "0.3");
  assert.equal(tickLabel(2.5e-5), "2.5e-5");
  assert.deepEqual([1e-6, 1e-2, 0.1, 1, 1000, 1e5].map(logTickLabel), [
    "1e-6",
    "1e-2",
    "0.1",
    "1",
    "1000",
    "1e+5",
  ]);
});

Deno.test("line plot: PNG of the asked size, series drawn in their colours, log axis skips x <= 0", async () => {
  const x = [0, 1e-4, 1e-3, 1e-2, 1e-1, 1];
  const y = [0, 0.2, 0.5, 0.8, 0.9, 1];
  const png = await linePlot({
    series: [{ x, y, label: "lfw" }, { x: [1e-4, 1], y: [0.1, 0.1], label: "flat", color: [255, 0, 255] }],
    xLabel: "FAR",
    yLabel: "TAR",
    title: "ROC",
    logX: true,
    yRange: [0, 1],
    width: 400,
    height: 300,
  });
  assert.deepEqual(imageInfo(png), { width: 400, height: 300, channels: 3 });
  const px = decodeImage(png);
  const count = (c: readonly number[]) => {
    let n = 0;
    for (let i = 0; i < px.length; i += 3) {
      if (px[i] === c[0] && px[i + 1] === c[1] && px[i + 2] === c[2]) n++;
    }
    return n;
  };
  assert.ok(count(PALETTE[0]) > 200, `first series: ${count(PALETTE[0])} pixels`);
  assert.ok(count([255, 0, 255]) > 200, "second series");
  assert.ok(count([0, 0, 0]) > 500, "axes and text");
  // A plain linear plot of one point still renders.
  const r = renderLinePlot({ series: [{ x: [3], y: [7] }] });
  assert.equal(r.rgb.length, 640 * 480 * 3);
  assert.throws(() => renderLinePlot({ series: [] }), /Cannot draw a line plot: no series given/);
  assert.throws(
    () => renderLinePlot({ series: [{ x: [1, 2], y: [1], label: "loss" }] }),
    /Cannot draw series 0 "loss": 2 x values but 1 y values/,
  );
  assert.throws(
    () => renderLinePlot({ series: [{ x: [1], y: [1] }], xRange: [0, 1], logX: true }),
    /Invalid x range \[0,1\]: a log axis needs positive bounds/,
  );
});
