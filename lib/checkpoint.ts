/**
 * Training checkpoints: one safetensors file per rank, `checkpoint_rank<r>.safetensors` in
 * the output folder, holding the backbone (tensors and optimizer state), this rank's Partial
 * FC shard (class centres and optimizer state) and, in the metadata, the JSON training state
 * (epoch, step, scheduler counter, sampler generator, world size, the shard's class range).
 * Files are written atomically. Resuming on another world size re-partitions the class
 * centres: every rank gathers its rows from whichever old shards hold them, so class c keeps
 * exactly its row and its momentum.
 *
 * @module
 */
import { AfcError, Status } from "../ffi/status.ts";
import { fromFloat32, readSafetensors, type Tensor, toFloat32, writeSafetensors } from "./safetensors.ts";
import type { Model } from "./model.ts";
import type { PartialFC } from "./head.ts";

/** The training state stored next to the tensors. */
export interface TrainState {
  /** The epoch training resumes in. */
  epoch: number;
  /** Micro-batches of that epoch already used (0 at an epoch boundary). */
  microBatch: number;
  /** Optimizer steps taken. */
  globalStep: number;
  /** The LR scheduler's counter (torch's last_epoch). */
  schedulerLastEpoch: number;
  /** The dynamic loss scale (1 when fp16 is off). */
  lossScale: number;
  /** The resolved configuration of the run that wrote it, for the record. */
  config?: unknown;
}

interface ShardMeta {
  rank: number;
  world_size: number;
  num_classes: number;
  class_start: number;
  num_local: number;
  embedding_size: number;
  network: string;
  optimizer: string;
  pfc_rng: string;
  pfc_optim_steps: number;
  model_optim_steps: number;
  /** SHA-256 over the per-tensor SHA-256 digests, in file order. */
  checksum: string;
  state: TrainState;
}

/** A digest of every tensor's bytes, so that a damaged file is refused, never half-loaded. */
async function checksum(tensors: Map<string, Tensor>): Promise<string> {
  const parts: Uint8Array[] = [];
  for (const [name, t] of [...tensors].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    parts.push(new TextEncoder().encode(name), new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)));
  }
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    all.set(p, off);
    off += p.length;
  }
  return [...new Uint8Array(await crypto.subtle.digest("SHA-256", all))]
    .map((b) => b.toString(16).padStart(2, "0")).join("");
}

const FILE = /^checkpoint_rank(\d+)\.safetensors$/;

/** The checkpoint file of `rank` in `dir`. */
export function checkpointPath(dir: string, rank: number): string {
  return `${dir}/checkpoint_rank${rank}.safetensors`;
}

function stateSlots(optimizer: string): (0 | 1)[] {
  return optimizer === "adamw" ? [0, 1] : [0];
}

/** Writes this rank's checkpoint (atomic: a temporary file, then a rename). */
export async function saveCheckpoint(
  dir: string,
  rank: number,
  worldSize: number,
  optimizer: "sgd" | "adamw",
  model: Model,
  pfc: PartialFC,
  state: TrainState,
): Promise<string> {
  const tensors = new Map<string, Tensor>();
  for (const t of model.tensors()) {
    tensors.set(`backbone.${t.name}`, fromFloat32(model.read(t.name), t.shape));
  }
  for (const which of stateSlots(optimizer)) {
    for (const name of model.parameters()) {
      const t = model.tensors().find((x) => x.name === name)!;
      tensors.set(`backbone_state${which}.${name}`, fromFloat32(model.readState(name, which), t.shape));
    }
  }
  const rows = [pfc.numLocal, pfc.embeddingSize];
  tensors.set("pfc.weight", fromFloat32(pfc.numLocal ? pfc.readWeight() : new Float32Array(0), rows));
  for (const which of stateSlots(optimizer)) {
    tensors.set(
      `pfc_state${which}`,
      fromFloat32(pfc.numLocal ? pfc.readState(which) : new Float32Array(0), rows),
    );
  }
  const counters = pfc.counters;
  const meta: ShardMeta = {
    rank,
    world_size: worldSize,
    num_classes: pfc.numClasses,
    class_start: pfc.classStart,
    num_local: pfc.numLocal,
    embedding_size: pfc.embeddingSize,
    network: model.network,
    optimizer,
    pfc_rng: counters.rng.toString(),
    pfc_optim_steps: counters.optimSteps,
    model_optim_steps: model.optimSteps,
    checksum: await checksum(tensors),
    state,
  };
  const path = checkpointPath(dir, rank);
  await writeSafetensors(path, tensors, { arcface_checkpoint: JSON.stringify(meta) });
  // A run resumed on fewer ranks leaves the old run's higher ranks behind: their shards
  // would make the folder two runs. Rank 0 removes them once its own shard is written.
  if (rank === 0) await removeShards(dir, (r) => r >= worldSize);
  return path;
}

