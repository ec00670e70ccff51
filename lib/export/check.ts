/**
 * Model checks in the spirit of the ICCV21-MFR challenge checker: one float32 image input
 * [N,3,112,112] with a free batch dimension, one 2-D float32 output, float32 initialisers
 * only, a known opset; and the figures it reports: parameters, MACs (GFLOPs) and file size.
 *
 * @module
 */
import { decodeModel, type OnnxModel } from "./onnx.ts";

/** What the checks found. `violations` is empty for a model that passes. */
export interface CheckReport {
  violations: string[];
  inputs: string[];
  outputs: string[];
  parameters: number;
  macs: number | null; // per image; null when an operator's cost is unknown
  fileBytes: number;
  opset: number;
}

const FLOAT = 1;
const TYPE_NAMES: Record<number, string> = {
  1: "float32",
  2: "uint8",
  3: "int8",
  5: "int16",
  6: "int32",
  7: "int64",
  10: "float16",
  11: "float64",
  16: "bfloat16",
};
const typeName = (t: number) => TYPE_NAMES[t] ?? `type ${t}`;

/** Per-image MACs of Conv and Gemm/MatMul nodes, from shapes propagated at batch 1. */
function countMacs(m: OnnxModel, violations: string[]): number | null {
  const shapes = new Map<string, number[]>();
  for (const t of m.initializers) shapes.set(t.name, t.dims);
  for (const i of m.inputs) shapes.set(i.name, i.dims.map((d) => (typeof d === "number" ? d : 1)));
  let macs = 0;
  for (const n of m.nodes) {
    const x = shapes.get(n.inputs[0]);
    if (!x) {
      violations.push(`node "${n.name}" (${n.op}) reads "${n.inputs[0]}", which no earlier node produces`);
      return null;
    }
    let y: number[];
    switch (n.op) {
      case "Conv": {
        const w = shapes.get(n.inputs[1]);
        if (!w || w.length !== 4 || x.length !== 4) return null;
        const strides = n.ints.strides ?? [1, 1];
        const pads = n.ints.pads ?? [0, 0, 0, 0];
        const dil = n.ints.dilations ?? [1, 1];
        const out = [0, 1].map((a) =>
          Math.floor((x[2 + a] + pads[a] + pads[a + 2] - dil[a] * (w[2 + a] - 1) - 1) / strides[a]) + 1
        );
        y = [x[0], w[0], out[0], out[1]];
        macs += w[0] * out[0] * out[1] * w[1] * w[2] * w[3];
        break;
      }
      case "Gemm":
      case "MatMul": {
        const w = shapes.get(n.inputs[1]);
        if (!w || w.length !== 2) return null;
        const transB = n.int.transB ?? 0;
        const [k, nout] = transB ? [w[1], w[0]] : w;
        y = [x[0], nout];
        macs += k * nout;
        break;
      }
      case "Flatten": {
        const axis = n.int.axis ?? 1;
        y = [x.slice(0, axis).reduce((a, b) => a * b, 1), x.slice(axis).reduce((a, b) => a * b, 1)];
        break;
      }
      case "BatchNormalization":
      case "PRelu":
      case "Relu":
      case "Add":
      case "Mul":
      case "Sub":
      case "Dropout":
      case "Identity":
        y = x;
        break;
      default:
        return null;
    }
    for (const o of n.outputs) shapes.set(o, y);
  }
  return macs;
}

/** Checks ONNX model bytes. Malformed bytes give one violation rather than an exception. */
export function checkOnnx(bytes: Uint8Array): CheckReport {
  const report: CheckReport = {
    violations: [],
    inputs: [],
    outputs: [],
    parameters: 0,
    macs: null,
    fileBytes: bytes.length,
    opset: 0,
  };
  let m: OnnxModel;
  try {
    m = decodeModel(bytes);
  } catch (e) {
    report.violations.push(`the file is not a readable ONNX model (${(e as Error).message})`);
    return report;
  }
  const v = report.violations;
  const initNames = new Set(m.initializers.map((t) => t.name));
  // Older exporters list initialisers among the graph inputs; they are not real inputs.
  const inputs = m.inputs.filter((i) => !initNames.has(i.name));
  report.inputs = inputs.map((i) => `${i.name} ${typeName(i.elemType)} [${i.dims.join(",")}]`);
  report.outputs = m.outputs.map((o) => `${o.name} ${typeName(o.elemType)} [${o.dims.join(",")}]`);
  report.opset = m.opsets.find((o) => o.domain === "" || o.domain === "ai.onnx")?.version ?? 0;

  if (report.opset < 11) v.push(`opset ${report.opset}: expected 11 or newer`);
  if (inputs.length !== 1) v.push(`${inputs.length} inputs: expected exactly one`);
  else {
    const i = inputs[0];
    if (i.elemType !== FLOAT) v.push(`input "${i.name}" is ${typeName(i.elemType)}: expected float32`);
    const d = i.dims;
    if (d.length !== 4 || d[1] !== 3 || d[2] !== 112 || d[3] !== 112) {
      v.push(`input "${i.name}" has shape [${d.join(",")}]: expected [N,3,112,112]`);
    }
    if (d.length > 0 && typeof d[0] === "number" && d[0] !== 1) {
      v.push(`input "${i.name}" has a fixed batch of ${d[0]}: expected a symbolic batch dimension`);
    }
  }
  if (m.outputs.length !== 1) v.push(`${m.outputs.length} outputs: expected exactly one`);
  else {
    const o = m.outputs[0];
    if (o.elemType !== FLOAT) v.push(`output "${o.name}" is ${typeName(o.elemType)}: expected float32`);
    if (o.dims.length !== 2) {
      v.push(`output "${o.name}" has ${o.dims.length} dimensions: expected 2 ([N,features])`);
    }
  }
  for (const t of m.initializers) {
    if (t.dataType !== FLOAT) v.push(`initialiser "${t.name}" is ${typeName(t.dataType)}: expected float32`);
    report.parameters += t.dims.reduce((a, b) => a * b, 1);
  }
  for (const n of m.nodes) {
    if (n.op === "Reshape") v.push(`node "${n.name}" is a Reshape: use Flatten so any batch size works`);
  }
  report.macs = countMacs(m, v);
  return report;
}

/** Formats a report as text lines (figures, then one line per violation). */
export function formatReport(r: CheckReport): string {
  const lines = [
    `inputs: ${r.inputs.join("; ") || "none"}`,
    `outputs: ${r.outputs.join("; ") || "none"}`,
    `opset: ${r.opset}`,
    `parameters: ${r.parameters.toLocaleString("en-US")} (${(r.parameters / 1e6).toFixed(2)} M)`,
    r.macs === null
      ? "MACs: unknown (an operator outside Conv/Gemm/BatchNormalization/PRelu/Add/Flatten)"
      : `MACs: ${(r.macs / 1e9).toFixed(3)} G per image (${(2 * r.macs / 1e9).toFixed(3)} GFLOPs)`,
    `file size: ${(r.fileBytes / 2 ** 20).toFixed(2)} MiB (${r.fileBytes} bytes)`,
  ];
  if (r.violations.length === 0) lines.push("check: passed");
  else for (const x of r.violations) lines.push(`check failed: ${x}`);
  return lines.join("\n");
}
