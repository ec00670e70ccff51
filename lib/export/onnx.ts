/**
 * ONNX export: a backbone's graph (see graph.ts) written as an ONNX ModelProto with our own
 * protobuf encoder, and read back into a plain structure for the model checks.
 *
 * The model has one input "data" (float32 [N,3,112,112], N symbolic) and one output
 * "embedding" (float32 [N,num_features]); opset 13, IR version 7.
 *
 * @module
 */
import { asFloat, asInt, asInts, asString, decodeFields, type ProtoField, ProtoWriter } from "./protobuf.ts";
import { buildGraph, type Graph, type StateDict } from "./graph.ts";

export const OPSET = 13;
export const IR_VERSION = 7;
const FLOAT = 1;

// Field numbers from onnx.proto.
const Model = {
  ir_version: 1,
  producer_name: 2,
  producer_version: 3,
  graph: 7,
  opset_import: 8,
  metadata: 14,
};
const Graph_ = { node: 1, name: 2, initializer: 5, input: 11, output: 12 };
const Node = { input: 1, output: 2, name: 3, op_type: 4, attribute: 5 };
const Attribute = { name: 1, f: 2, i: 3, ints: 8, type: 20 };
const AttrType = { FLOAT: 1, INT: 2, INTS: 7 };
const Tensor_ = { dims: 1, data_type: 2, name: 8, raw_data: 9 };

function tensorProto(name: string, shape: number[], data: Float32Array): ProtoWriter {
  const raw = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  // raw_data is little-endian, which is the byte order of typed arrays on every platform Deno runs on.
  return new ProtoWriter().packedInts(Tensor_.dims, shape).int(Tensor_.data_type, FLOAT)
    .string(Tensor_.name, name).bytes(Tensor_.raw_data, raw);
}

function valueInfo(name: string, dims: (number | string)[]): ProtoWriter {
  const shape = new ProtoWriter();
  for (const d of dims) {
    const dim = new ProtoWriter();
    if (typeof d === "string") dim.string(2, d);
    else dim.int(1, d);
    shape.message(1, dim);
  }
  const tensorType = new ProtoWriter().int(1, FLOAT).message(2, shape);
  const type = new ProtoWriter().message(1, tensorType);
  return new ProtoWriter().string(1, name).message(2, type);
}

/** Encodes a graph as ONNX ModelProto bytes. */
export function encodeModel(g: Graph, producerVersion = "0.1.0"): Uint8Array {
  const graph = new ProtoWriter();
  for (const n of g.nodes) {
    const node = new ProtoWriter();
    for (const i of n.inputs) node.string(Node.input, i);
    for (const o of n.outputs) node.string(Node.output, o);
    node.string(Node.name, n.name).string(Node.op_type, n.op);
    for (const [key, a] of Object.entries(n.attrs)) {
      const attr = new ProtoWriter().string(Attribute.name, key);
      if ("int" in a) attr.int(Attribute.i, a.int).int(Attribute.type, AttrType.INT);
      else if ("float" in a) attr.float(Attribute.f, a.float).int(Attribute.type, AttrType.FLOAT);
      else attr.packedInts(Attribute.ints, a.ints).int(Attribute.type, AttrType.INTS);
      node.message(Node.attribute, attr);
    }
    graph.message(Graph_.node, node);
  }
  graph.string(Graph_.name, g.network);
  for (const [name, t] of g.initializers) {
    graph.message(Graph_.initializer, tensorProto(name, t.shape, t.data));
  }
  graph.message(Graph_.input, valueInfo(g.input, g.inputDims ?? ["N", 3, 112, 112]));
  graph.message(Graph_.output, valueInfo(g.output, g.outputDims ?? ["N", g.numFeatures]));

  const model = new ProtoWriter().int(Model.ir_version, IR_VERSION).string(Model.producer_name, "arcface")
    .string(Model.producer_version, producerVersion).message(Model.graph, graph)
    .message(Model.opset_import, new ProtoWriter().string(1, "").int(2, OPSET));
  for (const [k, v] of [["network", g.network], ["embedding_size", String(g.numFeatures)]]) {
    model.message(Model.metadata, new ProtoWriter().string(1, k).string(2, v));
  }
  return model.finish();
}

/** Exports a backbone to ONNX bytes from its architecture and state dict. */
export function exportOnnx(network: string, numFeatures: number, weights: StateDict): Uint8Array {
  return encodeModel(buildGraph(network, numFeatures, weights));
}

// ---------------------------------------------------------------------------------------
// Reading back (for the checks): only the fields the checks look at.

/** A tensor type as declared in a graph input/output. Dims are numbers or symbolic names. */
export interface OnnxValueInfo {
  name: string;
  elemType: number;
  dims: (number | string)[];
}

export interface OnnxTensor {
  name: string;
  dataType: number;
  dims: number[];
  byteLength: number;
}

export interface OnnxNode {
  op: string;
  name: string;
  inputs: string[];
  outputs: string[];
  ints: Record<string, number[]>;
  int: Record<string, number>;
  float: Record<string, number>;
}

