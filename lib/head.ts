/**
 * The training head: combined margin logits, Partial FC (class centres, sampling, softmax
 * cross-entropy across ranks) and the SGD / AdamW optimizers, over libarcface's C API.
 *
 * ```ts
 * using pfc = new PartialFC({ numClasses: 30, embeddingSize: 512, sampleRate: 1, maxBatch: 2 });
 * using opt = new Optimizer({ kind: "sgd", momentum: 0.9, weightDecay: 5e-4 });
 * const embeddings = new Float32Array(2 * 512).fill(0.05); // from the backbone
 * const { loss, dEmbeddings } = await pfc.forwardBackward(embeddings, [3, 7]);
 * await pfc.step(opt, 0.1);
 * console.log(loss, dEmbeddings.length);
 * ```
 *
 * @module
 */
import { AfcError, check, checkOn, lib, PtrOut, toI64, toSafeNumber } from "../ffi/mod.ts";

/** The margin of `s·(cos(m1·θ + m2) − m3)` and its options. */
export interface MarginOptions {
  /** Scale s (64 in arcface_torch). */
  s?: number;
  /** margin_list (m1, m2, m3): ArcFace (1, 0.5, 0), CosFace (1, 0, 0.4). */
  marginList?: readonly [number, number, number];
  /** Non-target cosines above this are zeroed (0: off). */
  interclassFilteringThreshold?: number;
  /** Pass ∂logit/∂cos = s for the target (the detached variant) instead of the true gradient. */
  straightThrough?: boolean;
}

/** Names a margin in words, for the start-up log: "ArcFace m=0.5 s=64". *
 * @example
 * ```ts
 * import { marginName } from "./head.ts";
 * console.log(marginName({ marginList: [1, 0, 0.4] })); // "CosFace m=0.4 s=64"
 * ```
 */
export function marginName(o: MarginOptions = {}): string {
  const s = o.s ?? 64;
  const [m1, m2, m3] = o.marginList ?? [1, 0.5, 0];
  let name: string;
  if (m1 === 1 && m3 === 0) name = m2 === 0 ? "Softmax (no margin)" : `ArcFace m=${m2}`;
  else if (m1 === 1 && m2 === 0) name = `CosFace m=${m3}`;
  else name = `Combined margin m1=${m1} m2=${m2} m3=${m3}`;
  const extra = [];
  if (o.interclassFilteringThreshold) extra.push(`inter-class filtering ${o.interclassFilteringThreshold}`);
  if (o.straightThrough) extra.push("straight-through gradient");
  return `${name} s=${s}${extra.length ? ` (${extra.join(", ")})` : ""}`;
}

type Ptr = Deno.PointerValue;

const registry = new FinalizationRegistry<() => void>((free) => free());

function checkMargin(o: MarginOptions): [number, number, number, number, number, number] {
  const s = o.s ?? 64;
  const ml = o.marginList ?? [1, 0.5, 0];
  if (!Array.isArray(ml) || ml.length !== 3 || ml.some((v) => typeof v !== "number" || !Number.isFinite(v))) {
    throw new TypeError(
      `Invalid margin_list ${JSON.stringify(ml)}: expected three finite numbers (m1, m2, m3)`,
    );
  }
  if (!(s > 0) || !Number.isFinite(s)) {
    throw new RangeError(`Invalid scale s "${s}": expected a positive number`);
  }
  const t = o.interclassFilteringThreshold ?? 0;
  if (!(t >= 0 && t <= 1)) {
    throw new RangeError(
      `Invalid interclass_filtering_threshold "${t}": expected 0 (off) or a cosine in (0, 1]`,
    );
  }
  return [s, ml[0], ml[1], ml[2], t, o.straightThrough ? 1 : 0];
}

function closedError(action: string, what: string): AfcError {
  return new AfcError(`Cannot ${action}: ${what} is closed`);
}

