/**
 * A backbone (iresnet r18…r200, MobileFaceNet "mbf") over libarcface: forward and backward
 * passes, tensors by arcface_torch state-dict name, and the optimizer step on its own
 * parameters.
 *
 * ```ts
 * using model = Model.create({ network: "mbf", maxBatch: 8 });
 * const emb = await model.forward(new Float32Array(2 * 3 * 112 * 112), 2, { train: true });
 * await model.backward(new Float32Array(emb.length), 2);
 * console.log(model.grad("features.layers.2.weight").length);
 * ```
 *
 * @module
 */
import { AfcError, check, checkOn, cStr, lib, PtrOut, readJson, toI64, toSafeNumber } from "../ffi/mod.ts";
import type { Comm } from "./comm.ts";
import type { Optimizer } from "./head.ts";
import type { StateDict } from "./export/graph.ts";
import { loadWeights } from "./export/load.ts";
import { writeStateDict } from "./export/state_dict.ts";

/** Floats of one 3×112×112 input image. */
export const IMAGE_FLOATS = 3 * 112 * 112;

/** Options of `Model.create`. */
export interface ModelOptions {
  /** Backbone name: "r18", "r34", "r50", "r100", "r200", "r2060" or "mbf". */
  network: string;
  /** Embedding size (512 in arcface_torch). */
  numFeatures?: number;
  /** Dropout probability of the head in training mode (iresnet only). */
  dropout?: number;
  /** Largest batch a forward pass takes. */
  maxBatch: number;
  /** Threads of the model's context (0: all cores). */
  threads?: number;
  /**
   * Eval with Winograd 3×3 convolutions where the CPU has them (AVX-512): r50 inference
   * about 1.7× faster at batch 32, for about 0.9 GiB more memory (default false).
   */
  winograd?: boolean;
}

/** One tensor of the model, as `afc_model_describe` lists it. */
export interface TensorInfo {
  name: string;
  shape: number[];
  kind: "parameter" | "buffer";
  trainable: boolean;
}

/** The model's own description. */
export interface ModelInfo {
  name: string;
  num_features: number;
  max_batch: number;
  parameters: number;
  trainable_parameters: number;
  tensors: TensorInfo[];
  /** Bytes of each arena; eval_weights is resident only while eval runs (Winograd layouts). */
  memory: {
    parameters: number;
    gradients: number;
    activations: number;
    workspace: number;
    eval_weights: number;
  };
}

type Ptr = Deno.PointerValue;
const registry = new FinalizationRegistry<() => void>((free) => free());

/** A backbone with its parameters, gradients, activations and optimizer state. *
 * @example
 * ```ts
 * import { Model } from "./model.ts";
 * using model = Model.create({ network: "mbf", maxBatch: 4 });
 * console.log(model.info.parameters, model.parameters().length);
 * ```
 */
export class Model {
  #ptr: Ptr;
  #ctx: Ptr;
  readonly network: string;
  readonly numFeatures: number;
  readonly maxBatch: number;
  /** Description: tensors, parameter count, arena sizes. */
  readonly info: ModelInfo;
  readonly #tensors: Map<string, TensorInfo>;

  private constructor(ctx: Ptr, ptr: Ptr, network: string) {
    this.#ctx = ctx;
    this.#ptr = ptr;
    this.info = readJson(
      (buf, cap, needed) => lib().afc_model_describe(ptr, buf, cap, needed),
      "Cannot describe model",
    ) as ModelInfo;
    this.network = network;
    this.numFeatures = this.info.num_features;
    this.maxBatch = this.info.max_batch;
    this.#tensors = new Map(this.info.tensors.map((t) => [t.name, t]));
    registry.register(this, () => {
      lib().afc_model_destroy(ptr);
      lib().afc_context_destroy(ctx);
    }, this);
  }

