import assert from "node:assert/strict";
import { main } from "../../../lib/cli/import.ts";
import { Model } from "../../../lib/model.ts";

const root = new URL("../../..", import.meta.url).pathname;

/** Checkpoints written by PyTorch (tests/golden/make_torch_checkpoints.py), once per run. */
const fixtures = (async () => {
  const dir = await Deno.makeTempDir();
  const python = Deno.env.get("AFC_PYTHON") ?? "/usr/bin/python3";
  const out = await new Deno.Command(python, {
    args: [`${root}tests/golden/make_torch_checkpoints.py`, dir],
    stderr: "piped",
  }).output();
  if (out.code !== 0) {
    throw new Error(`make_torch_checkpoints.py failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return dir;
})();

async function capture(args: string[]): Promise<{ code: number; err: string }> {
  const error = console.error, log = console.log;
  let err = "";
  console.error = (...a: unknown[]) => void (err += a.join(" ") + "\n");
  console.log = () => {};
  try {
    return { code: await main(args), err };
  } finally {
    console.error = error;
    console.log = log;
  }
}

async function embeddings(path: string, x: Float32Array<ArrayBuffer>): Promise<Float32Array> {
  using model = await Model.load(path, { maxBatch: 2 });
  return await model.forward(x, 2);
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
}

Deno.test("import: plain, seed (state_dict_backbone), DDP and legacy checkpoints give PyTorch's embeddings", async () => {
  const dir = await fixtures;
  const x = new Float32Array((await Deno.readFile(`${dir}/x.f32`)).buffer);
  const want = new Float32Array((await Deno.readFile(`${dir}/emb.f32`)).buffer);
  for (const name of ["plain", "seed", "ddp", "legacy", "legacy_seed"]) {
    const r = await capture([`${dir}/${name}.pt`, `${dir}/${name}.safetensors`]);
    assert.equal(r.code, 0, r.err);
    const diff = maxDiff(await embeddings(`${dir}/${name}.safetensors`, x), want);
    assert.ok(diff < 1e-4, `${name}: max difference ${diff}`);
  }
  // float16 storages become float32 values of the same halves.
  const r = await capture([`${dir}/half.pt`, `${dir}/half.safetensors`]);
  assert.equal(r.code, 0, r.err);
  const wantHalf = new Float32Array((await Deno.readFile(`${dir}/emb_half.f32`)).buffer);
  const diff = maxDiff(await embeddings(`${dir}/half.safetensors`, x), wantHalf);
  assert.ok(diff < 1e-3, `half: max difference ${diff}`);
});

Deno.test("import: the wrong content fails naming the keys, and leaves no output", async () => {
  const dir = await fixtures;
  let r = await capture([`${dir}/pfc.pt`, `${dir}/pfc.safetensors`]);
  assert.equal(r.code, 1);
  assert.match(r.err, /its tensors \("weight", …\) match no backbone/);
  r = await capture([`${dir}/r18.pt`, `${dir}/r18.safetensors`, "--network", "mbf", "--num-features", "512"]);
  assert.equal(r.code, 1);
  assert.match(r.err, /Cannot load ".*r18\.pt" into "mbf": \d+ missing \("conv1\.conv\.weight"|missing \(/);
  assert.match(r.err, /unexpected \("conv1\.weight"/);
  for (const f of ["pfc.safetensors", "r18.safetensors"]) {
    await assert.rejects(() => Deno.stat(`${dir}/${f}`), Deno.errors.NotFound);
  }
  // Not a checkpoint at all; a truncated one.
  await Deno.writeTextFile(`${dir}/text.pt`, "hello");
  r = await capture([`${dir}/text.pt`, `${dir}/text.safetensors`]);
  assert.match(r.err, /Cannot import ".*text\.pt": .*not a ZIP archive/);
  const bytes = await Deno.readFile(`${dir}/plain.pt`);
  await Deno.writeFile(`${dir}/cut.pt`, bytes.subarray(0, bytes.length / 2));
  r = await capture([`${dir}/cut.pt`, `${dir}/cut.safetensors`]);
  assert.equal(r.code, 1);
  assert.match(r.err, /cut\.pt/);
  // A legacy file cut inside a storage, and a pickle that is not a checkpoint.
  const legacy = await Deno.readFile(`${dir}/legacy.pt`);
  await Deno.writeFile(`${dir}/cut_legacy.pt`, legacy.subarray(0, legacy.length - 100));
  r = await capture([`${dir}/cut_legacy.pt`, `${dir}/cut_legacy.safetensors`]);
  assert.equal(r.code, 1);
  assert.match(
    r.err,
    /Cannot import ".*cut_legacy\.pt": storage "\d+" holds \d+ of \d+ elements.*truncated or damaged/,
  );
  await Deno.writeFile(`${dir}/list.pt`, new Uint8Array([0x80, 0x02, 0x5d, 0x71, 0x00, 0x2e])); // pickle of []
  r = await capture([`${dir}/list.pt`, `${dir}/list.safetensors`]);
  assert.match(r.err, /Cannot import ".*list\.pt": a pickle, but not a torch\.save checkpoint/);
  for (const f of ["cut_legacy.safetensors", "list.safetensors"]) {
    await assert.rejects(() => Deno.stat(`${dir}/${f}`), Deno.errors.NotFound);
  }
});
