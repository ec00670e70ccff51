/**
 * The training loop of arcface_torch's `train_v2.py`: backbone forward, Partial FC margin
 * softmax, backward, global-norm clipping of the backbone gradient, SGD / AdamW step on
 * both, poly LR with warmup, the seed's log lines, verification every `verbose` steps, and
 * checkpoints every epoch.
 *
 * ```ts
 * import { loadConfig, train } from "../mod.ts";
 * const config = loadConfig("configs/orl_mbf.yaml", {
 *   num_image: 60, // a short run: 2 steps of 30 images
 *   num_epoch: 1,
 *   warmup_epoch: 0,
 *   val_targets: [],
 *   output: await Deno.makeTempDir(),
 * });
 * const result = await train(config, { console: false });
 * console.log(result.steps, result.loss);
 * ```
 *
 * @module
 */
import { AfcError, Status } from "../ffi/status.ts";
import { ensureLibrary } from "../ffi/load.ts";
import type { Config } from "./config.ts";
import { openDataset } from "./data.ts";
import { clipCoefficient, marginName, Optimizer, PartialFC } from "./head.ts";
import { Model } from "./model.ts";
import { PolyScheduler } from "./schedule.ts";
import { TrainLog } from "./logging.ts";
import {
  loadCheckpoint,
  removeCheckpoints,
  resumeState,
  saveCheckpoint,
  savedSplit,
  type TrainState,
} from "./checkpoint.ts";
import { type DecodedSet, decodeSet, embedSet, evaluateEmbeddings, readBin } from "./verification.ts";
import { EventWriter } from "./tensorboard.ts";
import type { Comm } from "./comm.ts";
import { linePlot } from "./plot.ts";
import { writeAtomic } from "./export/state_dict.ts";
import { NETWORKS } from "./export/graph.ts";

/** Where this process stands among the training processes. */
export interface World {
  rank: number;
  worldSize: number;
  /** Rank on this machine (the device index, later). */
  localRank: number;
  /** Ranks on this machine (threads default to cores / localWorldSize). */
  localWorldSize: number;
  /** The communicator joining the ranks; required when worldSize > 1. */
  comm?: Comm;
}

/** Options of {@linkcode train}. */
export interface TrainOptions {
  /** This process's place among the ranks (default: one process). */
  world?: World;
  /** Print log lines on the console (default: rank 0 only). */
  console?: boolean;
  /**
   * Stops the run at the next optimizer-step boundary and writes a checkpoint there, which
   * `resume: true` continues from exactly.
   */
  signal?: AbortSignal;
  /** Receives every log line (after the console and training.log). */
  onLog?: (line: string) => void;
}

/** Verification figures of one set at the end of training. */
export interface VerificationFigures {
  /** Accuracy-Flip of the last verification and its standard deviation over folds. */
  accuracy: number;
  std: number;
  /** The best Accuracy-Flip seen during the run. */
  highest: number;
  xnorm: number;
  step: number;
}

/** What a finished run reports. */
export interface TrainResult {
  /** Mean loss of the last logging window. */
  loss: number;
  /** Optimizer steps taken in total (including those before a resume). */
  steps: number;
  /** Epochs completed. */
  epochs: number;
  /** Samples per second over the whole run, all ranks. */
  samplesPerSecond: number;
  /** Seconds this rank spent inside collectives (0 for one process), and its training time. */
  commSeconds: number;
  trainSeconds: number;
  /** Per verification set: its last and best figures. */
  verification: Record<string, VerificationFigures>;
  /** Output folder (model.safetensors, training.log, checkpoints). */
  outputDir: string;
  /** The backbone file written at the end (rank 0). */
  modelPath: string;
  /** Whether the run stopped early on request (a signal on any rank), after a checkpoint. */
  stopped: boolean;
}

/** Consecutive non-finite steps after which the run stops. */
export const MAX_NONFINITE_STEPS = 5;

const LOCAL: World = { rank: 0, worldSize: 1, localRank: 0, localWorldSize: 1 };

/** The verification targets of a config: `<rec folder>/<name>.bin`, or a path ending in .bin. */
export function verificationPaths(config: Config): Map<string, string> {
  const folder = config.rec.endsWith(".rec")
    ? config.rec.slice(0, config.rec.lastIndexOf("/") + 1)
    : config.rec;
  const out = new Map<string, string>();
  for (const name of config.val_targets) {
    if (name.endsWith(".bin")) {
      out.set(name.slice(name.lastIndexOf("/") + 1, -4), name);
    } else {
      out.set(name, `${folder.replace(/\/$/, "")}/${name}.bin`);
    }
  }
  return out;
}

