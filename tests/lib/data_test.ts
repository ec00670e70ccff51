import assert from "node:assert/strict";
import {
  Dataset,
  indexPathFor,
  openDataset,
  packRecord,
  RECORD_MAGIC,
  RecordFile,
  RecordWriter,
  unpackRecord,
} from "../../lib/data.ts";
import { AfcError } from "../../ffi/mod.ts";
import { decodeImage, encodeJpeg } from "../../lib/image.ts";

const te = new TextEncoder();

/** A binary PGM of w×h with the given pixel values. */
function pgm(w: number, h: number, pixels: ArrayLike<number>): Uint8Array<ArrayBuffer> {
  return new Uint8Array([...te.encode(`P5 ${w} ${h} 255\n`), ...Array.from(pixels)]);
}

/** Writes records { key: payload } to dir/name.rec and returns its path. */
function writeRec(dir: string, name: string, records: [number, Uint8Array<ArrayBuffer>][]): string {
  const path = `${dir}/${name}.rec`;
  using w = RecordWriter.create(path);
  for (const [k, p] of records) w.write(k, p);
  w.finish();
  return path;
}

/** n 4×4 greyscale images, image i filled with value 10·i, label labelOf(i). */
function images(n: number, labelOf = (i: number) => i): [number, Uint8Array<ArrayBuffer>][] {
  return Array.from(
    { length: n },
    (_, i) => [i, packRecord(labelOf(i), pgm(4, 4, new Array(16).fill(10 * i)))],
  );
}

