import assert from "node:assert/strict";
import { buildGraph, expectedTensors, type Graph } from "../../../lib/export/graph.ts";
import { encodeModel, exportOnnx } from "../../../lib/export/onnx.ts";
import { loadWeights } from "../../../lib/export/load.ts";
import { checkOnnx } from "../../../lib/export/check.ts";
import { firstRows, makeReference, maxAbsDiff, readNpy, runOrt } from "./helpers.ts";

// Exported backbone in onnxruntime vs the PyTorch eval-mode forward on the same weights.
async function parity(network: string) {
  const dir = await makeReference(network, { batch: 4 });
  try {
    const m = await loadWeights(`${dir}/model.safetensors`);
    assert.equal(m.network, network);
    assert.equal(m.source, "metadata");
    await Deno.writeFile(`${dir}/model.onnx`, exportOnnx(m.network, m.numFeatures, m.weights));
    const x = await readNpy(`${dir}/input.npy`);
    const want = await readNpy(`${dir}/output.npy`);
    for (const n of [1, 4]) {
      const got = await runOrt(`${dir}/model.onnx`, firstRows(x, n));
      assert.deepEqual(got.shape, [n, 512]);
      const d = maxAbsDiff(got.data, firstRows(want, n).data);
      assert.ok(d < 1e-4, `${network} batch ${n}: max abs difference ${d}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("onnx: mbf export matches PyTorch in onnxruntime at batch 1 and 4", () => parity("mbf"));
Deno.test("onnx: r18 export matches PyTorch in onnxruntime at batch 1 and 4", () => parity("r18"));

Deno.test("onnx: parameter and MAC counts of the exported graphs", () => {
  // Folded parameter counts (conv+BN → conv with bias); MACs known for these backbones.
  const counts: Record<string, [number, number]> = {};
  for (const net of ["r18", "r50", "mbf"]) {
    const weights = new Map(
      [...expectedTensors(net, 512)].map((
        [k, s],
      ) => [k, { shape: s, data: new Float32Array(s.reduce((a, b) => a * b, 1)) }]),
    );
    const r = checkOnnx(exportOnnx(net, 512, weights));
    assert.deepEqual(r.violations, []);
    counts[net] = [r.parameters, r.macs!];
  }
  assert.ok(Math.abs(counts.r18[1] / 1e9 - 2.62) < 0.02, `r18 MACs ${counts.r18[1]}`);
  assert.ok(Math.abs(counts.r50[1] / 1e9 - 6.33) < 0.03, `r50 MACs ${counts.r50[1]}`);
  assert.ok(Math.abs(counts.mbf[1] / 1e9 - 0.44) < 0.01, `mbf MACs ${counts.mbf[1]}`);
  assert.equal(counts.mbf[0], 2_047_616);
});

Deno.test("onnx: missing or misshapen tensors are refused by name", () => {
  const weights = new Map(
    [...expectedTensors("mbf", 128)].map((
      [k, s],
    ) => [k, { shape: s, data: new Float32Array(s.reduce((a, b) => a * b, 1)) }]),
  );
  const kept = weights.get("conv_sep.layers.1.running_var")!;
  weights.delete("conv_sep.layers.1.running_var");
  assert.throws(() => buildGraph("mbf", 128, weights), /tensor "conv_sep.layers.1.running_var" is missing/);
  weights.set("conv_sep.layers.1.running_var", kept);
  assert.throws(
    () => buildGraph("mbf", 512, weights),
    /"features.layers.2.weight" has shape \[128,512\], expected \[512,512\]/,
  );
  assert.throws(() => buildGraph("r999", 512, weights), /Unknown network "r999"/);
});

// C31: PReLU slopes follow the channel axis; stored [C,1,1] they broadcast over H and W.
function preluGraph(c: number, h: number, slopes: Float32Array): Graph {
  return {
    network: "prelu",
    numFeatures: 0,
    input: "data",
    output: "y",
    nodes: [{ op: "PRelu", name: "prelu", inputs: ["data", "slope"], outputs: ["y"], attrs: {} }],
    initializers: new Map([["slope", { shape: [c, 1, 1], data: slopes }]]),
    inputDims: ["N", c, h, h],
    outputDims: ["N", c, h, h],
  };
}

Deno.test("onnx: C31 PReLU slopes [C,1,1] in onnxruntime, 2-channel case and 64×112×112", async () => {
  const dir = await Deno.makeTempDir({ prefix: "afc_prelu_" });
  try {
    await Deno.writeFile(`${dir}/small.onnx`, encodeModel(preluGraph(2, 2, new Float32Array([0.1, 0.5]))));
    const small = await runOrt(`${dir}/small.onnx`, {
      shape: [1, 2, 2, 2],
      data: new Float32Array([-1, 2, -3, 4, -5, -6, 7, -8]),
    });
    const want = [-0.1, 2, -0.3, 4, -2.5, -3, 7, -4];
    assert.ok(maxAbsDiff(small.data, new Float32Array(want)) < 1e-7, `got ${[...small.data]}`);

    const c = 64, h = 112;
    const slopes = Float32Array.from({ length: c }, (_, i) => (i + 1) / 100);
    await Deno.writeFile(`${dir}/big.onnx`, encodeModel(preluGraph(c, h, slopes)));
    const x = Float32Array.from({ length: 2 * c * h * h }, (_, i) => Math.sin(i * 0.37) * 3);
    const y = await runOrt(`${dir}/big.onnx`, { shape: [2, c, h, h], data: x });
    const ref = x.map((v, i) => (v < 0 ? v * slopes[Math.floor(i / (h * h)) % c] : v));
    assert.ok(maxAbsDiff(y.data, ref) < 1e-6);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