/** The margin on its own: logits from cosines and the gradient back. *
 * @example
 * ```ts
 * import { Margin } from "./head.ts";
 * using arc = new Margin({ s: 64, marginList: [1, 0.5, 0] });
 * const logits = arc.forward(new Float32Array([0.5, 0.1]), new BigInt64Array([0n]), 1, 2);
 * console.log(logits); // [1.5102, 6.4]: s·cos(θ + m) for the target, s·cos θ for the other
 * ```
 */
export class Margin {
  #ptr: Ptr;
  readonly options: Readonly<MarginOptions>;
  constructor(options: MarginOptions = {}) {
    const args = checkMargin(options);
    const out = new PtrOut();
    check(lib().afc_margin_create(...args, out.buf), "Cannot create margin");
    this.#ptr = out.value;
    this.options = Object.freeze({ ...options });
    const ptr = this.#ptr;
    registry.register(this, () => lib().afc_margin_destroy(ptr), this);
  }

  /** @internal The native handle, for PartialFC. */
  get handle(): Ptr {
    if (this.#ptr === null) throw closedError("use margin", "margin");
    return this.#ptr;
  }

  /** Logits (rows×cols) from cosines; labels[i] is the target column or −1. */
  forward(cos: Float32Array, labels: BigInt64Array, rows: number, cols: number): Float32Array {
    const out = new Float32Array(rows * cols);
    this.#shape(cos, labels, rows, cols, "run margin forward");
    check(
      lib().afc_margin_forward(this.handle, cos, labels, BigInt(rows), BigInt(cols), out),
      "Cannot run margin forward",
    );
    return out;
  }

  /** ∂loss/∂cos from ∂loss/∂logits. */
  backward(
    cos: Float32Array,
    labels: BigInt64Array,
    rows: number,
    cols: number,
    dLogits: Float32Array,
  ): Float32Array {
    const out = new Float32Array(rows * cols);
    this.#shape(cos, labels, rows, cols, "run margin backward");
    if (dLogits.length !== rows * cols) {
      throw new RangeError(
        `Cannot run margin backward: d_logits has ${dLogits.length} values, expected ${rows * cols}`,
      );
    }
    check(
      lib().afc_margin_backward(this.handle, cos, labels, BigInt(rows), BigInt(cols), dLogits, out),
      "Cannot run margin backward",
    );
    return out;
  }

  #shape(cos: Float32Array, labels: BigInt64Array, rows: number, cols: number, action: string) {
    if (cos.length !== rows * cols || labels.length !== rows) {
      throw new RangeError(
        `Cannot ${action}: got ${cos.length} cosines and ${labels.length} labels, expected ${
          rows * cols
        } and ${rows}`,
      );
    }
  }

