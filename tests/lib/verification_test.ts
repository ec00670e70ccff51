import assert from "node:assert/strict";
import { encodeJpeg } from "../../lib/image.ts";
import { pickle, tuple } from "../../lib/pickle.ts";
import {
  decodeSet,
  embedSet,
  encodeBin,
  parseBin,
  readBin,
  toInput,
  verify,
  writeBin,
} from "../../lib/verification.ts";

const pickles = new URL("../fixtures/pickle/", import.meta.url);
const ascii = (s: string) => new TextEncoder().encode(s);

function pgm(
  width: number,
  height: number,
  value: (x: number, y: number) => number,
): Uint8Array<ArrayBuffer> {
  const head = ascii(`P5\n${width} ${height}\n255\n`);
  const out = new Uint8Array(head.length + width * height);
  out.set(head);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) out[head.length + y * width + x] = value(x, y);
  }
  return out;
}

function solid(size: number, rgb: [number, number, number]): Uint8Array<ArrayBuffer> {
  const px = new Uint8Array(size * size * 3);
  for (let i = 0; i < px.length; i++) px[i] = rgb[i % 3];
  return encodeJpeg(px, size, size, 95);
}

/** Embedding of a test image: its mean scaled R, G and B (flip-invariant, so plain = flip). */
async function meanColour(x: Float32Array, n: number): Promise<Float32Array> {
  const plane = x.length / n / 3;
  const out = new Float32Array(n * 3);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < 3; c++) {
      let s = 0;
      for (let k = 0; k < plane; k++) s += x[(i * 3 + c) * plane + k];
      out[i * 3 + c] = s / plane;
    }
  }
  return await Promise.resolve(out);
}

Deno.test("a Python 2 .bin (str images) and Python 3 .bins load to the same pairs and pixels", () => {
  const py2 = parseBin(Deno.readFileSync(new URL("bin_py2_p2.pkl", pickles)), "py2.bin");
  assert.equal(py2.name, "py2");
  assert.deepEqual(py2.issame, [true, false]);
  for (const name of ["bin_py2_p0.pkl", "bin_py3_p2.pkl", "bin_py3_p4.pkl", "bin_py3_p5.pkl"]) {
    const other = parseBin(Deno.readFileSync(new URL(name, pickles)), name);
    assert.deepEqual(other.images, py2.images, name);
    assert.deepEqual(other.issame, py2.issame, name);
  }
  const d = decodeSet(py2, { size: 8 });
  assert.equal(d.count, 4);
  assert.equal(d.grey, 4);
  assert.equal(d.resized, 0);
  // image 2, pixel (y=3, x=5): 30·2 + 3 + 5 = 68 in all three channels
  const at = 2 * 8 * 8 * 3 + (3 * 8 + 5) * 3;
  assert.deepEqual([...d.pixels.subarray(at, at + 3)], [68, 68, 68]);
});

Deno.test("images of another size are resized, or refused naming both sizes", () => {
  const set = parseBin(Deno.readFileSync(new URL("bin_py3_p4.pkl", pickles)), "p4.bin");
  const d = decodeSet(set, { size: 16 });
  assert.equal(d.resized, 4);
  assert.equal(d.pixels.length, 4 * 16 * 16 * 3);
  assert.throws(
    () => decodeSet(set, { size: 16, resize: false }),
    /image 0 of "p4": it is 8x8, the model input is 16x16/,
  );
});