function fileExists(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

function defaultThreads(world: World): number {
  const cores = navigator.hardwareConcurrency || 1;
  return Math.max(1, Math.floor(cores / Math.max(1, world.localWorldSize)));
}

/**
 * Trains a backbone and Partial FC as `config` says and returns the final figures. Rank 0
 * writes `model.safetensors` after every epoch and at the end, the log and TensorBoard
 * events; with `save_all_states` every rank writes its `checkpoint_rank<r>.safetensors`,
 * which `resume: true` continues from (on any number of ranks).
 *
 * @example
 * ```ts
 * import { train } from "./trainer.ts";
 * import { loadConfig } from "./config.ts";
 * const config = loadConfig("configs/orl_mbf.yaml", {
 *   num_image: 30,
 *   num_epoch: 2,
 *   frequent: 1,
 *   warmup_epoch: 0,
 *   val_targets: [],
 *   output: await Deno.makeTempDir(),
 * });
 * const stop = new AbortController();
 * const r = await train(config, { console: false, signal: stop.signal, onLog: (l) => l.startsWith("Speed") && stop.abort() });
 * console.log(r.steps); // 1: stopped at the first step boundary after the abort, with a checkpoint
 * ```
 */
export async function train(config: Config, options: TrainOptions = {}): Promise<TrainResult> {
  await ensureLibrary();
  const world = options.world ?? LOCAL;
  const { rank, worldSize } = world;
  if (worldSize !== config.derived.worldSize) {
    throw new AfcError(
      `Cannot train: the config was resolved for ${config.derived.worldSize} ranks but this run has ${worldSize} (load it with { worldSize: ${worldSize} })`,
      Status.INVALID_ARGUMENT,
    );
  }
  if (worldSize > 1 && !world.comm) {
    throw new AfcError(`Cannot train on ${worldSize} ranks: no communicator given`, Status.INVALID_ARGUMENT);
  }
  checkRunnable(config);
  if (worldSize > 1) await checkSameConfig(config, world.comm!, rank);
  const out = config.derived.outputDir;
  await makeOutputDir(out);
  using log = new TrainLog(
    rank === 0 ? `${out}/training.log` : null,
    options.console ?? rank === 0,
    options.onLog,
  );
  const threads = config.threads || defaultThreads(world);
  const d = config.derived;

  // Start-up lines: every value, then the derived ones, then what differs from the seed.
  for (const [k, v] of Object.entries(config)) {
    if (k !== "derived" && k !== "source") log.info(`${k.padEnd(30)} ${JSON.stringify(v)}`);
  }
  for (const [k, v] of Object.entries(d)) log.info(`${k.padEnd(30)} ${JSON.stringify(v)}`);
  log.info(`Loss: ${marginName(marginOptions(config))}`);
  log.info(`Ranks: ${worldSize}, threads per rank: ${threads}`);
  if (config.fp16) log.info("fp16: the CPU backend trains in fp32 (no loss scaling needed)");
  if (config.gradient_acc > 1) {
    log.info(
      `Gradient accumulation: ${config.gradient_acc} micro-batches averaged per step (arcface_torch sums them)`,
    );
  }
  if (config.loss_straight_through) log.info("Margin gradient: straight-through (detached) variant");

  using dataset = openDataset({ rec: config.rec, num_classes: config.num_classes });
  if (dataset.numImages < config.num_image) {
    throw new AfcError(
      `Cannot train on "${config.rec}": it holds ${dataset.numImages} images but num_image is ${config.num_image} (set num_image to ${dataset.numImages})`,
      Status.INVALID_ARGUMENT,
    );
  }
  if (dataset.numImages > config.num_image) {
    log.warn(
      `num_image is ${config.num_image} but "${config.rec}" holds ${dataset.numImages} images: each epoch uses ${config.num_image} of them, shuffled (set num_image to ${dataset.numImages} to use all)`,
    );
  }
  using loader = dataset.loader({
    batchSize: config.batch_size,
    rank,
    worldSize,
    seed: config.seed,
    numThreads: Math.max(1, config.num_workers),
  });

  using model = Model.create({
    network: config.network,
    numFeatures: config.embedding_size,
    maxBatch: config.batch_size,
    threads,
  });
  using pfc = new PartialFC({
    ...marginOptions(config),
    numClasses: config.num_classes,
    embeddingSize: config.embedding_size,
    sampleRate: config.sample_rate,
    maxBatch: config.batch_size,
    seed: config.seed,
    threads,
    comm: world.comm?.handle,
  });
  using opt = new Optimizer(
    config.optimizer === "sgd"
      ? { kind: "sgd", momentum: config.momentum, weightDecay: config.weight_decay }
      : { kind: "adamw", weightDecay: config.weight_decay },
  );
  log.info(
    `Backbone ${config.network}: ${model.info.parameters} parameters; Partial FC rank ${rank}: classes [${pfc.classStart}, ${
      pfc.classStart + pfc.numLocal
    }) of ${config.num_classes}`,
  );

  let state: TrainState = { epoch: 0, microBatch: 0, globalStep: 0, schedulerLastEpoch: -1, lossScale: 1 };
  if (config.resume) {
    const loaded = await loadCheckpoint(out, rank, config.optimizer, model, pfc);
    const now = { worldSize, batchSize: config.batch_size, gradientAcc: config.gradient_acc };
    state = resumeState(loaded, savedSplit(loaded, now), { ...now, stepsPerEpoch: d.stepsPerEpoch }, out);
    if (state.globalStep >= d.totalSteps) {
      throw new AfcError(
        `Cannot resume in "${out}": its checkpoint is at step ${state.globalStep} (epoch ${state.epoch}), and this run ends at step ${d.totalSteps} (num_epoch ${config.num_epoch}): raise num_epoch to train further`,
        Status.INVALID_ARGUMENT,
      );
    }
    log.info(
      `Resumed from "${out}" at epoch ${state.epoch} (micro-batch ${state.microBatch}), step ${state.globalStep}`,
    );
  }
  const scheduler = new PolyScheduler({
    baseLr: config.lr,
    totalSteps: d.totalSteps,
    warmupSteps: d.warmupSteps,
    power: config.lr_power,
  }, state.schedulerLastEpoch);

  // Verification sets: a missing one is a warning now, not a crash later.
  const sets: DecodedSet[] = [];
  for (const [name, path] of verificationPaths(config)) {
    if (!fileExists(path)) {
      log.warn(`verification set "${name}" not found at "${path}": it is skipped`);
      continue;
    }
    const set = decodeSet({ ...(await readBin(path)), name });
    if (set.resized) log.info(`Verification set "${name}": ${set.resized} images resized to 112x112`);
    sets.push(set);
  }
  const highest = new Map<string, number>();
  const figures: Record<string, VerificationFigures> = {};
  const events = rank === 0 ? await EventWriter.open(out) : null;

  // Every rank takes part (only rank 0 logs): a rank that went on alone would wait in the
  // next collective for as long as the verification takes, and could run into the timeout.
  const runVerification = async (step: number) => {
    // Batch-norm statistics are per rank (as the seed's DDP with broadcast_buffers=False);
    // the figures are those of rank 0's model, the one saved, so every rank takes its
    // statistics before embedding its share.
    if (sets.length > 0 && world.comm && worldSize > 1) {
      for (const t of model.tensors().filter((t) => t.kind === "buffer")) {
        const values = model.read(t.name);
        await world.comm.broadcast(values, 0);
        model.write(t.name, values);
      }
    }
    for (const set of sets) {
      // Each rank embeds its share of the images; a sum over the ranks completes the rest.
      const images = {
        start: Math.floor(set.count * rank / worldSize),
        end: Math.floor(set.count * (rank + 1) / worldSize),
      };
      const emb = await embedSet(set, (x, n) => model.forward(x, n, { train: false }), {
        batchSize: model.maxBatch,
        images,
      });
      const dim = model.numFeatures;
      const plain = emb.dim ? emb.plain : new Float32Array(set.count * dim);
      const flip = emb.dim ? emb.flip : new Float32Array(set.count * dim);
      if (world.comm && worldSize > 1) {
        await world.comm.allReduce(plain as Float32Array<ArrayBuffer>);
        await world.comm.allReduce(flip as Float32Array<ArrayBuffer>);
      }
      const r = evaluateEmbeddings(set.name, { plain, flip, dim }, set.issame);
      const best = Math.max(highest.get(set.name) ?? 0, r.flip.accuracy);
      highest.set(set.name, best);
      log.info(`[${set.name}][${step}]XNorm: ${r.xnorm.toFixed(6)}`);
      log.info(
        `[${set.name}][${step}]Accuracy-Flip: ${r.flip.accuracy.toFixed(5)}+-${r.flip.std.toFixed(5)}`,
      );
      log.info(`[${set.name}][${step}]Accuracy-Highest: ${best.toFixed(5)}`);
      for (const w of r.warnings) log.warn(w);
      await events?.scalar(set.name, r.flip.accuracy, step);
      figures[set.name] = { accuracy: r.flip.accuracy, std: r.flip.std, highest: best, xnorm: r.xnorm, step };
    }
  };

  const input = new Float32Array(loader.inputLength);
  const labels = new BigInt64Array(config.batch_size);
  const acc = config.gradient_acc;
  let windowLoss = 0, windowCount = 0, lastLoss = NaN, nonFinite = 0;
  let windowStart = performance.now(), windowSamples = 0, windowSteps = 0;
  const runStart = performance.now();
  const commStart = worldSize > 1 ? world.comm!.seconds : 0;
  let runSamples = 0;
  let { globalStep, epoch } = state;
  let verifiedAt = -1, stopped = false, epochsDone = 0;
  const curve: { step: number[]; loss: number[] } = { step: [], loss: [] };
  const checkpoint = (micro: number) =>
    saveCheckpoint(out, rank, worldSize, config.optimizer, model, pfc, snapshot(micro));
  // Every rank must stop after the same step: the ranks agree on the flag (a max over ranks).
  const stopFlag = new Float32Array(1);
  const stopRequested = async () => {
    stopFlag[0] = options.signal?.aborted ? 1 : 0;
    if (world.comm && worldSize > 1) await world.comm.allReduce(stopFlag, "max");
    return stopFlag[0] > 0;
  };
  const snapshot = (micro: number) => ({
    epoch: micro === d.microBatchesPerEpoch ? epoch + 1 : epoch,
    microBatch: micro === d.microBatchesPerEpoch ? 0 : micro,
    globalStep,
    schedulerLastEpoch: scheduler.lastEpoch,
    lossScale: state.lossScale,
    config,
  });

  try {
    for (; epoch < config.num_epoch && !stopped; epoch++) {
      await loader.setEpoch(epoch);
      // A run stopped mid-epoch resumes after the micro-batches it had used.
      const skip = epoch === state.epoch ? state.microBatch : 0;
      for (let i = 0; i < skip; i++) await loader.next(input, labels);
      for (let micro = skip; micro < d.microBatchesPerEpoch; micro++) {
        const n = await loader.next(input, labels);
        if (n !== config.batch_size) {
          throw new AfcError(
            `Cannot train: the loader gave ${n} images at micro-batch ${micro} of epoch ${epoch}, expected ${config.batch_size}`,
            Status.INTERNAL,
          );
        }
        const first = micro % acc === 0, last = (micro + 1) % acc === 0;
        const emb = await model.forward(input, n, { train: true });
        const { loss, dEmbeddings } = await pfc.forwardBackward(emb, labels, !first);
        // The step's last backward pass averages the gradients over the ranks as it goes.
        await model.backward(dEmbeddings as Float32Array<ArrayBuffer>, n, {
          accumulate: !first,
          allReduce: last && worldSize > 1 ? world.comm : undefined,
        });
        windowLoss += loss;
        windowCount++;
        windowSamples += n * worldSize;
        runSamples += n * worldSize;
        if (!last) continue;

        const lr = scheduler.lr;
        const applied = await applyStep({ model, pfc, opt }, {
          lr,
          loss,
          microBatches: acc,
          maxGradNorm: config.max_grad_norm,
        });
        if (!applied) {
          nonFinite++;
          log.warn(`step ${globalStep + 1}: non-finite loss ${loss} or gradient; the update is skipped`);
          if (nonFinite >= MAX_NONFINITE_STEPS) {
            throw new AfcError(
              `Cannot train: ${nonFinite} steps in a row had a non-finite loss or gradient (step ${
                globalStep + 1
              }, lr ${lr}, loss scale ${state.lossScale}); lower lr or check the data`,
              Status.NUMERIC,
            );
          }
        } else {
          nonFinite = 0;
        }
        scheduler.step();
        globalStep++;
        windowSteps++;
        lastLoss = windowLoss / windowCount;
        const done = Math.min(30, Math.round((30 * globalStep) / d.totalSteps));
        log.progress(
          `[${"#".repeat(done)}${
            "-".repeat(30 - done)
          }] step ${globalStep}/${d.totalSteps}  epoch ${epoch}  loss ${lastLoss.toFixed(4)}`,
        );

        if (globalStep % config.frequent === 0) {
          const seconds = (performance.now() - windowStart) / 1000;
          const speed = windowSamples / seconds;
          const required = ((d.totalSteps - globalStep) * seconds) / windowSteps / 3600;
          const fp16 = config.fp16 ? `Fp16 Grad Scale: ${state.lossScale.toFixed(0)}   ` : "";
          log.info(
            `Speed ${speed.toFixed(2)} samples/sec   Loss ${lastLoss.toFixed(4)}   LearningRate ${
              scheduler.lr.toFixed(6)
            }   Epoch: ${epoch}   Global Step: ${globalStep}   ${fp16}Required: ${required.toFixed(0)} hours`,
          );
          await events?.scalar("learning_rate", scheduler.lr, globalStep);
          await events?.scalar("loss", lastLoss, globalStep);
          curve.step.push(globalStep);
          curve.loss.push(lastLoss);
          windowLoss = 0;
          windowCount = 0;
          windowSamples = 0;
          windowSteps = 0;
          windowStart = performance.now();
        }
        if (globalStep % config.verbose === 0) {
          await runVerification(globalStep);
          verifiedAt = globalStep;
        }
        if (await stopRequested()) {
          stopped = true;
          epochsDone = micro + 1 === d.microBatchesPerEpoch ? epoch + 1 : epoch;
          const path = await checkpoint(micro + 1);
          log.info(`Stopped at step ${globalStep}: "${path}" continues it with --resume=true`);
          break;
        }
      }
      if (stopped) break;
      if (config.save_all_states) await checkpoint(d.microBatchesPerEpoch);
      if (rank === 0) await model.save(`${out}/model.safetensors`);
    }
    if (windowCount > 0) lastLoss = windowLoss / windowCount;
    if (!stopped) epochsDone = epoch;
    if (verifiedAt !== globalStep && !stopped) await runVerification(globalStep);
    if (!stopped && !config.save_all_states && await removeCheckpoints(out, rank, worldSize)) {
      log.info("Removed the checkpoints of earlier stops: the run is complete");
    }
  } catch (e) {
    log.failed((e as Error).message);
    throw e;
  } finally {
    events?.close();
  }
  if (rank === 0 && curve.step.length > 1) {
    const png = await linePlot({
      series: [{ x: curve.step, y: curve.loss, label: "loss" }],
      xLabel: "step",
      yLabel: "loss",
      title: `${config.network} on ${config.rec}`,
    });
    await writeAtomic(`${out}/loss.png`, png);
  }
  const { skipped } = loader.counters();
  if (skipped > 0n) {
    log.warn(`${skipped} undecodable images of "${config.rec}" were skipped (neighbours stood in)`);
  }
  const modelPath = `${out}/model.safetensors`;
  if (rank === 0) await model.save(modelPath);
  const trainSeconds = (performance.now() - runStart) / 1000;
  const samplesPerSecond = runSamples / trainSeconds;
  const commSeconds = worldSize > 1 ? world.comm!.seconds - commStart : 0;
  log.info(
    `${stopped ? "Stopped" : "Finished"}: ${globalStep} step${
      globalStep === 1 ? "" : "s"
    }, ${epochsDone} epoch${epochsDone === 1 ? "" : "s"}, ${
      samplesPerSecond.toFixed(1)
    } samples/sec; model in "${modelPath}"`,
  );
  if (worldSize > 1) {
    log.info(
      `Communication: ${commSeconds.toFixed(1)} s of ${trainSeconds.toFixed(1)} s on rank ${rank} (${
        (100 * commSeconds / trainSeconds).toFixed(1)
      }%, waiting for other ranks included)`,
    );
  }
  return {
    loss: lastLoss,
    steps: globalStep,
    epochs: epochsDone,
    samplesPerSecond,
    commSeconds,
    trainSeconds,
    verification: figures,
    outputDir: out,
    modelPath,
    stopped,
  };
}

/** Creates the output folder `out` (and its parents) and checks that it is writable, or fails naming it. */
export async function makeOutputDir(out: string): Promise<void> {
  try {
    await Deno.mkdir(out, { recursive: true });
    await Deno.remove(await Deno.makeTempFile({ dir: out, prefix: ".write-test-" }));
  } catch (e) {
    throw new AfcError(
      `Cannot use the output folder "${out}": ${(e as Error).message} (set output to a writable folder)`,
      Status.IO,
    );
  }
}

/** Keys that may differ between machines: paths and thread counts. */
const PER_MACHINE_KEYS = new Set(["rec", "output", "threads", "derived", "source"]);

/**
 * Refuses ranks started with different configs, before their collectives disagree on sizes
 * (which Gloo cannot report, it aborts): every rank compares a digest of each key's value.
 */
async function checkSameConfig(config: Config, comm: Comm, rank: number): Promise<void> {
  const values = config as unknown as Record<string, unknown>;
  const keys = Object.keys(values).filter((k) => !PER_MACHINE_KEYS.has(k)).sort();
  const digests = new BigInt64Array(keys.length + 1);
  const digest = async (text: string) =>
    new DataView(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text))).getBigInt64(0);
  digests[0] = await digest(keys.join(",")); // the key set itself
  for (const [i, k] of keys.entries()) {
    digests[i + 1] = await digest(JSON.stringify(values[k]));
  }
  const all = await comm.allGather(digests);
  const n = digests.length;
  const differ = new Set<string>();
  for (let r = 0; r < comm.size; r++) {
    if (all[r * n] !== digests[0]) differ.add("(the set of keys)");
    else keys.forEach((k, i) => all[r * n + i + 1] !== digests[i + 1] && differ.add(k));
  }
  if (differ.size > 0) {
    const mine = [...differ].filter((k) => keys.includes(k))
      .map((k) => `${k} ${JSON.stringify(values[k])}`);
    throw new AfcError(
      `Cannot train: the ranks were started with different configs, differing in ${[...differ].join(", ")}${
        mine.length ? ` (rank ${rank} has ${mine.join(", ")})` : ""
      }; start every rank with the same config and overrides`,
      Status.INVALID_ARGUMENT,
    );
  }
}

