/**
 * The inference graphs of arcface_torch's backbones (iresnet r18…r200, MobileFaceNet "mbf"),
 * described from the architecture and a state dict keyed by arcface_torch tensor names.
 * Batch norms directly after a convolution or linear layer are folded into its weights
 * (exact in eval mode); the others stay as BatchNormalization. The same description, run
 * without weights, lists the tensors each architecture expects (for checkpoint import).
 *
 * @module
 */

/** A dense float32 tensor in PyTorch (row-major) order. */
export interface Tensor {
  shape: number[];
  data: Float32Array;
}

/** Tensors by arcface_torch state-dict name. */
export type StateDict = Map<string, Tensor>;

/** An ONNX node attribute value. */
export type Attr = { int: number } | { ints: number[] } | { float: number };

/** One operator of the graph. */
export interface GraphNode {
  op: string;
  name: string;
  inputs: string[];
  outputs: string[];
  attrs: Record<string, Attr>;
}

/** A whole backbone: nodes in topological order, float32 initialisers, one input, one output. */
export interface Graph {
  network: string;
  numFeatures: number;
  input: string;
  output: string;
  nodes: GraphNode[];
  initializers: Map<string, Tensor>;
  /** Declared input/output shapes (a string is a symbolic dimension); default [N,3,112,112], [N,F]. */
  inputDims?: (number | string)[];
  outputDims?: (number | string)[];
}

/** The backbones this module describes, with their iresnet stage depths. */
export const IRESNET_LAYERS: Record<string, number[]> = {
  r18: [2, 2, 2, 2],
  r34: [3, 4, 6, 3],
  r50: [3, 4, 14, 3],
  r100: [3, 13, 30, 3],
  r200: [6, 26, 60, 6],
};
export const NETWORKS: readonly string[] = [...Object.keys(IRESNET_LAYERS), "mbf"];

const BN_EPS = 1e-5;
const BN_KEYS = ["weight", "bias", "running_mean", "running_var"];

interface Value {
  name: string;
  channels: number;
  size: number; // spatial side (square); 0 once flattened
}

interface ConvOpts {
  k: number;
  stride: number;
  pad: number;
  group?: number;
}

/** Builds nodes while recording the state-dict tensors consumed (names and shapes). */
class Builder {
  readonly nodes: GraphNode[] = [];
  readonly initializers = new Map<string, Tensor>();
  readonly expected = new Map<string, number[]>();
  #count = 0;

  constructor(readonly weights: StateDict | null) {}