/**
 * Removes the checkpoints a finished run no longer needs, those of its earlier stops: this
 * rank's and, on rank 0, those of ranks beyond the world. `resume` would otherwise roll the
 * finished run back to them. Returns how many it removed.
 */
export function removeCheckpoints(dir: string, rank: number, worldSize: number): Promise<number> {
  return removeShards(dir, (r) => r === rank || (rank === 0 && r >= worldSize));
}

async function removeShards(dir: string, which: (rank: number) => boolean): Promise<number> {
  let removed = 0;
  for (const e of Deno.readDirSync(dir)) {
    const m = FILE.exec(e.name);
    if (m && which(Number(m[1]))) {
      await Deno.remove(`${dir}/${e.name}`);
      removed++;
    }
  }
  return removed;
}

interface Shard {
  path: string;
  meta: ShardMeta;
  tensors: Map<string, Tensor>;
}

async function readShard(path: string): Promise<Shard> {
  const f = await readSafetensors(path);
  const text = f.metadata.arcface_checkpoint;
  let meta: ShardMeta;
  try {
    meta = JSON.parse(text ?? "");
  } catch {
    throw new AfcError(
      `Cannot resume from "${path}": it has no arcface checkpoint metadata (is it a model.safetensors? resume needs checkpoint_rank<r>.safetensors)`,
      Status.FORMAT,
    );
  }
  if (meta.checksum !== await checksum(f.tensors)) {
    throw new AfcError(
      `Cannot resume from "${path}": its tensors do not match the checksum written with them (the file is damaged; resume from an intact copy or start again)`,
      Status.FORMAT,
    );
  }
  return { path, meta, tensors: f.tensors };
}

function tensor(s: Shard, name: string): Float32Array<ArrayBuffer> {
  const t = s.tensors.get(name);
  if (!t) throw new AfcError(`Cannot resume from "${s.path}": tensor "${name}" is missing`, Status.FORMAT);
  return toFloat32(t);
}

/**
 * Restores `model` and `pfc` from the checkpoints in `dir` and returns the training state.
 * The shards written by any number of ranks are combined; they must cover exactly
 * [0, num_classes) of the same class count, or the call fails naming both counts.
 */
export async function loadCheckpoint(
  dir: string,
  rank: number,
  optimizer: "sgd" | "adamw",
  model: Model,
  pfc: PartialFC,
): Promise<TrainState & { worldSize: number }> {
  let names: string[] = [];
  try {
    names = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => FILE.test(n));
  } catch { /* no folder: handled below */ }
  if (names.length === 0) {
    throw new AfcError(
      `Cannot resume in "${dir}": no checkpoint_rank<r>.safetensors there (they are written after every epoch with save_all_states: true, and when a run is stopped with Ctrl-C; a run that finished without save_all_states removed those of its stops; or set resume: false)`,
      Status.NOT_FOUND,
    );
  }
  const shards = await Promise.all(names.sort().map((n) => readShard(`${dir}/${n}`)));
  const first = shards[0].meta;
  for (const s of shards) {
    const m = s.meta;
    if (m.num_classes !== pfc.numClasses || m.embedding_size !== pfc.embeddingSize) {
      throw new AfcError(
        `Cannot resume from "${s.path}": it holds ${m.num_classes} classes of ${m.embedding_size} features, the run has ${pfc.numClasses} of ${pfc.embeddingSize}`,
        Status.SHAPE,
      );
    }
    if (m.network !== model.network) {
      throw new AfcError(
        `Cannot resume from "${s.path}": it holds a "${m.network}" backbone, the run trains "${model.network}"`,
        Status.SHAPE,
      );
    }
    if (m.optimizer !== optimizer) {
      throw new AfcError(
        `Cannot resume from "${s.path}": its optimizer state is ${m.optimizer}, the run uses ${optimizer}`,
        Status.INVALID_ARGUMENT,
      );
    }
    if (m.world_size !== first.world_size || m.state.globalStep !== first.state.globalStep) {
      throw new AfcError(
        `Cannot resume in "${dir}": its checkpoints come from different runs ("${
          shards[0].path
        }": ${first.world_size} ranks, step ${first.state.globalStep}; "${s.path}": ${m.world_size} ranks, step ${m.state.globalStep}); remove the stale files`,
        Status.FORMAT,
      );
    }
  }
  // The old shards must tile [0, num_classes) exactly.
  const sorted = [...shards].sort((a, b) => a.meta.class_start - b.meta.class_start);
  let covered = 0;
  for (const s of sorted) {
    if (s.meta.class_start !== covered) break;
    covered += s.meta.num_local;
  }
  if (covered !== pfc.numClasses || shards.length !== first.world_size) {
    const total = shards.reduce((n, s) => n + s.meta.num_local, 0);
    throw new AfcError(
      `Cannot resume in "${dir}": its ${shards.length} Partial FC shards (of ${first.world_size} ranks) hold ${total} contiguous classes from 0 up to ${covered}, but num_classes is ${pfc.numClasses}; a shard is missing or stale`,
      Status.FORMAT,
    );
  }

  // Backbone: every rank saved the same; take this rank's file when it exists, else rank 0's.
  const own = shards.find((s) => s.meta.rank === rank) ?? shards.find((s) => s.meta.rank === 0)!;
  for (const t of model.tensors()) model.write(t.name, tensor(own, `backbone.${t.name}`));
  for (const which of stateSlots(optimizer)) {
    for (const name of model.parameters()) {
      model.writeState(name, which, tensor(own, `backbone_state${which}.${name}`));
    }
  }
  model.optimSteps = own.meta.model_optim_steps;

  // Partial FC: copy the rows of [classStart, classStart + numLocal) from the old shards.
  const lo = pfc.classStart, hi = pfc.classStart + pfc.numLocal, dim = pfc.embeddingSize;
  for (const s of sorted) {
    const a = Math.max(lo, s.meta.class_start), b = Math.min(hi, s.meta.class_start + s.meta.num_local);
    if (a >= b) continue;
    const off = (a - s.meta.class_start) * dim, end = (b - s.meta.class_start) * dim;
    pfc.writeWeight(tensor(s, "pfc.weight").subarray(off, end), a - lo);
    for (const which of stateSlots(optimizer)) {
      pfc.writeState(which, tensor(s, `pfc_state${which}`).subarray(off, end), a - lo);
    }
  }
  // The sampler continues its own sequence when the partition is unchanged.
  const same = shards.find((s) => s.meta.class_start === lo && s.meta.num_local === pfc.numLocal);
  pfc.counters = {
    rng: same ? BigInt(same.meta.pfc_rng) : pfc.counters.rng,
    optimSteps: own.meta.pfc_optim_steps,
  };
  return { ...own.meta.state, worldSize: first.world_size };
}

