import assert from "node:assert/strict";
import {
  alignFace,
  ARCFACE_LANDMARKS,
  evaluateIjb,
  FAR_TARGETS,
  readIjb,
  similarityTransform,
  sklearnRoc,
  tarAtFar,
  templateFeatures,
} from "../../lib/ijb.ts";
import { encodeJpeg } from "../../lib/image.ts";
import { openDataset } from "../../lib/data.ts";
import { Model } from "../../lib/model.ts";
import { main } from "../../lib/cli/eval_ijb.ts";

const root = new URL("../..", import.meta.url).pathname;

Deno.test("similarity transform: recovers scale, rotation and shift; alignment inverts it", () => {
  // Landmarks of a face scaled by 1.5, rotated by 10°, shifted by (20, 30).
  const [c, s] = [1.5 * Math.cos(0.1745), 1.5 * Math.sin(0.1745)];
  const moved = ARCFACE_LANDMARKS.flatMap(([x, y]) => [c * x - s * y + 20, s * x + c * y + 30]);
  const t = similarityTransform(moved, ARCFACE_LANDMARKS);
  // The inverse of the applied transform: scale 1/1.5, rotation −10°.
  assert.ok(Math.abs(Math.hypot(t.a, t.b) - 1 / 1.5) < 1e-9);
  assert.ok(Math.abs(Math.atan2(t.b, t.a) + 0.1745) < 1e-9);
  // A pure shift: the aligned crop is the original pixels.
  const rgb = Uint8Array.from({ length: 112 * 112 * 3 }, (_, i) => (i * 7) % 251);
  const canvas = new Uint8Array(150 * 140 * 3);
  for (let y = 0; y < 112; y++) canvas.set(rgb.subarray(y * 336, y * 336 + 336), ((y + 17) * 150 + 9) * 3);
  const shifted = ARCFACE_LANDMARKS.flatMap(([x, y]) => [x + 9, y + 17]);
  assert.deepEqual(alignFace(canvas, 150, 140, shifted), rgb);
});

Deno.test("template fusion: media mean, then sum over media, then L2 normalisation (hand-checked)", () => {
  const faces = [
    { image: "a", template: 1, media: 10, landmarks: [], score: 1 },
    { image: "b", template: 1, media: 10, landmarks: [], score: 1 },
    { image: "c", template: 1, media: 11, landmarks: [], score: 1 },
    { image: "d", template: 2, media: 12, landmarks: [], score: 1 },
  ];
  // dim 2: media 10 mean (2, 0), media 11 (0, 1) → sum (2, 1) → (2, 1)/√5.
  const t = templateFeatures(faces, new Float32Array([1, 0, 3, 0, 0, 1, 0, 5]), 2);
  assert.deepEqual([...t.get(1)!].map((v) => +v.toFixed(6)), [
    +(2 / Math.sqrt(5)).toFixed(6),
    +(1 / Math.sqrt(5)).toFixed(6),
  ]);
  assert.deepEqual([...t.get(2)!], [0, 1]);
});