Deno.test("RecordIO round trip, with multi-part records split at the magic like dmlc-core", () => {
  const dir = Deno.makeTempDirSync();
  const m = [0x0a, 0x23, 0xd7, 0xce]; // the magic, little endian
  const tricky = new Uint8Array([1, 2, 3, 4, ...m, 5, 6, 7, 8, 9]);
  const payloads: [number, Uint8Array<ArrayBuffer>][] = [
    [0, new Uint8Array([9, 9, 9])],
    [1, tricky],
    [2, new Uint8Array([...m, ...m, 1, ...m])], // magic first, twice in a row and last
    [3, new Uint8Array([0, ...m, 0, 0, 0])], // unaligned magic: not split
    [4, new Uint8Array(0)],
  ];
  const path = writeRec(dir, "t", payloads);
  // The bytes of key 1 on disk: part 1 (cflag 1, 4 bytes), last part (cflag 3, 5 bytes + 3 pad).
  const raw = Deno.readFileSync(path);
  using f = RecordFile.open(path);
  const entries = f.entries();
  assert.deepEqual(entries.map((e) => e.key), [0n, 1n, 2n, 3n, 4n]);
  const o = Number(entries[1].offset);
  const words = new DataView(raw.buffer, o, 28);
  assert.equal(words.getUint32(0, true), RECORD_MAGIC);
  assert.equal(words.getUint32(4, true), (1 << 29) | 4);
  assert.deepEqual([...raw.subarray(o + 8, o + 12)], [1, 2, 3, 4]);
  assert.equal(words.getUint32(12, true), RECORD_MAGIC);
  assert.equal(words.getUint32(16, true), ((3 << 29) | 5) >>> 0);
  assert.deepEqual([...raw.subarray(o + 20, o + 28)], [5, 6, 7, 8, 9, 0, 0, 0]);
  for (const [k, p] of payloads) assert.deepEqual(f.read(k), p, `key ${k}`);
  assert.equal(f.count, 5n);
  assert.equal(f.fileSize, BigInt(raw.length));
  f.close();
  f.close();
  assert.throws(() => f.read(0), (e: AfcError) => e instanceof AfcError && /closed/.test(e.message));
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("an unfinished writer leaves no file under the real name", () => {
  const dir = Deno.makeTempDirSync();
  const w = RecordWriter.create(`${dir}/x.rec`);
  w.write(0, new Uint8Array(8));
  w.close();
  assert.deepEqual([...Deno.readDirSync(dir)], []);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("insightface layout: 6 images, meta [7, 10], 3 identity records", () => {
  const dir = Deno.makeTempDirSync();
  const recs: [number, Uint8Array<ArrayBuffer>][] = [[0, packRecord([7, 10])]];
  for (let i = 1; i <= 6; i++) {
    recs.push([i, packRecord(Math.floor((i - 1) / 2), pgm(4, 4, new Array(16).fill(i)))]);
  }
  for (let c = 0; c < 3; c++) recs.push([7 + c, packRecord([1 + 2 * c, 3 + 2 * c])]);
  using ds = Dataset.open({ kind: "recordio", path: writeRec(dir, "train", recs) });
  assert.equal(ds.numImages, 6);
  assert.equal(ds.numClasses, 3);
  assert.equal(ds.info.has_meta, true);
  assert.equal(ds.info.identity_records, 3);
  assert.deepEqual([...ds.labels()], [0n, 0n, 1n, 1n, 2n, 2n]);
  assert.deepEqual([...ds.image(5, 4, 4).rgb], new Array(48).fill(6));
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("plain im2rec files: record 0 is an image, or keys start at 1; none dropped", () => {
  const dir = Deno.makeTempDirSync();
  using a = Dataset.open({ kind: "recordio", path: writeRec(dir, "a", images(5)) });
  assert.equal(a.numImages, 5);
  assert.equal(a.info.has_meta, false);
  assert.deepEqual([...a.labels()], [0n, 1n, 2n, 3n, 4n]);
  const shifted = images(5).map(([k, p]) => [k + 1, p] as [number, Uint8Array<ArrayBuffer>]);
  using b = Dataset.open({ kind: "recordio", path: writeRec(dir, "b", shifted) });
  assert.equal(b.numImages, 5);
  assert.deepEqual([...b.image(4, 4, 4).rgb], new Array(48).fill(40));
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("a meta record claiming zero images falls back to the index keys with a warning", () => {
  const dir = Deno.makeTempDirSync();
  const recs: [number, Uint8Array<ArrayBuffer>][] = [
    [0, packRecord([0, 0])],
    ...images(5).map(([k, p]) => [k + 1, p] as [number, Uint8Array<ArrayBuffer>]),
  ];
  using ds = Dataset.open({ kind: "recordio", path: writeRec(dir, "z", recs) });
  assert.equal(ds.numImages, 5);
  assert.equal(ds.info.warnings.length, 1);
  assert.match(ds.info.warnings[0], /claims 0 images .* lists 5 other keys/);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("labels 7.0, [7, 3] (flag 2) and 7.0000005 are class 7; 7.4 and -1 fail naming the key", () => {
  const dir = Deno.makeTempDirSync();
  const img = pgm(4, 4, new Array(16).fill(77));
  const rec = packRecord([7, 3], img);
  assert.deepEqual(unpackRecord(rec).image, img); // image starts 8 bytes after the header
  assert.equal(new DataView(rec.buffer).getUint32(0, true), 2);
  using ds = Dataset.open({
    kind: "recordio",
    path: writeRec(dir, "l", [[0, packRecord(7, img)], [1, rec], [2, packRecord(7.0000005, img)]]),
  });
  assert.deepEqual([...ds.labels()], [7n, 7n, 7n]);
  assert.deepEqual([...ds.image(1, 4, 4).rgb], new Array(48).fill(77));
  for (const bad of [7.4, -1]) {
    const path = writeRec(dir, "bad", [[0, packRecord(1, img)], [1, packRecord(bad, img)]]);
    assert.throws(
      () => Dataset.open({ kind: "recordio", path }),
      (e: AfcError) =>
        e.message.includes(
          `record key 1 at offset 60 of "${path}": label ${bad} is not a non-negative integer class`,
        ),
    );
  }
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("labels numbered from 1, or beyond num_classes, fail before training", () => {
  const dir = Deno.makeTempDirSync();
  const path = writeRec(dir, "train", images(4, (i) => i + 1));
  assert.throws(
    () => openDataset({ rec: path, num_classes: 4 }),
    (e: Error) =>
      e instanceof RangeError &&
      e.message ===
        `Cannot train on "${path}": the largest label is 4 but num_classes is 4 (labels seem numbered from 1: renumber them from 0)`,
  );
  assert.throws(
    () => openDataset({ rec: dir, num_classes: 3 }),
    /largest label is 4 but num_classes is 3 \(set num_classes to at least 5\)/,
  );
  openDataset({ rec: dir, num_classes: 5 }).close();
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("truncated .rec, wrong magic and offsets past the end name the file, key, offset and size", () => {
  const dir = Deno.makeTempDirSync();
  const path = writeRec(dir, "t", images(3));
  const size = Deno.statSync(path).size; // 3 records of 24 + 8 + 11 + 16 bytes, padded
  Deno.truncateSync(path, size - 10);
  assert.throws(
    () => RecordFile.open(path),
    (e: AfcError) =>
      e.message.includes(
        `key 2: offset ${size / 3 * 2} of "${path}" (${size - 10} bytes) starts a record of`,
      ) && /truncated/.test(e.message),
  );
  using f = RecordFile.open(path, { verify: false });
  assert.throws(
    () => f.read(2),
    (e: AfcError) =>
      e.message.includes(`record key 2 at offset ${size / 3 * 2} of "${path}"`) &&
      e.message.includes(`the file holds ${size - 10} bytes`),
  );
  // an index offset inside a record
  Deno.writeTextFileSync(indexPathFor(path), "0\t0\n1\t8\n");
  assert.throws(
    () => RecordFile.open(path),
    (e: AfcError) => /key 1: offset 8 of .* holds 0x[0-9a-f]{8}, not the record magic/.test(e.message),
  );
  // past the end
  Deno.writeTextFileSync(indexPathFor(path), `0\t0\n5\t${size}\n`);
  assert.throws(
    () => RecordFile.open(path),
    (e: AfcError) =>
      e.message.includes(`key 5: offset ${size} is past the end of "${path}" (${size - 10} bytes)`),
  );
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("C28: offsets beyond 2 GiB and 4 GiB in a sparse file, impossible offsets refused at open", () => {
  const dir = Deno.makeTempDirSync();
  const path = `${dir}/big.rec`;
  const offsets = [0n, 2147483656n, 4294967304n];
  const file = Deno.openSync(path, { write: true, create: true });
  offsets.forEach((off, i) => {
    const payload = packRecord(i, new Uint8Array(16).fill([0xaa, 0xbb, 0xcc][i]));
    const rec = new Uint8Array(8 + payload.length);
    const v = new DataView(rec.buffer);
    v.setUint32(0, RECORD_MAGIC, true);
    v.setUint32(4, payload.length, true);
    rec.set(payload, 8);
    file.seekSync(off, Deno.SeekMode.Start);
    file.writeSync(rec);
  });
  file.close();
  const size = 4294967304n + 48n;
  assert.equal(BigInt(Deno.statSync(path).size), size);
  const idx = indexPathFor(path);
  Deno.writeTextFileSync(idx, offsets.map((o, i) => `${i}\t${o}\n`).join(""));
  using f = RecordFile.open(path);
  assert.deepEqual(f.entries().map((e) => e.offset), offsets);
  assert.equal(f.fileSize, size);
  offsets.forEach((_, i) => {
    const r = unpackRecord(f.read(BigInt(i)));
    assert.deepEqual(r.labels, [i]);
    assert.deepEqual([...r.image], new Array(16).fill([0xaa, 0xbb, 0xcc][i]));
  });
  using ds = Dataset.open({ kind: "recordio", path });
  assert.deepEqual([...ds.labels()], [0n, 1n, 2n]);
  const variants: [string, string][] = [
    [
      "18446744073709551615",
      `key 1: offset 18446744073709551615 is past the end of "${path}" (${size} bytes)`,
    ],
    ["2147483658", `key 1: offset 2147483658 is not a multiple of 4 ("${path}" holds ${size} bytes)`],
    [
      "2147483672",
      `key 1: offset 2147483672 of "${path}" (${size} bytes) holds 0x00000000, not the record magic`,
    ],
  ];
  for (const [bad, message] of variants) {
    Deno.writeTextFileSync(idx, `0\t0\n1\t${bad}\n2\t4294967304\n`);
    assert.throws(
      () => RecordFile.open(path),
      (e: AfcError) => e.message.includes(`bad index "${idx}": ${message}`),
      bad,
    );
  }
  Deno.removeSync(dir, { recursive: true });
});

/** A dataset of n PPM images 2×1, image i = pixels (i, 0, 255) (i, 128, 1), label i. */
function ppmDataset(dir: string, n: number): Dataset {
  const recs = Array.from(
    { length: n },
    (_, i) =>
      [i, packRecord(i, new Uint8Array([...te.encode("P6 2 1 255\n"), i, 0, 255, i, 128, 1]))] as [
        number,
        Uint8Array<ArrayBuffer>,
      ],
  );
  return Dataset.open({ kind: "recordio", path: writeRec(dir, `ppm${n}`, recs) });
}

async function epochLabels(ds: Dataset, o: Parameters<Dataset["loader"]>[0], epoch = 0): Promise<bigint[][]> {
  using l = ds.loader(o);
  await l.setEpoch(epoch);
  const input = new Float32Array(l.inputLength), labels = new BigInt64Array(l.batchSize);
  const out: bigint[][] = [];
  while (await l.next(input, labels)) out.push([...labels]);
  assert.equal(out.length, l.steps);
  return out;
}

Deno.test("normalisation (x/255-0.5)/0.5 into NCHW with int64 labels", async () => {
  const dir = Deno.makeTempDirSync();
  using ds = ppmDataset(dir, 4);
  using l = ds.loader({ batchSize: 2, width: 2, height: 1, shuffle: false, flip: false });
  const input = new Float32Array(l.inputLength), labels = new BigInt64Array(2);
  assert.equal(await l.next(input, labels), 2);
  assert.deepEqual([...labels], [0n, 1n]);
  const f = (x: number) => Math.fround((Math.fround(x / 255) - 0.5) / 0.5);
  // image 1: R plane (1, 1), G plane (0, 128), B plane (255, 1)
  assert.deepEqual([...input.subarray(6, 12)], [f(1), f(1), -1, f(128), 1, f(1)]);
  assert.equal(f(128), Math.fround(0.003921628));
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("loader: same seed same order, a new epoch or seed reshuffles", async () => {
  const dir = Deno.makeTempDirSync();
  using ds = ppmDataset(dir, 20);
  const o = { batchSize: 4, width: 2, height: 1, seed: 7, numThreads: 2, prefetch: 2 };
  const a = await epochLabels(ds, o), b = await epochLabels(ds, o);
  assert.deepEqual(a, b);
  assert.deepEqual(a.flat().sort((x, y) => Number(x - y)), Array.from({ length: 20 }, (_, i) => BigInt(i)));
  assert.notDeepEqual(await epochLabels(ds, o, 1), a);
  assert.notDeepEqual(await epochLabels(ds, { ...o, seed: 8 }), a);
  assert.deepEqual(await epochLabels(ds, o, 1), await epochLabels(ds, o, 1));
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("sharding over 2 and 3 ranks: padded like DistributedSampler, equal full batches", async () => {
  const dir = Deno.makeTempDirSync();
  using ds = ppmDataset(dir, 20);
  const o = { batchSize: 3, width: 2, height: 1, shuffle: false, flip: false };
  const two = [
    await epochLabels(ds, { ...o, rank: 0, worldSize: 2 }),
    await epochLabels(ds, { ...o, rank: 1, worldSize: 2 }),
  ];
  assert.deepEqual(two[0], [[0n, 2n, 4n], [6n, 8n, 10n], [12n, 14n, 16n]]);
  assert.deepEqual(two[1], [[1n, 3n, 5n], [7n, 9n, 11n], [13n, 15n, 17n]]);
  const three = await Promise.all([0, 1, 2].map((rank) => epochLabels(ds, { ...o, rank, worldSize: 3 })));
  // 20 padded to 21 (index 0 repeated): 7 per rank, 2 full batches of 3 each
  assert.deepEqual(three.map((r) => r.length), [2, 2, 2]);
  assert.deepEqual(three[2], [[2n, 5n, 8n], [11n, 14n, 17n]]);
  // shuffled: every rank still gets the same number of steps, shards are disjoint
  const shuffled = await Promise.all(
    [0, 1, 2].map((rank) => epochLabels(ds, { ...o, shuffle: true, rank, worldSize: 3 })),
  );
  assert.deepEqual(shuffled.map((r) => r.length), [2, 2, 2]);
  assert.equal(new Set(shuffled.flat(2)).size, 18);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("7 images on 2 ranks at batch 2: both ranks run 2 steps of 2 images", async () => {
  const dir = Deno.makeTempDirSync();
  using ds = ppmDataset(dir, 7);
  const o = { batchSize: 2, width: 2, height: 1, flip: false };
  const ranks = await Promise.all([0, 1].map((rank) => epochLabels(ds, { ...o, rank, worldSize: 2 })));
  assert.deepEqual(ranks.map((r) => r.map((batch) => batch.length)), [[2, 2], [2, 2]]);
  // Padded to 8 with the first shuffled index again, as DistributedSampler: 7 distinct labels.
  assert.equal(new Set(ranks.flat(2)).size, 7);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("random horizontal flip mirrors some images, the same ones for the same seed", async () => {
  const dir = Deno.makeTempDirSync();
  using ds = ppmDataset(dir, 32);
  const run = async () => {
    using l = ds.loader({ batchSize: 32, width: 2, height: 1, shuffle: false, flip: true, seed: 3 });
    const input = new Float32Array(l.inputLength), labels = new BigInt64Array(32);
    await l.next(input, labels);
    // G plane of image j: (0, 128) unflipped, (128, 0) flipped
    return Array.from({ length: 32 }, (_, j) => input[j * 6 + 2] === -1 ? 0 : 1);
  };
  const flips = await run();
  const count = flips.reduce((a: number, b) => a + b, 0);
  assert.ok(count >= 8 && count <= 24, `${count} of 32 flipped`);
  assert.deepEqual(await run(), flips);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("a corrupt JPEG fails the batch naming the record; skip_corrupt counts it", async () => {
  const dir = Deno.makeTempDirSync();
  const good = encodeJpeg(new Uint8Array(8 * 8 * 3).fill(100), 8, 8, 90);
  const recs = Array.from(
    { length: 4 },
    (_, i) => [i, packRecord(i, i === 2 ? good.slice(0, 40) : good)] as [number, Uint8Array<ArrayBuffer>],
  );
  const path = writeRec(dir, "c", recs);
  const o = { batchSize: 4, width: 8, height: 8, shuffle: false };
  {
    using ds = Dataset.open({ kind: "recordio", path });
    using l = ds.loader(o);
    const input = new Float32Array(l.inputLength), labels = new BigInt64Array(4);
    const off = Number(RecordFile.open(path).entries()[2].offset);
    await assert.rejects(
      l.next(input, labels),
      (e: AfcError) => e.message.includes(`cannot decode record key 2 at offset ${off} of "${path}"`),
    );
  }
  using ds = Dataset.open({ kind: "recordio", path, skipCorrupt: true });
  using l = ds.loader(o);
  const input = new Float32Array(l.inputLength), labels = new BigInt64Array(4);
  assert.equal(await l.next(input, labels), 4);
  assert.deepEqual([...labels], [0n, 1n, 3n, 3n]);
  assert.equal(l.counters().skipped, 1n);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("image-folder and synthetic datasets", async () => {
  const dir = Deno.makeTempDirSync();
  for (const [c, v] of [["alice", 10], ["bob", 20]] as const) {
    Deno.mkdirSync(`${dir}/${c}`);
    for (const f of ["1.pgm", "2.pgm"]) Deno.writeFileSync(`${dir}/${c}/${f}`, pgm(2, 2, [v, v, v, v]));
  }
  using ds = openDataset({ rec: dir });
  assert.equal(ds.info.kind, "folder");
  assert.deepEqual([...ds.labels()], [0n, 0n, 1n, 1n]);
  assert.deepEqual([...ds.image(3, 2, 2).rgb], new Array(12).fill(20));
  using syn = openDataset({ rec: "synthetic" });
  assert.equal(syn.numImages, 1_000_000);
  using l = syn.loader({ batchSize: 2, flip: false });
  const input = new Float32Array(l.inputLength), labels = new BigInt64Array(2);
  await l.next(input, labels);
  assert.deepEqual([...labels], [1n, 1n]);
  assert.deepEqual(input.subarray(0, l.inputLength / 2), input.subarray(l.inputLength / 2)); // one image, repeated
  assert.ok(input.some((x) => x !== input[0])); // and not a flat one
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("data/orl: 300 images of 30 identities, labels 0..29, first image is s1/1.pgm padded to 112x112", () => {
  using ds = openDataset({ rec: new URL("../../data/orl", import.meta.url).pathname, num_classes: 30 });
  assert.equal(ds.numImages, 300);
  assert.equal(ds.info.identity_records, 30);
  assert.deepEqual([...ds.labels()], Array.from({ length: 300 }, (_, i) => BigInt(Math.floor(i / 10))));
  const { rgb, label } = ds.image(0);
  assert.equal(label, 0n);
  assert.equal(rgb.length, 112 * 112 * 3);
  const src = decodeImage(Deno.readFileSync(new URL("../fixtures/data/orl_s1_1.pgm", import.meta.url)));
  let sum = 0, worst = 0;
  for (let y = 0; y < 112; y++) {
    for (let x = 0; x < 112; x++) {
      for (let c = 0; c < 3; c++) {
        const want = x < 10 || x >= 102 ? 0 : src[(y * 92 + x - 10) * 3];
        const d = Math.abs(rgb[(y * 112 + x) * 3 + c] - want);
        sum += d;
        worst = Math.max(worst, d);
      }
    }
  }
  const mean = sum / rgb.length;
  assert.ok(mean < 2.5 && worst < 40, `JPEG error mean ${mean}, max ${worst}`);
});