  close(): void {
    if (this.#ptr === null) return;
    registry.unregister(this);
    lib().afc_margin_destroy(this.#ptr);
    this.#ptr = null;
  }
  [Symbol.dispose](): void {
    this.close();
  }
}

/** Optimizer hyperparameters (the learning rate is given to each step). */
export interface OptimizerOptions {
  kind: "sgd" | "adamw";
  /** SGD momentum (0.9 in arcface_torch). */
  momentum?: number;
  /** AdamW betas (torch default 0.9, 0.999). */
  betas?: readonly [number, number];
  /** AdamW eps (torch default 1e-8). */
  eps?: number;
  weightDecay?: number;
}

/**
 * SGD (momentum, weight decay, as torch.optim.SGD) or AdamW (as torch.optim.AdamW). Each
 * registered array ("slot") has its own state; `step` updates the given parameters in place.
 * Gradient accumulation: sum the micro-batch gradients and step once with `gradScale` 1/k,
 * so the update equals the one for the whole batch (we average; arcface_torch sums).
 *
 * @example
 * ```ts
 * import { Optimizer } from "./head.ts";
 * using opt = new Optimizer({ kind: "sgd", momentum: 0.9 });
 * const slot = opt.add(2), w = new Float32Array([1, 2]);
 * await opt.step(slot, w, new Float32Array([0.5, 0.5]), 0.1);
 * console.log(w); // [0.95, 1.95]
 * ```
 */
export class Optimizer {
  #ptr: Ptr;
  readonly options: Readonly<OptimizerOptions>;
  constructor(options: OptimizerOptions) {
    const kind = options.kind === "sgd" ? 0 : options.kind === "adamw" ? 1 : -1;
    if (kind < 0) throw new TypeError(`Invalid optimizer "${options.kind}": expected "sgd" or "adamw"`);
    const [b1, b2] = options.betas ?? [0.9, 0.999];
    const out = new PtrOut();
    check(
      lib().afc_optim_create(
        kind,
        options.momentum ?? (kind === 0 ? 0.9 : 0),
        b1,
        b2,
        options.eps ?? 1e-8,
        options.weightDecay ?? 0,
        out.buf,
      ),
      "Cannot create optimizer",
    );
    this.#ptr = out.value;
    this.options = Object.freeze({ ...options });
    const ptr = this.#ptr;
    registry.register(this, () => lib().afc_optim_destroy(ptr), this);
  }

  /** @internal The native handle, for PartialFC.step. */
  get handle(): Ptr {
    if (this.#ptr === null) throw closedError("use optimizer", "optimizer");
    return this.#ptr;
  }

  /** Registers an array of `count` parameters and returns its slot. */
  add(count: number): number {
    const slot = new BigInt64Array(1);
    check(lib().afc_optim_add(this.handle, toI64(count, "parameter count"), slot), "Cannot add parameters");
    return toSafeNumber(slot[0], "slot");
  }

  /** One update of slot `slot`: `param` changes in place. */
  async step(
    slot: number,
    param: Float32Array,
    grad: Float32Array,
    lr: number,
    gradScale = 1,
  ): Promise<void> {
    if (param.length !== grad.length) {
      throw new RangeError(
        `Cannot run optimizer step: ${param.length} parameters but ${grad.length} gradients`,
      );
    }
    check(
      await lib().afc_optim_step(this.handle, BigInt(slot), param, grad, BigInt(param.length), lr, gradScale),
      "Cannot run optimizer step",
    );
  }

  /** Copies state buffer `which` (0: momentum / exp_avg, 1: exp_avg_sq) of a slot. */
  readState(slot: number, which: 0 | 1, count: number, offset = 0): Float32Array {
    const out = new Float32Array(count);
    check(
      lib().afc_optim_state_read(this.handle, BigInt(slot), which, BigInt(offset), out, BigInt(count)),
      "Cannot read optimizer state",
    );
    return out;
  }

  /** Restores state buffer `which` of a slot from `values` at `offset`. */
  writeState(slot: number, which: 0 | 1, values: Float32Array, offset = 0): void {
    check(
      lib().afc_optim_state_write(
        this.handle,
        BigInt(slot),
        which,
        BigInt(offset),
        values,
        BigInt(values.length),
      ),
      "Cannot write optimizer state",
    );
  }

  /** Steps taken by a slot (AdamW bias correction). */
  steps(slot: number): number {
    const out = new BigInt64Array(1);
    check(lib().afc_optim_steps_read(this.handle, BigInt(slot), out), "Cannot read optimizer steps");
    return toSafeNumber(out[0], "steps");
  }

  /** Restores the step count of a slot. */
  setSteps(slot: number, steps: number): void {
    check(
      lib().afc_optim_steps_write(this.handle, BigInt(slot), toI64(steps, "steps")),
      "Cannot set optimizer steps",
    );
  }

  close(): void {
    if (this.#ptr === null) return;
    registry.unregister(this);
    lib().afc_optim_destroy(this.#ptr);
    this.#ptr = null;
  }
  [Symbol.dispose](): void {
    this.close();
  }
}

/** Sum of squares of `x` (double precision), for global-norm clipping. *
 * @example
 * ```ts
 * import { sumSquares } from "./head.ts";
 * console.log(sumSquares(new Float32Array([3, 4]))); // 25
 * ```
 */
export function sumSquares(x: Float32Array): number {
  const out = new Float64Array(1);
  check(lib().afc_optim_sum_squares(x, BigInt(x.length), out), "Cannot sum squares");
  return out[0];
}

/**
 * clip_grad_norm_'s factor for gradients that will be scaled by `gradScale`:
 * min(1, maxNorm / (gradScale·√sumSquares + 1e-6)). Multiply it into the step's gradScale.
 *
 * @example
 * ```ts
 * import { clipCoefficient } from "./head.ts";
 * console.log(clipCoefficient(100, 1, 5)); // 0.5: a gradient norm of 10 clipped to 5
 * ```
 */
export function clipCoefficient(sumOfSquares: number, gradScale: number, maxNorm = 5): number {
  const out = new Float32Array(1);
  check(lib().afc_optim_clip_coef(sumOfSquares, gradScale, maxNorm, out), "Cannot clip gradients");
  return out[0];
}

/** Options of a Partial FC. */
export interface PartialFCOptions extends MarginOptions {
  numClasses: number;
  embeddingSize: number;
  /** Share of this rank's negative centres kept per step, in (0, 1] (arcface_torch sample_rate). */
  sampleRate?: number;
  /** Largest local batch. */
  maxBatch: number;
  seed?: number | bigint;
  /** Threads for this head's own context (0: all cores). */
  threads?: number;
  /** A native communicator handle (from the distributed module); omitted for one process. */
  comm?: Deno.PointerValue;
}

/** Result of one Partial FC step. */
export interface HeadStep {
  /** Mean loss over the global batch (the same on every rank). */
  loss: number;
  /** ∂loss/∂embeddings of this rank's rows, times the world size (averaged by the DP all-reduce). */
  dEmbeddings: Float32Array;
}

/**
 * Partial FC V2: this rank's shard of class centres (N(0, 0.01) rows), the margin softmax
 * cross-entropy and the shard's optimizer state. Rank r of W owns
 * `numClasses // W + (r < numClasses % W)` classes from `(numClasses // W)·r + min(r, numClasses % W)`.
 *
 * @example
 * ```ts
 * import { PartialFC } from "./head.ts";
 * using pfc = new PartialFC({ numClasses: 10, embeddingSize: 4, sampleRate: 0.5, maxBatch: 2 });
 * const { loss } = await pfc.forwardBackward(new Float32Array(8).fill(0.5), [1, 7]);
 * console.log(loss, pfc.lastSample()); // the positives 1 and 7 are always sampled
 * ```
 */
export class PartialFC {
  #ptr: Ptr;
  #ctx: Ptr;
  #margin: Margin;
  readonly numClasses: number;
  readonly embeddingSize: number;
  readonly maxBatch: number;
  readonly classStart: number;
  readonly numLocal: number;

  constructor(o: PartialFCOptions) {
    for (
      const [k, v] of [["numClasses", o.numClasses], ["embeddingSize", o.embeddingSize], [
        "maxBatch",
        o.maxBatch,
      ]] as const
    ) {
      if (!Number.isSafeInteger(v) || v <= 0) {
        throw new RangeError(`Invalid ${k} "${v}": expected a positive integer`);
      }
    }
    const rate = o.sampleRate ?? 1;
    if (!(rate > 0 && rate <= 1)) {
      throw new RangeError(`Invalid sample_rate "${rate}": expected a value in (0, 1]`);
    }
    this.#margin = new Margin(o);
    const ctx = new PtrOut();
    try {
      check(lib().afc_context_create(0, o.threads ?? 0, ctx.buf), "Cannot create Partial FC");
    } catch (e) {
      this.#margin.close();
      throw e;
    }
    this.#ctx = ctx.value;
    const out = new PtrOut();
    const seed = BigInt.asUintN(64, BigInt(o.seed ?? 2048));
    try {
      check(
        lib().afc_pfc_create(
          this.#ctx,
          o.comm ?? null,
          this.#margin.handle,
          BigInt(o.numClasses),
          o.embeddingSize,
          rate,
          BigInt(o.maxBatch),
          seed,
          out.buf,
        ),
        "Cannot create Partial FC",
      );
    } catch (e) {
      lib().afc_context_destroy(this.#ctx);
      this.#margin.close();
      throw e;
    }
    this.#ptr = out.value;
    this.numClasses = o.numClasses;
    this.embeddingSize = o.embeddingSize;
    this.maxBatch = o.maxBatch;
    const start = new BigInt64Array(1), local = new BigInt64Array(1);
    check(lib().afc_pfc_shard(this.#ptr, start, local), "Cannot read Partial FC shard");
    this.classStart = toSafeNumber(start[0], "class start");
    this.numLocal = toSafeNumber(local[0], "class count");
    const [p, c] = [this.#ptr, this.#ctx];
    registry.register(this, () => {
      lib().afc_pfc_destroy(p);
      lib().afc_context_destroy(c);
    }, this);
  }

  #handle(action: string): Ptr {
    if (this.#ptr === null) throw closedError(action, "Partial FC");
    return this.#ptr;
  }

  /**
   * Loss and gradients for `embeddings` (n×embeddingSize) with integer `labels` in
   * [0, numClasses). The shard's weight gradient is stored (added when `accumulate`).
   */
  async forwardBackward(
    embeddings: Float32Array,
    labels: ArrayLike<number | bigint>,
    accumulate = false,
  ): Promise<HeadStep> {
    const ptr = this.#handle("run Partial FC");
    const n = labels.length;
    if (n > this.maxBatch) {
      throw new RangeError(`Cannot run Partial FC: batch of ${n} exceeds max_batch ${this.maxBatch}`);
    }
    if (embeddings.length !== n * this.embeddingSize) {
      throw new RangeError(
        `Cannot run Partial FC: ${embeddings.length} embedding values for ${n} labels, expected ${
          n * this.embeddingSize
        }`,
      );
    }
    const lab = new BigInt64Array(n);
    for (let i = 0; i < n; i++) {
      const v = labels[i];
      if (typeof v === "number" && !Number.isInteger(v)) {
        throw new TypeError(`Cannot run Partial FC: label "${v}" of row ${i} is not an integer`);
      }
      const b = BigInt(v);
      if (b < 0n || b >= BigInt(this.numClasses)) {
        throw new RangeError(
          `Cannot run Partial FC: label "${v}" of row ${i} is outside [0, ${this.numClasses})`,
        );
      }
      lab[i] = b;
    }
    const loss = new Float32Array(1);
    const d = new Float32Array(n * this.embeddingSize);
    checkOn(
      await lib().afc_pfc_forward_backward(ptr, embeddings, lab, BigInt(n), accumulate ? 1 : 0, loss, d),
      "Cannot run Partial FC",
      (buf, cap, needed) => lib().afc_pfc_error(ptr, buf, cap, needed),
    );
    return { loss: loss[0], dEmbeddings: d };
  }

  /** Sets the shard's weight gradient to zero. */
  zeroGrad(): void {
    check(
      lib().afc_pfc_zero_grad(this.#handle("zero Partial FC gradient")),
      "Cannot zero Partial FC gradient",
    );
  }

  /** Updates the whole shard with `opt`'s rule at learning rate `lr`. */
  async step(opt: Optimizer, lr: number, gradScale = 1): Promise<void> {
    const ptr = this.#handle("step Partial FC");
    checkOn(
      await lib().afc_pfc_step(ptr, opt.handle, lr, gradScale),
      "Cannot step Partial FC",
      (buf, cap, needed) => lib().afc_pfc_error(ptr, buf, cap, needed),
    );
  }

  #rows(row: number, rows: number, action: string): [bigint, bigint, number] {
    if (
      !Number.isSafeInteger(row) || !Number.isSafeInteger(rows) || row < 0 || rows < 0 ||
      row + rows > this.numLocal
    ) {
      throw new RangeError(
        `Cannot ${action}: rows [${row}, ${row + rows}) are outside the shard's ${this.numLocal} rows`,
      );
    }
    return [BigInt(row), BigInt(rows), rows * this.embeddingSize];
  }

  /** Shard rows [row, row + rows) of the class centres (defaults: the whole shard). */
  readWeight(row = 0, rows: number = this.numLocal - row): Float32Array {
    const [r, k, n] = this.#rows(row, rows, "read Partial FC weight");
    const out = new Float32Array(n);
    check(
      lib().afc_pfc_weight_read(this.#handle("read Partial FC weight"), r, k, out, BigInt(n)),
      "Cannot read Partial FC weight",
    );
    return out;
  }

  /** Overwrites shard rows starting at `row` with `values` (whole rows). */
  writeWeight(values: Float32Array, row = 0): void {
    const [r, k, n] = this.#rows(row, values.length / this.embeddingSize, "write Partial FC weight");
    check(
      lib().afc_pfc_weight_write(this.#handle("write Partial FC weight"), r, k, values, BigInt(n)),
      "Cannot write Partial FC weight",
    );
  }

  /** The shard's weight gradient rows. */
  readGrad(row = 0, rows: number = this.numLocal - row): Float32Array {
    const [r, k, n] = this.#rows(row, rows, "read Partial FC gradient");
    const out = new Float32Array(n);
    check(
      lib().afc_pfc_grad_read(this.#handle("read Partial FC gradient"), r, k, out, BigInt(n)),
      "Cannot read Partial FC gradient",
    );
    return out;
  }

  /** Optimizer state rows (0: momentum / exp_avg, 1: exp_avg_sq). */
  readState(which: 0 | 1, row = 0, rows: number = this.numLocal - row): Float32Array {
    const [r, k, n] = this.#rows(row, rows, "read Partial FC state");
    const out = new Float32Array(n);
    check(
      lib().afc_pfc_state_read(this.#handle("read Partial FC state"), which, r, k, out, BigInt(n)),
      "Cannot read Partial FC state",
    );
    return out;
  }

  /** Restores optimizer state rows starting at `row`. */
  writeState(which: 0 | 1, values: Float32Array, row = 0): void {
    const [r, k, n] = this.#rows(row, values.length / this.embeddingSize, "write Partial FC state");
    check(
      lib().afc_pfc_state_write(this.#handle("write Partial FC state"), which, r, k, values, BigInt(n)),
      "Cannot write Partial FC state",
    );
  }

  /** Sampling generator state and optimizer step count, for checkpoints. */
  get counters(): { rng: bigint; optimSteps: number } {
    const rng = new BigUint64Array(1), steps = new BigInt64Array(1);
    check(
      lib().afc_pfc_counters_read(this.#handle("read Partial FC counters"), rng, steps),
      "Cannot read Partial FC counters",
    );
    return { rng: rng[0], optimSteps: toSafeNumber(steps[0], "optimizer steps") };
  }

  set counters(c: { rng: bigint; optimSteps: number }) {
    check(
      lib().afc_pfc_counters_write(
        this.#handle("restore Partial FC counters"),
        c.rng,
        toI64(c.optimSteps, "optimizer steps"),
      ),
      "Cannot restore Partial FC counters",
    );
  }

  /** Sorted local class indices used by the last step (a remapped label is a position here). */
  lastSample(): BigInt64Array {
    const ptr = this.#handle("read Partial FC sample");
    const count = new BigInt64Array(1);
    check(lib().afc_pfc_sample_read(ptr, null, 0n, count), "Cannot read Partial FC sample");
    const out = new BigInt64Array(toSafeNumber(count[0], "sample count"));
    check(lib().afc_pfc_sample_read(ptr, out, BigInt(out.length), count), "Cannot read Partial FC sample");
    return out;
  }

  close(): void {
    if (this.#ptr === null) return;
    registry.unregister(this);
    lib().afc_pfc_destroy(this.#ptr);
    lib().afc_context_destroy(this.#ctx);
    this.#margin.close();
    this.#ptr = null;
    this.#ctx = null;
  }
  [Symbol.dispose](): void {
    this.close();
  }
}