Deno.test("ROC and TAR at FAR match scikit-learn's roc_curve as eval_ijbc.py uses it", async () => {
  let seed = 7;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const labels = Array.from({ length: 400 }, (_, i) => i % 3 === 0);
  // Rounded scores, so that ties occur.
  const scores = Float64Array.from(labels, (l) => Math.round((rand() + (l ? 0.5 : 0)) * 50) / 50);
  const targets = [1e-3, 1e-2, 0.05, 0.1, 0.3];
  const out = await new Deno.Command("python3", {
    args: [`${root}tests/lib/ijb_sklearn.py`],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = out.stdin.getWriter();
  await w.write(new TextEncoder().encode(JSON.stringify({ scores: [...scores], labels, targets })));
  await w.close();
  const r = await out.output();
  assert.equal(r.code, 0, new TextDecoder().decode(r.stderr));
  const ref = JSON.parse(new TextDecoder().decode(r.stdout));
  const ours = sklearnRoc(scores, labels);
  assert.deepEqual(ours.fpr.map((v) => +v.toFixed(12)), ref.fpr.map((v: number) => +v.toFixed(12)));
  assert.deepEqual(ours.tpr.map((v) => +v.toFixed(12)), ref.tpr.map((v: number) => +v.toFixed(12)));
  assert.deepEqual(tarAtFar(scores, labels, targets).map((t) => t.tar), ref.tar);
});

/** A tiny IJB-C tree of ORL faces: 4 people × 3 loose crops, templates 10p+1 and 10p+2. */
async function tinyIjb(): Promise<string> {
  const dir = await Deno.makeTempDir();
  await Deno.mkdir(`${dir}/meta`);
  await Deno.mkdir(`${dir}/loose_crop`);
  // 4 people × 3 images of the shipped ORL set; person p has templates 10p+1 (2 media) and 10p+2.
  using ds = openDataset({ rec: `${root}data/orl` });
  const labels = ds.labels();
  const tid: string[] = [], pts: string[] = [];
  for (let p = 0; p < 4; p++) {
    const mine = [...labels.keys()].filter((i) => labels[i] === BigInt(p)).slice(0, 3);
    for (const [j, index] of mine.entries()) {
      const img = ds.image(index).rgb;
      // A loose crop: the face on a larger black canvas, shifted.
      const canvas = new Uint8Array(140 * 130 * 3);
      for (let y = 0; y < 112; y++) {
        canvas.set(img.subarray(y * 336, y * 336 + 336), ((y + 11) * 140 + 13) * 3);
      }
      const name = `${p}_${j}.jpg`;
      await Deno.writeFile(`${dir}/loose_crop/${name}`, encodeJpeg(canvas, 140, 130, 95));
      tid.push(`${name} ${10 * p + (j === 2 ? 2 : 1)} ${100 * p + j}`);
      pts.push(`${name} ${ARCFACE_LANDMARKS.flatMap(([x, y]) => [x + 13, y + 11]).join(" ")} 0.9`);
    }
  }
  const pairs: string[] = [];
  for (let p = 0; p < 4; p++) {
    pairs.push(`${10 * p + 1} ${10 * p + 2} 1`);
    pairs.push(`${10 * p + 1} ${10 * ((p + 1) % 4) + 2} 0`);
  }
  await Deno.writeTextFile(`${dir}/meta/ijbc_face_tid_mid.txt`, tid.join("\n") + "\n");
  await Deno.writeTextFile(`${dir}/meta/ijbc_name_5pts_score.txt`, pts.join("\n") + "\n");
  await Deno.writeTextFile(`${dir}/meta/ijbc_template_pair_label.txt`, pairs.join("\n") + "\n");

  return dir;
}

Deno.test("end to end on a tiny IJB tree of ORL faces: meta files, loose crops, alignment, scores", async () => {
  const dir = await tinyIjb();
  const ijb = await readIjb(dir, "ijbc");
  assert.equal(ijb.faces.length, 12);
  assert.deepEqual(ijb.pairs.slice(0, 2), [{ t1: 1, t2: 2, label: true }, { t1: 1, t2: 12, label: false }]);
  using model = Model.create({ network: "mbf", maxBatch: 8 });
  const r = await evaluateIjb(ijb, (x, n) => model.forward(x, n), { batchSize: 8 });
  assert.equal(r.scores.length, 8);
  for (const s of r.scores) assert.ok(s >= -1 - 1e-9 && s <= 1 + 1e-9, `cosine ${s}`);
  assert.deepEqual(r.tar.map((t) => t.far), FAR_TARGETS);
  assert.deepEqual(r.tar, tarAtFar(r.scores, ijb.pairs.map((p) => p.label)));
});

Deno.test("IJB: a missing meta file or landmarks line is named", async () => {
  const dir = await Deno.makeTempDir();
  await assert.rejects(
    () => readIjb(dir, "ijbb"),
    /Cannot read IJB meta file ".*meta\/ijbb_face_tid_mid\.txt"/,
  );
  await Deno.mkdir(`${dir}/meta`);
  await Deno.writeTextFile(`${dir}/meta/ijbb_face_tid_mid.txt`, "1.jpg 1 1\n");
  await Deno.writeTextFile(`${dir}/meta/ijbb_template_pair_label.txt`, "1 1 1\n");
  await Deno.writeTextFile(`${dir}/meta/ijbb_name_5pts_score.txt`, "2.jpg 1 2 3 4 5 6 7 8 9 10 0.9\n");
  await assert.rejects(() => readIjb(dir, "ijbb"), /no landmarks for "1\.jpg"/);
});

Deno.test("eval-ijb prints TAR at the seed's FARs and draws the ROC", async () => {
  const dir = await tinyIjb();
  {
    using model = Model.create({ network: "mbf", maxBatch: 8 });
    await model.save(`${dir}/m.safetensors`);
  }
  const { log, error } = console;
  let out = "";
  console.log = console.error = (...a: unknown[]) => void (out += a.join(" ") + "\n");
  let code;
  try {
    code = await main([
      "--root",
      dir,
      "--model",
      `${dir}/m.safetensors`,
      "--batch-size",
      "8",
      "--roc",
      `${dir}/roc.png`,
    ]);
  } finally {
    console.log = log;
    console.error = error;
  }
  assert.equal(code, 0, out);
  assert.match(out, /ijbc: 12 faces, 8 template pairs/);
  assert.match(out, /\| FAR \| 1e-6 \| 1e-5 \| 1e-4 \| 1e-3 \| 1e-2 \| 1e-1 \|/);
  assert.match(out, /\| TAR( \| \d+\.\d\d){6} \|/);
  assert.deepEqual([...(await Deno.readFile(`${dir}/roc.png`)).subarray(1, 4)], [80, 78, 71]);
});
