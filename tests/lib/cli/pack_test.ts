import assert from "node:assert/strict";
import { main } from "../../../lib/cli/pack.ts";
import { Dataset, RecordFile, unpackRecord } from "../../../lib/data.ts";
import { decodeImage } from "../../../lib/image.ts";

const te = new TextEncoder();
const pgm = (w: number, h: number, v: number) =>
  new Uint8Array([...te.encode(`P5 ${w} ${h} 255\n`), ...new Array(w * h).fill(v)]);

Deno.test("pack: a folder becomes the insightface layout, grey padded to size×size RGB", async () => {
  const dir = Deno.makeTempDirSync();
  // identities s2 and s10: natural order gives s2 label 0, s10 label 1
  for (const [c, v] of [["s10", 200], ["s2", 100]] as const) {
    Deno.mkdirSync(`${dir}/in/${c}`, { recursive: true });
    for (const f of ["1.pgm", "2.pgm", "3.pgm"]) Deno.writeFileSync(`${dir}/in/${c}/${f}`, pgm(8, 16, v));
  }
  Deno.mkdirSync(`${dir}/out`);
  assert.equal(
    await main([`${dir}/in`, `${dir}/out/train.rec`, "--size", "16", "--fit", "pad", "--quality", "100"]),
    0,
  );
  using f = RecordFile.open(`${dir}/out/train.rec`);
  assert.deepEqual(f.entries().map((e) => e.key), [0n, 1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n]);
  assert.deepEqual(unpackRecord(f.read(0)).labels, [7, 9]); // meta: identities at keys 7..8
  assert.deepEqual(unpackRecord(f.read(7)).labels, [1, 4]); // identity 0: image keys 1..3
  assert.deepEqual(unpackRecord(f.read(8)).labels, [4, 7]);
  assert.equal(Deno.readTextFileSync(`${dir}/out/property`), "2,16,16\n");
  using ds = Dataset.open({ kind: "recordio", path: `${dir}/out/train.rec` });
  assert.deepEqual([...ds.labels()], [0n, 0n, 0n, 1n, 1n, 1n]);
  const rgb = decodeImage(unpackRecord(f.read(4)).image);
  assert.equal(rgb.length, 16 * 16 * 3);
  // columns 0..3 and 12..15 are padding (black), 4..11 the image (200), within JPEG error
  for (const [x, want] of [[0, 0], [2, 0], [6, 200], [9, 200], [14, 0]]) {
    assert.ok(Math.abs(rgb[(8 * 16 + x) * 3] - want) <= 3, `x ${x}: ${rgb[(8 * 16 + x) * 3]}`);
  }
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("pack: a list file works; a bad image fails and leaves the existing train.rec intact", async () => {
  const dir = Deno.makeTempDirSync();
  Deno.writeFileSync(`${dir}/a.pgm`, pgm(4, 4, 50));
  Deno.writeFileSync(`${dir}/b.pgm`, pgm(4, 4, 60));
  Deno.writeTextFileSync(`${dir}/train.lst`, "1\t0\ta.pgm\n2\t1\tb.pgm\n");
  assert.equal(await main([`${dir}/train.lst`, `${dir}/train.rec`, "--size", "4"]), 0);
  const before = Deno.readFileSync(`${dir}/train.rec`);
  Deno.writeFileSync(`${dir}/c.pgm`, te.encode("P5 4 4 255\n12"));
  Deno.writeTextFileSync(`${dir}/train.lst`, "1\t0\ta.pgm\n2\t1\tc.pgm\n");
  assert.equal(await main([`${dir}/train.lst`, `${dir}/train.rec`, "--size", "4"]), 1);
  assert.deepEqual(Deno.readFileSync(`${dir}/train.rec`), before);
  assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), [
    "a.pgm",
    "b.pgm",
    "c.pgm",
    "property",
    "train.idx",
    "train.lst",
    "train.rec",
  ]);
  assert.equal(await main([`${dir}/train.lst`]), 2);
  Deno.removeSync(dir, { recursive: true });
});