Deno.test("160x160 colour JPEGs and a greyscale PGM with model input 112: resized, 3 channels, accuracy computed", async () => {
  const colours: [number, number, number][] = [[200, 30, 30], [30, 200, 30], [30, 30, 200], [200, 200, 30]];
  const images: Uint8Array[] = [], issame: boolean[] = [];
  for (let p = 0; p < 20; p++) {
    const a = colours[p % 4], same = p % 2 === 0;
    const b = same ? a : colours[(p + 1) % 4];
    images.push(solid(160, a), p === 3 ? pgm(112, 112, () => 128) : solid(160, b));
    issame.push(same);
  }
  const path = await Deno.makeTempFile({ suffix: ".bin" });
  try {
    await writeBin(path, images, issame);
    const d = decodeSet(await readBin(path));
    assert.equal(d.size, 112);
    assert.equal(d.resized, 39);
    assert.equal(d.grey, 1);
    const g = 7 * 112 * 112 * 3 + 500 * 3; // the PGM, image 7
    assert.deepEqual([...d.pixels.subarray(g, g + 3)], [128, 128, 128]);
    const r = await verify(d, meanColour, { batchSize: 8 });
    assert.equal(r.pairs, 20);
    assert.equal(r.folds, 10);
    // Same pairs are identical images (distance 0), different pairs are far apart: perfect.
    assert.equal(r.flip.accuracy, 1);
    assert.equal(r.plain.accuracy, 1);
    assert.equal(r.flip.std, 0);
    assert.equal(r.flip.auc, 1);
    assert.ok(r.xnorm > 0.5 && r.xnorm < 2, `xnorm ${r.xnorm}`);
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("input scaling is ((x/255)-0.5)/0.5 in float32, flip mirrors columns", () => {
  const size = 2;
  const px = Uint8Array.from([0, 0, 0, 255, 255, 255, 128, 128, 128, 1, 2, 3]); // HWC, 2x2
  const x = toInput(px, size, 0, 1, false);
  assert.deepEqual([...x.subarray(0, 4)], [
    -1,
    1,
    Math.fround(Math.fround(Math.fround(128 / 255) - 0.5) / 0.5),
    Math.fround(Math.fround(Math.fround(1 / 255) - 0.5) / 0.5),
  ]);
  const f = toInput(px, size, 0, 1, true);
  assert.deepEqual([f[0], f[1]], [x[1], x[0]]);
  assert.deepEqual([f[6], f[7]], [x[7], x[6]]); // channel 1, row 1
});

Deno.test("a batch larger than the set and a set of 4 pairs give fewer folds with a warning, no crash", async () => {
  const imgs = [
    solid(16, [250, 0, 0]),
    solid(16, [250, 0, 0]),
    solid(16, [0, 250, 0]),
    solid(16, [0, 0, 250]),
  ];
  const set = parseBin(encodeBin([...imgs, ...imgs], [true, false, true, false]), "four.bin");
  const progress: number[] = [];
  const r = await verify(decodeSet(set, { size: 16 }), meanColour, {
    batchSize: 64,
    onProgress: (done, total) => progress.push(done / total),
  });
  assert.deepEqual(progress, [0.5, 1]);
  assert.equal(r.folds, 4);
  assert.match(r.warnings[0], /"four" has only 4 pairs: using 4 folds instead of 10/);
  assert.equal(r.flip.accuracy, 1);
});

Deno.test("NaN embeddings are a clear error about a diverged model", async () => {
  const set = parseBin(Deno.readFileSync(new URL("bin_py3_p4.pkl", pickles)), "nan.bin");
  const d = decodeSet(set, { size: 8 });
  await assert.rejects(
    embedSet(d, (_x, n) => Promise.resolve(new Float32Array(n * 4).fill(NaN))),
    /Cannot evaluate "nan": the model produced non-finite embeddings \(NaN for image 0\); the model has probably diverged/,
  );
});

Deno.test("a truncated .bin, a pickle of something else and a wrong pair count name the file", () => {
  const good = encodeBin([ascii("a"), ascii("b"), ascii("c"), ascii("d")], [true, false]);
  assert.throws(
    () => parseBin(good.subarray(0, good.length - 9), "cut.bin"),
    /Cannot read verification set "cut.bin": .*truncated/,
  );
  assert.throws(
    () => parseBin(pickle(new Map([["a", 1]])), "dict.bin"),
    /"dict.bin": expected a pickled \(images, issame\) pair, found a dict of 1 items/,
  );
  assert.throws(
    () => parseBin(pickle(tuple([ascii("a"), ascii("b"), ascii("c")], [true, false])), "odd.bin"),
    /"odd.bin": 3 images for 2 pairs, expected 4/,
  );
  assert.throws(
    () => parseBin(pickle(tuple([1, 2], [true])), "ints.bin"),
    /image 0 is number 1, expected bytes/,
  );
  assert.throws(() => parseBin(ascii("GIF89a"), "gif.bin"), /"gif.bin": not a valid pickle/);
});

for (const protocol of [2, 4] as const) {
  Deno.test(`.bin round trip, protocol ${protocol}`, async () => {
    const images = [ascii("x"), new Uint8Array(1000).fill(9), ascii("y"), new Uint8Array(0)];
    const path = await Deno.makeTempFile({ suffix: ".bin" });
    try {
      await writeBin(path, images, [false, true], { protocol });
      const set = await readBin(path);
      assert.deepEqual(set.images, images);
      assert.deepEqual(set.issame, [false, true]);
    } finally {
      await Deno.remove(path);
    }
  });
}

Deno.test("a missing .bin is a not-found error naming the path", async () => {
  await assert.rejects(
    readBin("/nonexistent/lfw.bin"),
    /Cannot read verification set "\/nonexistent\/lfw.bin": no such file/,
  );
});

Deno.test("a set shared between ranks: each embeds its images, and the sum is the whole", async () => {
  const set = decodeSet(parseBin(Deno.readFileSync(new URL("bin_py3_p4.pkl", pickles)), "shared.bin"), {
    size: 8,
  });
  const whole = await embedSet(set, meanColour, { batchSize: 3 });
  const ranks = 3;
  const parts = await Promise.all(Array.from({ length: ranks }, (_, r) =>
    embedSet(set, meanColour, {
      batchSize: 3,
      images: { start: Math.floor(set.count * r / ranks), end: Math.floor(set.count * (r + 1) / ranks) },
    })));
  for (const key of ["plain", "flip"] as const) {
    const sum = new Float32Array(whole[key].length);
    for (const p of parts) p[key].forEach((v, i) => sum[i] += v);
    assert.deepEqual(sum, whole[key], key);
  }
  await assert.rejects(
    embedSet(set, meanColour, { images: { start: 2, end: set.count + 1 } }),
    /Invalid image range/,
  );
});