  /** Builds backbone `network` with arcface_torch's initialisation. */
  static create(o: ModelOptions): Model {
    if (typeof o.network !== "string" || o.network === "") {
      throw new TypeError(
        `Invalid network ${JSON.stringify(o.network)}: expected a backbone name such as "r50"`,
      );
    }
    const numFeatures = o.numFeatures ?? 512;
    for (const [k, v] of [["numFeatures", numFeatures], ["maxBatch", o.maxBatch]] as const) {
      if (!Number.isSafeInteger(v) || v < 1 || v > 2 ** 31 - 1) {
        throw new RangeError(`Invalid ${k} "${v}": expected a positive integer`);
      }
    }
    const threads = o.threads ?? 0;
    if (!Number.isInteger(threads) || threads < 0 || threads > 4096) {
      throw new RangeError(`Invalid threads "${threads}": expected 0 (all cores) or a positive integer`);
    }
    const dropout = o.dropout ?? 0;
    if (!(dropout >= 0 && dropout < 1)) {
      throw new RangeError(`Invalid dropout "${dropout}": expected 0 <= dropout < 1`);
    }
    const ctx = new PtrOut();
    check(lib().afc_context_create(0, threads, ctx.buf), "Cannot create model context");
    const out = new PtrOut();
    try {
      check(
        lib().afc_model_create(
          ctx.value,
          cStr(o.network),
          numFeatures,
          dropout,
          o.maxBatch,
          o.winograd ? 1 : 0,
          out.buf,
        ),
        `Cannot create model "${o.network}"`,
      );
    } catch (e) {
      lib().afc_context_destroy(ctx.value);
      throw e;
    }
    return new Model(ctx.value, out.value, o.network);
  }

  /**
   * Opens a `model.safetensors` (arcface_torch names; architecture from its metadata
   * "network" / "embedding_size", or inferred from the tensors, or given in `options`).
   */
  static async load(
    path: string,
    options: Omit<ModelOptions, "network"> & { network?: string } = { maxBatch: 64 },
  ): Promise<Model> {
    const w = await loadWeights(path, { network: options.network, numFeatures: options.numFeatures });
    const model = Model.create({ ...options, network: w.network, numFeatures: w.numFeatures });
    try {
      model.loadStateDict(w.weights, `"${path}"`);
    } catch (e) {
      model.close();
      throw e;
    }
    return model;
  }

  /** Writes every tensor to `path` as float32 safetensors with the architecture (atomic). */
  async save(path: string): Promise<void> {
    await writeStateDict(path, this.stateDict(), this.network, this.numFeatures);
  }

  #handle(action: string): Ptr {
    if (this.#ptr === null) throw new AfcError(`Cannot ${action}: model is closed`);
    return this.#ptr;
  }