/** How a run splits its global batch: ranks × per-rank batch × micro-batches per step. */
export interface Split {
  worldSize: number;
  batchSize: number;
  gradientAcc: number;
}

/**
 * The state to continue a checkpoint written under split `saved` in a run under `now`, with
 * `stepsPerEpoch` steps per epoch. The sampler deals every epoch's permutation out in
 * order, whatever the split, so the first k images of an epoch are the same on any number
 * of ranks: the run continues after the same images, at the step (and learning rate) the
 * new split reaches there. A stop that is not a whole number of the new steps is refused.
 */
export function resumeState(
  state: TrainState,
  saved: Split,
  now: Split & { stepsPerEpoch: number },
  dir: string,
): TrainState {
  if (
    saved.worldSize === now.worldSize && saved.batchSize === now.batchSize &&
    saved.gradientAcc === now.gradientAcc
  ) {
    return state;
  }
  const images = state.microBatch * saved.batchSize * saved.worldSize;
  const stepImages = now.worldSize * now.batchSize * now.gradientAcc;
  if (images % stepImages !== 0) {
    throw new AfcError(
      `Cannot resume in "${dir}": it stopped ${images} images into epoch ${state.epoch} (${saved.worldSize} ranks × batch_size ${saved.batchSize}), which is not a whole number of this run's steps of ${stepImages} images (${now.worldSize} ranks × batch_size ${now.batchSize} × gradient_acc ${now.gradientAcc}); finish that epoch with the old split, or choose a split whose step divides ${images}`,
      Status.INVALID_ARGUMENT,
    );
  }
  const microBatch = images / (now.worldSize * now.batchSize);
  const globalStep = state.epoch * now.stepsPerEpoch + microBatch / now.gradientAcc;
  return {
    ...state,
    microBatch,
    globalStep,
    schedulerLastEpoch: state.schedulerLastEpoch + globalStep - state.globalStep,
  };
}

/** The split recorded in a checkpoint's config; `fallback` for what it does not record. */
export function savedSplit(state: TrainState & { worldSize: number }, fallback: Split): Split {
  const c = (state.config ?? {}) as { batch_size?: unknown; gradient_acc?: unknown };
  return {
    worldSize: state.worldSize,
    batchSize: typeof c.batch_size === "number" ? c.batch_size : fallback.batchSize,
    gradientAcc: typeof c.gradient_acc === "number" ? c.gradient_acc : fallback.gradientAcc,
  };
}