export interface OnnxModel {
  irVersion: number;
  opsets: { domain: string; version: number }[];
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
  initializers: OnnxTensor[];
  nodes: OnnxNode[];
  metadata: Record<string, string>;
}

const bytesOf = (f: ProtoField): Uint8Array => {
  if (typeof f.value === "bigint") {
    throw new Error(`Cannot read ONNX model: field ${f.field} is not a message`);
  }
  return f.value;
};

function readValueInfo(buf: Uint8Array): OnnxValueInfo {
  const info: OnnxValueInfo = { name: "", elemType: 0, dims: [] };
  for (const f of decodeFields(buf)) {
    if (f.field === 1) info.name = asString(f.value);
    if (f.field !== 2) continue;
    for (const t of decodeFields(bytesOf(f))) {
      if (t.field !== 1) continue; // tensor_type
      for (const tt of decodeFields(bytesOf(t))) {
        if (tt.field === 1) info.elemType = asInt(tt.value);
        if (tt.field !== 2) continue;
        for (const d of decodeFields(bytesOf(tt))) {
          if (d.field !== 1) continue;
          let dim: number | string = "?";
          for (const dv of decodeFields(bytesOf(d))) {
            if (dv.field === 1) dim = asInt(dv.value);
            if (dv.field === 2) dim = asString(dv.value);
          }
          info.dims.push(dim);
        }
      }
    }
  }
  return info;
}

function readTensor(buf: Uint8Array): OnnxTensor {
  const fields = decodeFields(buf);
  const t: OnnxTensor = { name: "", dataType: 0, dims: asInts(fields, Tensor_.dims), byteLength: 0 };
  let count = 0;
  for (const f of fields) {
    if (f.field === Tensor_.data_type) t.dataType = asInt(f.value);
    else if (f.field === Tensor_.name) t.name = asString(f.value);
    else if (f.field === Tensor_.raw_data) t.byteLength += bytesOf(f).length;
    else if (f.field === 4 && typeof f.value !== "bigint") count += f.value.length / 4; // packed float_data
    else if (f.field === 4) count += 1;
  }
  t.byteLength += count * 4;
  return t;
}

function readNode(buf: Uint8Array): OnnxNode {
  const n: OnnxNode = { op: "", name: "", inputs: [], outputs: [], ints: {}, int: {}, float: {} };
  for (const f of decodeFields(buf)) {
    if (f.field === Node.input) n.inputs.push(asString(f.value));
    else if (f.field === Node.output) n.outputs.push(asString(f.value));
    else if (f.field === Node.name) n.name = asString(f.value);
    else if (f.field === Node.op_type) n.op = asString(f.value);
    else if (f.field === Node.attribute) {
      const af = decodeFields(bytesOf(f));
      const name = asString(af.find((a) => a.field === Attribute.name)?.value ?? new Uint8Array());
      const type = asInt(af.find((a) => a.field === Attribute.type)?.value ?? 0n);
      const i = af.find((a) => a.field === Attribute.i);
      const fl = af.find((a) => a.field === Attribute.f);
      if (type === AttrType.INTS || af.some((a) => a.field === Attribute.ints)) {
        n.ints[name] = asInts(af, Attribute.ints);
      } else if (i) n.int[name] = asInt(i.value);
      else if (fl) n.float[name] = asFloat(fl.value);
    }
  }
  return n;
}

/** Parses ONNX ModelProto bytes into the parts the checks use; throws on malformed input. */
export function decodeModel(bytes: Uint8Array): OnnxModel {
  const m: OnnxModel = {
    irVersion: 0,
    opsets: [],
    inputs: [],
    outputs: [],
    initializers: [],
    nodes: [],
    metadata: {},
  };
  let graphs = 0;
  for (const f of decodeFields(bytes)) {
    if (f.field === Model.ir_version) m.irVersion = asInt(f.value);
    else if (f.field === Model.opset_import) {
      const of = decodeFields(bytesOf(f));
      const domain = of.find((x) => x.field === 1);
      const version = of.find((x) => x.field === 2);
      m.opsets.push({
        domain: domain ? asString(domain.value) : "",
        version: version ? asInt(version.value) : 0,
      });
    } else if (f.field === Model.metadata) {
      const kv = decodeFields(bytesOf(f));
      const k = kv.find((x) => x.field === 1);
      const v = kv.find((x) => x.field === 2);
      if (k) m.metadata[asString(k.value)] = v ? asString(v.value) : "";
    } else if (f.field === Model.graph) {
      graphs++;
      for (const g of decodeFields(bytesOf(f))) {
        if (g.field === Graph_.node) m.nodes.push(readNode(bytesOf(g)));
        else if (g.field === Graph_.initializer) m.initializers.push(readTensor(bytesOf(g)));
        else if (g.field === Graph_.input) m.inputs.push(readValueInfo(bytesOf(g)));
        else if (g.field === Graph_.output) m.outputs.push(readValueInfo(bytesOf(g)));
      }
    }
  }
  if (graphs !== 1) throw new Error(`Cannot read ONNX model: expected one graph, found ${graphs}`);
  return m;
}