  #take(name: string, shape: number[]): Tensor {
    this.expected.set(name, shape);
    if (!this.weights) return { shape, data: new Float32Array(0) };
    const t = this.weights.get(name);
    if (!t) throw new Error(`Cannot build graph: tensor "${name}" is missing`);
    const n = shape.reduce((a, b) => a * b, 1);
    if (t.data.length !== n || t.shape.reduce((a, b) => a * b, 1) !== n) {
      throw new Error(
        `Cannot build graph: tensor "${name}" has shape [${t.shape}], expected [${shape}]`,
      );
    }
    return t;
  }

  #bnScaleShift(prefix: string, c: number): { scale: Float64Array; shift: Float64Array } {
    const [w, b, m, v] = BN_KEYS.map((k) => this.#take(`${prefix}.${k}`, [c]).data);
    const scale = new Float64Array(c);
    const shift = new Float64Array(c);
    if (this.weights) {
      for (let i = 0; i < c; i++) {
        scale[i] = w[i] / Math.sqrt(v[i] + BN_EPS);
        shift[i] = b[i] - m[i] * scale[i];
      }
    }
    return { scale, shift };
  }

  #init(name: string, shape: number[], data: Float32Array): string {
    this.initializers.set(name, { shape, data });
    return name;
  }

  #node(op: string, inputs: string[], attrs: Record<string, Attr> = {}): string {
    const name = `${op.toLowerCase()}_${this.#count++}`;
    this.nodes.push({ op, name, inputs, outputs: [name], attrs });
    return name;
  }

  /** Conv2d without bias (`conv`.weight) followed by BatchNorm2d `bn`, folded into one Conv. */
  convBn(x: Value, conv: string, bn: string, cout: number, o: ConvOpts): Value {
    const group = o.group ?? 1;
    const cin = x.channels / group;
    const w = this.#take(`${conv}.weight`, [cout, cin, o.k, o.k]);
    const { scale, shift } = this.#bnScaleShift(bn, cout);
    const per = cin * o.k * o.k;
    const fw = new Float32Array(cout * per);
    if (this.weights) {
      for (let oc = 0; oc < cout; oc++) {
        for (let j = 0; j < per; j++) fw[oc * per + j] = w.data[oc * per + j] * scale[oc];
      }
    }
    const wName = this.#init(`${conv}.weight`, [cout, cin, o.k, o.k], fw);
    const bName = this.#init(`${conv}.bias`, [cout], Float32Array.from(shift));
    const out = this.#node("Conv", [x.name, wName, bName], {
      kernel_shape: { ints: [o.k, o.k] },
      strides: { ints: [o.stride, o.stride] },
      pads: { ints: [o.pad, o.pad, o.pad, o.pad] },
      dilations: { ints: [1, 1] },
      group: { int: group },
    });
    const size = Math.floor((x.size + 2 * o.pad - o.k) / o.stride) + 1;
    return { name: out, channels: cout, size };
  }

  /** A BatchNorm2d that does not follow a convolution. */
  bn(x: Value, prefix: string): Value {
    const c = x.channels;
    const names = BN_KEYS.map((k) => {
      const t = this.#take(`${prefix}.${k}`, [c]);
      return this.#init(`${prefix}.${k}`, [c], t.data);
    });
    const out = this.#node("BatchNormalization", [x.name, ...names], { epsilon: { float: BN_EPS } });
    return { ...x, name: out };
  }

  /** PReLU with one slope per channel, stored as [C,1,1] so it broadcasts over H and W. */
  prelu(x: Value, prefix: string): Value {
    const t = this.#take(`${prefix}.weight`, [x.channels]);
    const slope = this.#init(`${prefix}.weight`, [x.channels, 1, 1], t.data);
    return { ...x, name: this.#node("PRelu", [x.name, slope]) };
  }

  add(a: Value, b: Value): Value {
    return { ...a, name: this.#node("Add", [a.name, b.name]) };
  }

  flatten(x: Value): Value {
    const out = this.#node("Flatten", [x.name], { axis: { int: 1 } });
    return { name: out, channels: x.channels * x.size * x.size, size: 0 };
  }

  /** Linear `fc` (with or without bias) followed by BatchNorm1d `bn`, folded into one Gemm. */
  linearBn(x: Value, fc: string, bias: boolean, bn: string, nout: number): Value {
    const k = x.channels;
    const w = this.#take(`${fc}.weight`, [nout, k]);
    const b = bias ? this.#take(`${fc}.bias`, [nout]).data : null;
    const { scale, shift } = this.#bnScaleShift(bn, nout);
    const fw = new Float32Array(nout * k);
    const fb = new Float32Array(nout);
    if (this.weights) {
      for (let o = 0; o < nout; o++) {
        for (let j = 0; j < k; j++) fw[o * k + j] = w.data[o * k + j] * scale[o];
        fb[o] = (b ? b[o] * scale[o] : 0) + shift[o];
      }
    }
    const wName = this.#init(`${fc}.weight`, [nout, k], fw);
    const bName = this.#init(`${fc}.bias`, [nout], fb);
    const out = this.#node("Gemm", [x.name, wName, bName], {
      alpha: { float: 1 },
      beta: { float: 1 },
      transB: { int: 1 },
    });
    return { name: out, channels: nout, size: 0 };
  }
}

function iresnet(b: Builder, layers: number[], numFeatures: number, x: Value): Value {
  x = b.convBn(x, "conv1", "bn1", 64, { k: 3, stride: 1, pad: 1 });
  x = b.prelu(x, "prelu");
  const planes = [64, 128, 256, 512];
  for (let s = 0; s < 4; s++) {
    for (let i = 0; i < layers[s]; i++) {
      const p = `layer${s + 1}.${i}`;
      const stride = i === 0 ? 2 : 1;
      let y = b.bn(x, `${p}.bn1`);
      y = b.convBn(y, `${p}.conv1`, `${p}.bn2`, planes[s], { k: 3, stride: 1, pad: 1 });
      y = b.prelu(y, `${p}.prelu`);
      y = b.convBn(y, `${p}.conv2`, `${p}.bn3`, planes[s], { k: 3, stride, pad: 1 });
      // The first block of every stage has stride 2, so it always has a downsample branch.
      const identity = i === 0
        ? b.convBn(x, `${p}.downsample.0`, `${p}.downsample.1`, planes[s], { k: 1, stride, pad: 0 })
        : x;
      x = b.add(y, identity);
    }
  }
  x = b.bn(x, "bn2");
  x = b.flatten(x);
  return b.linearBn(x, "fc", true, "features", numFeatures);
}

