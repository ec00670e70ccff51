import assert from "node:assert/strict";
import { RecordFile, unpackRecord } from "../../lib/data.ts";
import { imageInfo } from "../../lib/image.ts";
import { pickle, tuple, unpickle } from "../../lib/pickle.ts";
import { crc32 } from "../../lib/plot.ts";
import { decodeSet, kfold, parseBin, readBin } from "../../lib/verification.ts";
import { balancedOrder, orlPairs, parseLfwPairs } from "../../tasks/make_val_sets.ts";

const data = new URL("../../data/", import.meta.url);

const SETS = [
  { file: "orl_val.bin", pairs: 900, distinct: 100, maxBytes: 600_000 },
  { file: "lfw_subset.bin", pairs: 1200, distinct: 1583, maxBytes: 4_500_000 },
];

for (const s of SETS) {
  Deno.test(`${s.file}: ${s.pairs} pairs, balanced folds, 112x112 images with 3 channels`, async () => {
    const path = new URL(s.file, data).pathname;
    assert.ok((await Deno.stat(path)).size <= s.maxBytes, `${s.file} is larger than ${s.maxBytes} bytes`);
    const set = await readBin(path);
    assert.equal(set.issame.length, s.pairs);
    assert.equal(set.images.length, 2 * s.pairs);
    assert.equal(set.issame.filter(Boolean).length, s.pairs / 2);
    for (const f of kfold(s.pairs, 10)) {
      const same = set.issame.slice(f.start, f.end).filter(Boolean).length;
      assert.equal(same, (f.end - f.start) / 2, `fold ${f.start}..${f.end} holds ${same} same pairs`);
    }
    // The pickle stores each image once: repeated entries are the same object.
    assert.equal(new Set(set.images).size, s.distinct);
    for (const img of new Set(set.images)) {
      assert.deepEqual(imageInfo(img as Uint8Array<ArrayBuffer>), { width: 112, height: 112, channels: 3 });
    }
    const d = decodeSet(set);
    assert.equal(d.size, 112);
    assert.equal(d.resized, 0);
    assert.equal(d.grey, 0);
    assert.equal(d.pixels.length, 2 * s.pairs * 112 * 112 * 3);
    // No pair compares an image with itself.
    for (let p = 0; p < s.pairs; p++) assert.notEqual(set.images[2 * p], set.images[2 * p + 1]);
  });
}

Deno.test("orl_val.bin holds none of the training images of data/orl/train.rec", async () => {
  const set = await readBin(new URL("orl_val.bin", data).pathname);
  const key = (b: Uint8Array) => `${crc32(b)}:${b.length}`;
  const val = new Set([...new Set(set.images)].map(key));
  using rec = RecordFile.open(new URL("orl/train.rec", data).pathname);
  for (let k = 1; k <= 300; k++) assert.ok(!val.has(key(unpackRecord(rec.read(k)).image)), `record ${k}`);
  // Padded like train.rec: the 10 columns left and right are black.
  const d = decodeSet(set);
  for (const x of [0, 9, 102, 111]) assert.ok(d.pixels[(50 * 112 + x) * 3] < 8, `column ${x}`);
});

Deno.test("ORL pairs: 450 same, 450 different, every person pair 10 times, 45 + 45 per fold, seeded", () => {
  const pairs = orlPairs(10, 10);
  assert.equal(pairs.length, 900);
  assert.deepEqual(orlPairs(10, 10), pairs);
  assert.notDeepEqual(orlPairs(10, 10, 7), pairs);
  const person = (i: number) => Math.floor(i / 10);
  const key = (p: { a: number; b: number }) => `${Math.min(p.a, p.b)}-${Math.max(p.a, p.b)}`;
  assert.equal(new Set(pairs.map(key)).size, 900);
  const perPeople = new Map<string, number>();
  for (const p of pairs) {
    assert.equal(p.same, person(p.a) === person(p.b));
    assert.notEqual(p.a, p.b);
    if (!p.same) {
      const k = `${person(p.a)}-${person(p.b)}`;
      perPeople.set(k, (perPeople.get(k) ?? 0) + 1);
    }
  }
  assert.equal(perPeople.size, 45);
  assert.ok([...perPeople.values()].every((n) => n === 10));
  for (let f = 0; f < 10; f++) {
    const fold = pairs.slice(90 * f, 90 * (f + 1));
    assert.equal(fold.filter((p) => p.same).length, 45);
  }
});

Deno.test("LFW pair lists: parsed by fold, balanced order puts 30 + 30 of each fold in every tenth", () => {
  const lines = ["2\t3"];
  for (let f = 0; f < 2; f++) {
    for (let i = 0; i < 3; i++) lines.push(`P${f}${i}\t1\t2`);
    for (let i = 0; i < 3; i++) lines.push(`A${f}${i}\t1\tB${f}${i}\t4`);
  }
  const folds = parseLfwPairs(lines.join("\n"));
  assert.equal(folds.length, 2);
  assert.deepEqual(folds[1][3], { name1: "A10", image1: 1, name2: "B10", image2: 4, same: false });
  assert.deepEqual(
    balancedOrder(folds, 3).map((p) => p.name1),
    ["P00", "A00", "P10", "A10", "P01", "A01", "P11", "A11", "P02", "A02", "P12", "A12"],
  );
  assert.throws(
    () => balancedOrder(folds, 2),
    /Cannot order 3 same and 3 different pairs into 2 equal parts/,
  );
  assert.throws(
    () => parseLfwPairs("2\t3\nA\t1\t2\n"),
    /Cannot read LFW pairs "pairs.txt": 1 pair lines, the header promises 2×2×3 = 12/,
  );
  const bad = [...lines];
  bad[2] = "X\t1\tY\t2";
  assert.throws(() => parseLfwPairs(bad.join("\n"), "p.txt"), /"p.txt": line 3 should be a same-person pair/);
});

Deno.test("pickle writer: a repeated bytes object is stored once and read back as the same bytes", () => {
  const a = new Uint8Array(5000).fill(3), b = Uint8Array.of(0x80, 0x9f, 0xff, 0);
  for (const protocol of [2, 3, 4, 5] as const) {
    const once = pickle(tuple([a, b], [true]), { protocol });
    const many = pickle(tuple([a, b, a, b, a, b], [true, false, true]), { protocol });
    assert.ok(many.length < once.length + 100, `protocol ${protocol}: ${many.length} vs ${once.length}`);
    const [imgs] = unpickle(many) as [Uint8Array[]];
    assert.deepEqual(imgs.map((x) => x.length), [5000, 4, 5000, 4, 5000, 4]);
    // Bytes 0x80-0x9f survive protocol 2 (latin-1, not windows-1252).
    assert.deepEqual([...imgs[5]], [0x80, 0x9f, 0xff, 0], `protocol ${protocol}`);
    assert.equal(parseBin(many, "m.bin").issame.length, 3);
  }
  // More than 256 repeated objects: LONG_BINPUT / LONG_BINGET at protocol 2.
  const xs = Array.from({ length: 300 }, (_, i) => Uint8Array.of(i & 255, i >> 8));
  const [back] = unpickle(pickle(tuple([...xs, ...xs], []), { protocol: 2 })) as [Uint8Array[]];
  assert.deepEqual([...back[599]], [299 & 255, 1]);
});
