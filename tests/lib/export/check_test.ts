import assert from "node:assert/strict";
import { checkOnnx, formatReport } from "../../../lib/export/check.ts";
import { ProtoWriter } from "../../../lib/export/protobuf.ts";
import { expectedTensors } from "../../../lib/export/graph.ts";
import { exportOnnx } from "../../../lib/export/onnx.ts";
import { main } from "../../../lib/cli/export.ts";

// A deliberately wrong ModelProto, written field by field (onnx.proto numbers).
function valueInfo(name: string, elem: number, dims: (number | string)[]): ProtoWriter {
  const shape = new ProtoWriter();
  for (const d of dims) {
    shape.message(1, typeof d === "string" ? new ProtoWriter().string(2, d) : new ProtoWriter().int(1, d));
  }
  return new ProtoWriter().string(1, name).message(
    2,
    new ProtoWriter().message(1, new ProtoWriter().int(1, elem).message(2, shape)),
  );
}

function wrongModel(): Uint8Array {
  const graph = new ProtoWriter()
    .message(
      1,
      new ProtoWriter().string(1, "data").string(1, "shape").string(2, "r").string(3, "reshape").string(
        4,
        "Reshape",
      ),
    )
    .message(
      5,
      new ProtoWriter().packedInts(1, [2]).int(2, 7).string(8, "shape").bytes(9, new Uint8Array(16)),
    )
    .message(11, valueInfo("data", 1, [1, 3, 112, 112]))
    .message(11, valueInfo("mask", 1, ["N", 1]))
    .message(12, valueInfo("r", 1, ["N", 3, 12544]))
    .message(12, valueInfo("norm", 10, ["N"]));
  return new ProtoWriter().int(1, 7).message(7, graph).message(8, new ProtoWriter().string(1, "").int(2, 9))
    .finish();
}

Deno.test("check: an exported backbone passes and reports its figures", () => {
  const weights = new Map(
    [...expectedTensors("mbf", 256)].map((
      [k, s],
    ) => [k, { shape: s, data: new Float32Array(s.reduce((a, b) => a * b, 1)) }]),
  );
  const bytes = exportOnnx("mbf", 256, weights);
  const r = checkOnnx(bytes);
  assert.deepEqual(r.violations, []);
  assert.deepEqual(r.inputs, ["data float32 [N,3,112,112]"]);
  assert.deepEqual(r.outputs, ["embedding float32 [N,256]"]);
  assert.equal(r.opset, 13);
  assert.equal(r.fileBytes, bytes.length);
  const text = formatReport(r);
  assert.match(text, /parameters: 1,916,288 \(1\.92 M\)/);
  assert.match(text, /check: passed/);
});

Deno.test("check: a wrong model fails once per violated rule", () => {
  const r = checkOnnx(wrongModel());
  assert.deepEqual(r.violations, [
    "opset 9: expected 11 or newer",
    "2 inputs: expected exactly one",
    "2 outputs: expected exactly one",
    'initialiser "shape" is int64: expected float32',
    'node "reshape" is a Reshape: use Flatten so any batch size works',
  ]);
  assert.equal(r.macs, null);
  assert.match(formatReport(r), /check failed: 2 inputs: expected exactly one/);
});

Deno.test("check: fixed batch, 3-D output, float16 input and garbage bytes", () => {
  const graph = new ProtoWriter()
    .message(1, new ProtoWriter().string(1, "data").string(2, "y").string(3, "id").string(4, "Identity"))
    .message(11, valueInfo("data", 10, [8, 3, 112, 112]))
    .message(12, valueInfo("y", 1, ["N", 3, 12544]));
  const bytes = new ProtoWriter().int(1, 7).message(7, graph).message(8, new ProtoWriter().int(2, 13))
    .finish();
  assert.deepEqual(checkOnnx(bytes).violations, [
    'input "data" is float16: expected float32',
    'input "data" has a fixed batch of 8: expected a symbolic batch dimension',
    'output "y" has 3 dimensions: expected 2 ([N,features])',
  ]);
  const bad = checkOnnx(new Uint8Array([0x0a, 0xff, 0x01, 0x02]));
  assert.equal(bad.violations.length, 1);
  assert.match(
    bad.violations[0],
    /not a readable ONNX model \(Cannot decode protobuf: field 1 needs 255 bytes, 1 left\)/,
  );
});

Deno.test("check: export --check exits 1 on a wrong model and 0 on a good one", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/bad.onnx`, wrongModel());
    assert.equal(await main(["--check", `${dir}/bad.onnx`]), 1);
    const weights = new Map(
      [...expectedTensors("mbf", 64)].map((
        [k, s],
      ) => [k, { shape: s, data: new Float32Array(s.reduce((a, b) => a * b, 1)) }]),
    );
    await Deno.writeFile(`${dir}/good.onnx`, exportOnnx("mbf", 64, weights));
    assert.equal(await main(["--check", `${dir}/good.onnx`]), 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