/** Refuses, before anything is written, a config that cannot run here. */
/** What one optimizer step updates. */
export interface StepParts {
  model: Model;
  pfc: PartialFC;
  opt: Optimizer;
}

/**
 * The update that ends an optimizer step, after its micro-batches' backward passes (as
 * arcface_torch's train_v2.py), the last of which averaged the backbone gradients over the
 * ranks (`allReduce`): gradients scaled by 1 / microBatches, clipped to `maxGradNorm`
 * (global norm; 0 turns clipping off), then the optimizer on the backbone and on this
 * rank's Partial FC shard. A non-finite `loss` or gradient skips the update and returns
 * false. Gradients are zeroed either way.
 */
export async function applyStep(
  { model, pfc, opt }: StepParts,
  o: { lr: number; loss: number; microBatches: number; maxGradNorm: number },
): Promise<boolean> {
  const scale = 1 / o.microBatches;
  const sumSq = model.gradSumSquares();
  const finite = Number.isFinite(o.loss) && Number.isFinite(sumSq);
  if (finite) {
    const clip = o.maxGradNorm > 0 ? clipCoefficient(sumSq, scale, o.maxGradNorm) : 1;
    await model.step(opt, o.lr, scale * clip);
    await pfc.step(opt, o.lr, scale);
  }
  model.zeroGrad();
  pfc.zeroGrad();
  return finite;
}

