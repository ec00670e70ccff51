import assert from "node:assert/strict";
import { main as evalMain } from "../../../lib/cli/eval.ts";
import { main as embedMain } from "../../../lib/cli/embed.ts";
import { embed } from "../../../lib/embed.ts";
import { Model } from "../../../lib/model.ts";
import { decodeSet, readBin, verify, writeBin } from "../../../lib/verification.ts";
import { decodeNpy } from "../../../lib/npy.ts";

const root = new URL("../../..", import.meta.url).pathname;

/** Captures console.log / console.error while `f` runs. */
async function capture(f: () => Promise<number>): Promise<{ code: number; out: string; err: string }> {
  const { log, error } = console;
  let out = "", err = "";
  console.log = (...a: unknown[]) => void (out += a.join(" ") + "\n");
  console.error = (...a: unknown[]) => void (err += a.join(" ") + "\n");
  try {
    return { code: await f(), out, err };
  } finally {
    console.log = log;
    console.error = error;
  }
}

/** A random mbf saved to a file, and 20 pairs of the shipped ORL set (both kinds). */
async function fixture() {
  const dir = await Deno.makeTempDir();
  using model = Model.create({ network: "mbf", maxBatch: 8, threads: 2 });
  await model.save(`${dir}/model.safetensors`);
  const full = await readBin(`${root}data/orl_val.bin`);
  const pick = Array.from({ length: 20 }, (_, i) => i * 45);
  await writeBin(
    `${dir}/small.bin`,
    pick.flatMap((p) => [full.images[2 * p], full.images[2 * p + 1]]),
    pick.map((p) => full.issame[p]),
  );
  return dir;
}

Deno.test("eval prints the table with the protocol's figures and draws the ROC", async () => {
  const dir = await fixture();
  const r = await capture(() =>
    evalMain([
      "--model",
      `${dir}/model.safetensors`,
      "--bin",
      `${dir}/small.bin`,
      "--batch-size",
      "8",
      "--roc",
      `${dir}/roc.png`,
    ])
  );
  assert.equal(r.code, 0, r.err);
  // The same figures as the library computes for the same model and set.
  using model = await Model.load(`${dir}/model.safetensors`, { maxBatch: 8 });
  const want = await verify(decodeSet(await readBin(`${dir}/small.bin`)), (x, n) => model.forward(x, n), {
    batchSize: 8,
  });
  const row = r.out.split("\n").find((l) => l.startsWith("small"))!;
  assert.ok(
    row.includes(`${(100 * want.flip.accuracy).toFixed(2)} ± ${(100 * want.flip.std).toFixed(2)}`),
    row,
  );
  assert.ok(row.includes(want.xnorm.toFixed(4)), row);
  const png = await Deno.readFile(`${dir}/roc.png`);
  assert.deepEqual([...png.subarray(0, 8)], [137, 80, 78, 71, 13, 10, 26, 10]);
});

Deno.test("eval: a missing set or model fails with its path, usage errors exit 2", async () => {
  const dir = await fixture();
  let r = await capture(() => evalMain(["--model", `${dir}/model.safetensors`, "--bin", `${dir}/nope.bin`]));
  assert.equal(r.code, 1);
  assert.match(r.err, /nope\.bin/);
  r = await capture(() => evalMain(["--model", `${dir}/none.safetensors`, "--bin", `${dir}/small.bin`]));
  assert.equal(r.code, 1);
  assert.match(r.err, /none\.safetensors/);
  r = await capture(() => evalMain(["--bin", `${dir}/small.bin`]));
  assert.equal(r.code, 2);
});

Deno.test("embed writes the library's embeddings as .npy; a file that is no image is named", async () => {
  const dir = await fixture();
  const image = `${root}tests/fixtures/data/orl_s1_1.pgm`;
  const r = await capture(() =>
    embedMain([`${dir}/model.safetensors`, image, image, "--out", `${dir}/e.npy`])
  );
  assert.equal(r.code, 0, r.err);
  const npy = decodeNpy(await Deno.readFile(`${dir}/e.npy`));
  assert.deepEqual(npy.shape, [2, 512]);
  using model = await Model.load(`${dir}/model.safetensors`, { maxBatch: 2 });
  const [want] = await embed(model, [await Deno.readFile(image)]);
  assert.deepEqual(npy.data.subarray(0, 512), want);
  assert.deepEqual(npy.data.subarray(512), want);

  await Deno.writeTextFile(`${dir}/not_an_image.jpg`, "hello");
  const bad = await capture(() => embedMain([`${dir}/model.safetensors`, `${dir}/not_an_image.jpg`]));
  assert.equal(bad.code, 1);
  assert.match(bad.err, /not_an_image\.jpg/);
});