function mbf(b: Builder, numFeatures: number, x: Value): Value {
  const scale = 2;
  const blocks = [1, 4, 6, 2];
  const convBlock = (v: Value, p: string, cout: number, o: ConvOpts) =>
    b.prelu(b.convBn(v, `${p}.layers.0`, `${p}.layers.1`, cout, o), `${p}.layers.2`);
  const linearBlock = (v: Value, p: string, cout: number, o: ConvOpts) =>
    b.convBn(v, `${p}.layers.0`, `${p}.layers.1`, cout, o);
  const depthWise = (
    v: Value,
    p: string,
    cout: number,
    stride: number,
    groups: number,
    residual: boolean,
  ) => {
    let y = convBlock(v, `${p}.layers.0`, groups, { k: 1, stride: 1, pad: 0 });
    y = convBlock(y, `${p}.layers.1`, groups, { k: 3, stride, pad: 1, group: groups });
    y = linearBlock(y, `${p}.layers.2`, cout, { k: 1, stride: 1, pad: 0 });
    return residual ? b.add(v, y) : y;
  };
  const residual = (v: Value, p: string, n: number, groups: number) => {
    for (let i = 0; i < n; i++) v = depthWise(v, `${p}.layers.${i}`, v.channels, 1, groups, true);
    return v;
  };
  const c64 = 64 * scale;
  const c128 = 128 * scale;
  x = convBlock(x, "layers.0", c64, { k: 3, stride: 2, pad: 1 });
  x = blocks[0] === 1
    ? convBlock(x, "layers.1", c64, { k: 3, stride: 1, pad: 1, group: 64 })
    : residual(x, "layers.1", blocks[0], 128);
  x = depthWise(x, "layers.2", c64, 2, 128, false);
  x = residual(x, "layers.3", blocks[1], 128);
  x = depthWise(x, "layers.4", c128, 2, 256, false);
  x = residual(x, "layers.5", blocks[2], 256);
  x = depthWise(x, "layers.6", c128, 2, 512, false);
  x = residual(x, "layers.7", blocks[3], 256);
  x = convBlock(x, "conv_sep", 512, { k: 1, stride: 1, pad: 0 });
  x = linearBlock(x, "features.layers.0", 512, { k: 7, stride: 1, pad: 0, group: 512 });
  x = b.flatten(x);
  return b.linearBn(x, "features.layers.2", false, "features.layers.3", numFeatures);
}

function run(network: string, numFeatures: number, weights: StateDict | null): Builder {
  if (!NETWORKS.includes(network)) {
    throw new RangeError(`Unknown network "${network}": expected one of ${NETWORKS.join(", ")}`);
  }
  if (!Number.isInteger(numFeatures) || numFeatures < 1) {
    throw new RangeError(`Invalid num_features ${numFeatures}: expected a positive integer`);
  }
  const b = new Builder(weights);
  const input: Value = { name: "data", channels: 3, size: 112 };
  const out = network === "mbf"
    ? mbf(b, numFeatures, input)
    : iresnet(b, IRESNET_LAYERS[network], numFeatures, input);
  b.nodes[b.nodes.length - 1].outputs = ["embedding"];
  void out;
  return b;
}

/** The state-dict tensors (name → shape) that `network` needs, BN running statistics included. */
export function expectedTensors(network: string, numFeatures: number): Map<string, number[]> {
  return run(network, numFeatures, null).expected;
}

/** The inference graph of `network` with weights from `weights` (BNs folded where exact). */
export function buildGraph(network: string, numFeatures: number, weights: StateDict): Graph {
  const b = run(network, numFeatures, weights);
  return {
    network,
    numFeatures,
    input: "data",
    output: "embedding",
    nodes: b.nodes,
    initializers: b.initializers,
  };
}

/**
 * Guesses the architecture and embedding size from tensor names and shapes, for files
 * without "network"/"embedding_size" metadata. Returns null when nothing fits.
 */
export function inferNetwork(
  names: Iterable<string>,
  shapeOf: (name: string) => number[] | undefined,
): { network: string; numFeatures: number } | null {
  const all = [...names];
  if (all.includes("conv_sep.layers.0.weight")) {
    const w = shapeOf("features.layers.2.weight");
    return w ? { network: "mbf", numFeatures: w[0] } : null;
  }
  const depths = [1, 2, 3, 4].map((s) => {
    const blocks = new Set(
      all.map((n) => new RegExp(`^layer${s}\\.(\\d+)\\.`).exec(n)?.[1]).filter((x) => x !== undefined),
    );
    return blocks.size;
  });
  const network = Object.entries(IRESNET_LAYERS).find(([, d]) => d.every((x, i) => x === depths[i]))?.[0];
  const fc = shapeOf("fc.weight");
  return network && fc ? { network, numFeatures: fc[0] } : null;
}