function checkRunnable(config: Config): void {
  if (![...NETWORKS, "r2060"].includes(config.network)) {
    throw new AfcError(
      `Cannot train: network "${config.network}" is not one of ${[...NETWORKS, "r2060"].join(", ")}${
        config.network.startsWith("vit") ? " (the ViT backbones are not built yet)" : ""
      }`,
      Status.INVALID_ARGUMENT,
    );
  }
  let found = config.rec === "synthetic";
  try {
    found ||= Boolean(Deno.statSync(config.rec));
  } catch { /* missing */ }
  if (!found) {
    throw new AfcError(
      `Cannot train: rec "${config.rec}" does not exist (set rec to the folder holding train.rec and train.idx, a .rec file, or an image folder)`,
      Status.NOT_FOUND,
    );
  }
  const cores = navigator.hardwareConcurrency || 1;
  if (config.threads > 4 * cores) {
    throw new AfcError(
      `Cannot train with threads ${config.threads}: this machine has ${cores} cores (use at most ${
        4 * cores
      }, or 0 for cores / local ranks)`,
      Status.INVALID_ARGUMENT,
    );
  }
}

function marginOptions(c: Config) {
  return {
    s: c.scale,
    marginList: c.margin_list,
    interclassFilteringThreshold: c.interclass_filtering_threshold,
    straightThrough: c.loss_straight_through,
  };
}