  /** Throws for a failed nonblocking call, with the detail the model kept. */
  #check(status: number, action: string): void {
    const ptr = this.#ptr;
    checkOn(status, action, (buf, cap, needed) => lib().afc_model_error(ptr, buf, cap, needed));
  }

  /** @internal The native handle (for the data-parallel all-reduce). */
  get handle(): Ptr {
    return this.#handle("use model");
  }

  /** Every tensor (parameters and buffers) in state-dict order. */
  tensors(): TensorInfo[] {
    return this.info.tensors;
  }

  /** Names of the trainable parameters. */
  parameters(): string[] {
    return this.info.tensors.filter((t) => t.trainable).map((t) => t.name);
  }

  #tensor(name: string, action: string): TensorInfo {
    const t = this.#tensors.get(name);
    if (!t) {
      throw new AfcError(
        `Cannot ${action}: tensor "${name}" does not exist in backbone "${this.network}" (tensors() lists the names)`,
      );
    }
    return t;
  }

  #count(name: string, action: string): number {
    return this.#tensor(name, action).shape.reduce((a, b) => a * b, 1);
  }

  /** A copy of tensor `name` (PyTorch element order). */
  read(name: string): Float32Array<ArrayBuffer> {
    const ptr = this.#handle("read tensor");
    const out = new Float32Array(this.#count(name, "read tensor"));
    check(
      lib().afc_model_tensor_read(ptr, cStr(name), out, BigInt(out.length)),
      `Cannot read tensor "${name}"`,
    );
    return out;
  }

  /** Overwrites tensor `name` with `values` (its exact element count). */
  write(name: string, values: Float32Array): void {
    const ptr = this.#handle("write tensor");
    const n = this.#count(name, "write tensor");
    if (values.length !== n) {
      throw new RangeError(`Cannot write tensor "${name}": got ${values.length} values, expected ${n}`);
    }
    check(lib().afc_model_tensor_write(ptr, cStr(name), values, BigInt(n)), `Cannot write tensor "${name}"`);
  }

  /** The gradient of parameter `name` from the last backward pass. */
  grad(name: string): Float32Array<ArrayBuffer> {
    const ptr = this.#handle("read gradient");
    const out = new Float32Array(this.#count(name, "read gradient"));
    check(
      lib().afc_model_grad_read(ptr, cStr(name), out, BigInt(out.length)),
      `Cannot read gradient of "${name}"`,
    );
    return out;
  }

  /** Every tensor, by name. */
  stateDict(): StateDict {
    return new Map(this.info.tensors.map((t) => [t.name, { shape: t.shape, data: this.read(t.name) }]));
  }

  /**
   * Loads every tensor of the model from `weights`. Missing, unexpected or wrongly shaped
   * tensors fail together, naming them; `num_batches_tracked` entries are ignored.
   */
  loadStateDict(weights: StateDict, source = "state dict"): void {
    const missing = this.info.tensors.filter((t) => !weights.has(t.name)).map((t) => t.name);
    const unexpected = [...weights.keys()].filter((k) =>
      !this.#tensors.has(k) && !k.endsWith("num_batches_tracked")
    );
    const wrong = this.info.tensors.filter((t) => {
      const w = weights.get(t.name);
      return w && w.shape.join(",") !== t.shape.join(",");
    }).map((t) => `"${t.name}" [${weights.get(t.name)!.shape}] (expected [${t.shape}])`);
    if (missing.length || unexpected.length || wrong.length) {
      const parts = [];
      const list = (a: string[]) =>
        a.slice(0, 8).map((k) => `"${k}"`).join(", ") + (a.length > 8 ? ", …" : "");
      if (missing.length) parts.push(`${missing.length} missing (${list(missing)})`);
      if (unexpected.length) parts.push(`${unexpected.length} unexpected (${list(unexpected)})`);
      if (wrong.length) parts.push(`wrong shapes: ${wrong.slice(0, 8).join(", ")}`);
      throw new AfcError(
        `Cannot load ${source} into "${this.network}": ${
          parts.join("; ")
        } (is it a ${this.network} backbone with ${this.numFeatures} features?)`,
      );
    }
    for (const t of this.info.tensors) {
      const w = weights.get(t.name)!;
      this.write(t.name, w.data instanceof Float32Array ? w.data : Float32Array.from(w.data));
    }
  }

  #batch(input: Float32Array, n: number, action: string): void {
    if (!Number.isSafeInteger(n) || n < 0 || n > this.maxBatch) {
      throw new RangeError(`Cannot ${action}: batch ${n} is outside [0, max_batch ${this.maxBatch}]`);
    }
    if (input.length !== n * IMAGE_FLOATS) {
      throw new RangeError(
        `Cannot ${action}: input has ${input.length} values, expected ${n}×3×112×112 = ${n * IMAGE_FLOATS}`,
      );
    }
  }

  /**
   * Embeddings (n×numFeatures) of `n` NCHW float images. `train` uses batch statistics,
   * updates the running ones, applies dropout and keeps what backward needs.
   */
  async forward(
    input: Float32Array<ArrayBuffer>,
    n: number,
    options: { train?: boolean; out?: Float32Array<ArrayBuffer> } = {},
  ): Promise<Float32Array<ArrayBuffer>> {
    const ptr = this.#handle("run forward");
    this.#batch(input, n, "run forward");
    const out = options.out ?? new Float32Array(n * this.numFeatures);
    if (out.length < n * this.numFeatures) {
      throw new RangeError(
        `Cannot run forward: output holds ${out.length} values, expected ${n * this.numFeatures}`,
      );
    }
    this.#check(
      await lib().afc_model_forward(ptr, input, BigInt(n), options.train ? 1 : 0, out),
      "Cannot run forward",
    );
    return out;
  }

  /**
   * Backward pass of the last training forward: parameter gradients from `dEmbeddings`
   * (overwritten, or added when `accumulate`); returns the input gradient when asked.
   *
   * With `allReduce`, the parameter gradients then hold their average over its ranks, the
   * same values as `comm.allReduceModelGrads(model, bucketElems)` after the pass; the sums
   * run on a second thread while the pass goes on, each bucket of `bucketElems` values
   * (default 4 Mi) once its layers are done. Start no other collective on the
   * communicator before this resolves.
   */
  async backward(
    dEmbeddings: Float32Array<ArrayBuffer>,
    n: number,
    options: { accumulate?: boolean; inputGrad?: boolean; allReduce?: Comm; bucketElems?: number } = {},
  ): Promise<Float32Array<ArrayBuffer> | undefined> {
    const ptr = this.#handle("run backward");
    if (dEmbeddings.length !== n * this.numFeatures) {
      throw new RangeError(
        `Cannot run backward: d_embeddings has ${dEmbeddings.length} values, expected ${n}×${this.numFeatures}`,
      );
    }
    const dInput = options.inputGrad ? new Float32Array(n * IMAGE_FLOATS) : null;
    const accumulate = options.accumulate ? 1 : 0;
    const comm = options.allReduce;
    const bucket = toI64(options.bucketElems ?? 0, "bucket size");
    this.#check(
      await (comm
        ? lib().afc_model_backward_all_reduce(
          ptr,
          dEmbeddings,
          BigInt(n),
          dInput,
          accumulate,
          comm.handle,
          bucket,
          1 / comm.size,
        )
        : lib().afc_model_backward(ptr, dEmbeddings, BigInt(n), dInput, accumulate)),
      "Cannot run backward",
    );
    return dInput ?? undefined;
  }

  /** Sets every parameter gradient to zero. */
  zeroGrad(): void {
    check(lib().afc_model_zero_grad(this.#handle("zero gradients")), "Cannot zero gradients");
  }

  /** Sum of squares of every parameter gradient (for global-norm clipping). */
  gradSumSquares(): number {
    const out = new Float64Array(1);
    check(lib().afc_model_grad_sum_squares(this.#handle("sum gradients"), out), "Cannot sum gradients");
    return out[0];
  }

  /** Updates every trainable parameter with `opt`'s rule; the state stays in the model. */
  async step(opt: Optimizer, lr: number, gradScale = 1): Promise<void> {
    const ptr = this.#handle("step model");
    this.#check(await lib().afc_model_step(ptr, opt.handle, lr, gradScale), "Cannot step model");
  }

  /** Optimizer state `which` (0: momentum / exp_avg, 1: exp_avg_sq) of parameter `name`. */
  readState(name: string, which: 0 | 1): Float32Array<ArrayBuffer> {
    const ptr = this.#handle("read optimizer state");
    const out = new Float32Array(this.#count(name, "read optimizer state"));
    check(
      lib().afc_model_state_read(ptr, cStr(name), which, out, BigInt(out.length)),
      `Cannot read optimizer state of "${name}"`,
    );
    return out;
  }

  /** Restores optimizer state `which` of parameter `name`. */
  writeState(name: string, which: 0 | 1, values: Float32Array): void {
    const ptr = this.#handle("write optimizer state");
    const n = this.#count(name, "write optimizer state");
    if (values.length !== n) {
      throw new RangeError(
        `Cannot write optimizer state of "${name}": got ${values.length} values, expected ${n}`,
      );
    }
    check(
      lib().afc_model_state_write(ptr, cStr(name), which, values, BigInt(n)),
      `Cannot write optimizer state of "${name}"`,
    );
  }

  /** Optimizer steps taken (AdamW bias correction). */
  get optimSteps(): number {
    const out = new BigInt64Array(1);
    check(
      lib().afc_model_optim_steps_read(this.#handle("read optimizer steps"), out),
      "Cannot read optimizer steps",
    );
    return toSafeNumber(out[0], "optimizer steps");
  }

  set optimSteps(steps: number) {
    check(
      lib().afc_model_optim_steps_write(
        this.#handle("restore optimizer steps"),
        toI64(steps, "optimizer steps"),
      ),
      "Cannot restore optimizer steps",
    );
  }

  close(): void {
    if (this.#ptr === null) return;
    registry.unregister(this);
    lib().afc_model_destroy(this.#ptr);
    lib().afc_context_destroy(this.#ctx);
    this.#ptr = null;
    this.#ctx = null;
  }
  [Symbol.dispose](): void {
    this.close();
  }
}
