/**
 * Training data: insightface RecordIO files (`train.rec` + `train.idx`), image folders and a
 * synthetic source, read by native loader threads into the backbone's input layout.
 *
 * The trainer's view:
 *
 * ```ts
 * using ds = openDataset({ rec: "data/orl", num_classes: 30 }); // checks the labels
 * using loader = ds.loader({ batchSize: 30, rank: 0, worldSize: 1, seed: 2048 });
 * const input = new Float32Array(loader.inputLength); // 30×3×112×112
 * const labels = new BigInt64Array(loader.batchSize);
 * for (let epoch = 0; epoch < 2; epoch++) {
 *   await loader.setEpoch(epoch);
 *   let batches = 0;
 *   while (await loader.next(input, labels)) batches++; // one training step per batch
 *   console.log(`epoch ${epoch}: ${batches} batches`);
 * }
 * ```
 *
 * Every rank gets `loader.steps` full batches per epoch (PyTorch's DistributedSampler with
 * padding, then drop_last), so ranks never run unequal step counts. Offsets and keys of the
 * RecordIO index are `bigint`: real files pass 4 GiB.
 *
 * @module
 */
import { AfcError, check, cStr, lib, PtrOut, readJson, Status, toI64, toSafeNumber } from "../ffi/mod.ts";

/** Reads a NUL-terminated text through a sizing call (NULL, 0) then a filling call. */
function readText(
  fill: (buf: Uint8Array<ArrayBuffer> | null, cap: bigint, needed: BigInt64Array) => number,
): string {
  const needed = new BigInt64Array(1);
  check(fill(null, 0n, needed), "Cannot read error detail");
  const buf = new Uint8Array(Number(needed[0]));
  check(fill(buf, BigInt(buf.length), needed), "Cannot read error detail");
  return new TextDecoder().decode(buf.subarray(0, buf.length - 1));
}

/** The magic word that starts every RecordIO record part. */
export const RECORD_MAGIC = 0xced7230a;

// ---------------------------------------------------------------------------------------
// Image record headers (mx.recordio.IRHeader)

/** A decoded insightface image record: the 24-byte header, its labels and the image bytes. */
export interface ImageRecord {
  /** 0 for one scalar label, k > 0 for k float labels stored before the image. */
  flag: number;
  /** The labels: one for flag 0, `flag` of them otherwise. */
  labels: number[];
  id: bigint;
  id2: bigint;
  /** The encoded image (empty for meta and identity records). */
  image: Uint8Array<ArrayBuffer>;
}

/**
 * Packs a record payload as `mx.recordio.pack` does: a number label gives flag 0, an array
 * of k labels gives flag k with the labels in front of the image.
 */
export function packRecord(
  label: number | number[],
  image: Uint8Array = new Uint8Array(0),
  id = 0n,
  id2 = 0n,
): Uint8Array<ArrayBuffer> {
  const vector = Array.isArray(label);
  const extra = vector ? 4 * label.length : 0;
  const out = new Uint8Array(24 + extra + image.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, vector ? label.length : 0, true);
  v.setFloat32(4, vector ? 0 : label, true);
  v.setBigUint64(8, id, true);
  v.setBigUint64(16, id2, true);
  if (vector) label.forEach((x, i) => v.setFloat32(24 + 4 * i, x, true));
  out.set(image, 24 + extra);
  return out;
}

/** Unpacks a record payload (`mx.recordio.unpack`). */
export function unpackRecord(payload: Uint8Array<ArrayBuffer>): ImageRecord {
  if (payload.length < 24) {
    throw new RangeError(`Cannot unpack record: ${payload.length} bytes, shorter than the 24-byte header`);
  }
  const v = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const flag = v.getUint32(0, true);
  if (flag > 0 && 24 + 4 * flag > payload.length) {
    throw new RangeError(
      `Cannot unpack record: flag ${flag} needs ${24 + 4 * flag} bytes, it has ${payload.length}`,
    );
  }
  const labels = flag === 0
    ? [v.getFloat32(4, true)]
    : Array.from({ length: flag }, (_, i) => v.getFloat32(24 + 4 * i, true));
  const start = flag === 0 ? 24 : 24 + 4 * flag;
  return {
    flag,
    labels,
    id: v.getBigUint64(8, true),
    id2: v.getBigUint64(16, true),
    image: payload.slice(start),
  };
}

/** `x.rec` → `x.idx`. */
export function indexPathFor(recPath: string): string {
  return recPath.replace(/\.rec$/, "") + ".idx";
}

// ---------------------------------------------------------------------------------------
// Raw RecordIO

const recordRegistry = new FinalizationRegistry<Deno.PointerValue>((p) => lib().afc_recordio_destroy(p));

/** A RecordIO file opened for reading (memory-mapped). */
export class RecordFile {
  #ptr: Deno.PointerValue;
  /** The `.rec` path. */
  readonly path: string;

  private constructor(ptr: Deno.PointerValue, path: string) {
    this.#ptr = ptr;
    this.path = path;
    recordRegistry.register(this, ptr, this);
  }

  /**
   * Opens `recPath` and its index (default: same name with `.idx`). Offsets that are not
   * 4-aligned or past the end are refused here; with `verify` (default true) every record's
   * magic and length are checked too.
   */
  static open(recPath: string, options: { idxPath?: string; verify?: boolean } = {}): RecordFile {
    const out = new PtrOut();
    const idx = options.idxPath ?? indexPathFor(recPath);
    check(
      lib().afc_recordio_create(cStr(recPath), cStr(idx), options.verify === false ? 0 : 1, out.buf),
      `Cannot open RecordIO "${recPath}"`,
    );
    return new RecordFile(out.value, recPath);
  }

  #live(action: string): Deno.PointerValue {
    if (this.#ptr === null) throw new AfcError(`Cannot ${action}: record file "${this.path}" is closed`);
    return this.#ptr;
  }

  /** Number of indexed records. */
  get count(): bigint {
    const out = new BigInt64Array(2);
    check(
      lib().afc_recordio_count(this.#live("count records"), out.subarray(0, 1), out.subarray(1)),
      "Cannot count records",
    );
    return out[0];
  }

  /** Size of the `.rec` file in bytes. */
  get fileSize(): bigint {
    const out = new BigInt64Array(2);
    check(
      lib().afc_recordio_count(this.#live("read the file size"), out.subarray(0, 1), out.subarray(1)),
      "Cannot read the file size",
    );
    return out[1];
  }

  /** The index entries in file order, keys and byte offsets as bigint. */
  entries(): { key: bigint; offset: bigint }[] {
    const p = this.#live("list keys");
    const n = toSafeNumber(this.count, "record count");
    const keys = new BigInt64Array(n), offsets = new BigInt64Array(n);
    check(lib().afc_recordio_keys(p, keys, offsets, BigInt(n)), "Cannot list keys");
    return Array.from({ length: n }, (_, i) => ({ key: keys[i], offset: offsets[i] }));
  }

  /** The payload of record `key`, multi-part records joined. */
  read(key: number | bigint): Uint8Array<ArrayBuffer> {
    const p = this.#live("read a record");
    const k = toI64(key, "record key");
    const size = new BigInt64Array(1);
    check(lib().afc_recordio_read(p, k, null, 0n, size), `Cannot read record key ${k} of "${this.path}"`);
    const buf = new Uint8Array(toSafeNumber(size[0], "record size"));
    check(lib().afc_recordio_read(p, k, buf, size[0], size), `Cannot read record key ${k} of "${this.path}"`);
    return buf;
  }

  /** Closes the file. Idempotent. */
  close(): void {
    if (this.#ptr === null) return;
    recordRegistry.unregister(this);
    lib().afc_recordio_destroy(this.#ptr);
    this.#ptr = null;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

const writerRegistry = new FinalizationRegistry<Deno.PointerValue>((p) =>
  lib().afc_recordio_writer_destroy(p)
);

/**
 * Writes a RecordIO file and its index atomically: everything goes to `<name>.tmp` files
 * that `finish()` renames into place; closing an unfinished writer removes them.
 */
export class RecordWriter {
  #ptr: Deno.PointerValue;
  readonly path: string;

  private constructor(ptr: Deno.PointerValue, path: string) {
    this.#ptr = ptr;
    this.path = path;
    writerRegistry.register(this, ptr, this);
  }

  /** Starts writing `recPath` and its index (default: same name with `.idx`). */
  static create(recPath: string, idxPath = indexPathFor(recPath)): RecordWriter {
    const out = new PtrOut();
    check(
      lib().afc_recordio_writer_create(cStr(recPath), cStr(idxPath), out.buf),
      `Cannot create RecordIO "${recPath}"`,
    );
    return new RecordWriter(out.value, recPath);
  }

  #live(action: string): Deno.PointerValue {
    if (this.#ptr === null) throw new AfcError(`Cannot ${action}: writer of "${this.path}" is closed`);
    return this.#ptr;
  }

  /** Appends record `key` with `payload` (see {@link packRecord}). */
  write(key: number | bigint, payload: Uint8Array<ArrayBuffer>): void {
    const k = toI64(key, "record key");
    check(
      lib().afc_recordio_writer_write(this.#live("write a record"), k, payload, BigInt(payload.length)),
      `Cannot write record key ${k} to "${this.path}"`,
    );
  }

  /** Syncs and renames both files into place, then closes the writer. */
  finish(): void {
    check(lib().afc_recordio_writer_finish(this.#live("finish")), `Cannot finish "${this.path}"`);
    this.close();
  }

  /** Closes the writer; an unfinished file is removed. Idempotent. */
  close(): void {
    if (this.#ptr === null) return;
    writerRegistry.unregister(this);
    lib().afc_recordio_writer_destroy(this.#ptr);
    this.#ptr = null;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

// ---------------------------------------------------------------------------------------
// Datasets and loaders

/** Where images come from. */
export type DatasetSource =
  | { kind: "recordio"; path: string; verifyIndex?: boolean; skipCorrupt?: boolean }
  | { kind: "folder"; path: string; skipCorrupt?: boolean }
  | { kind: "synthetic"; size?: number };

/** What a dataset reports about itself. */
export interface DatasetInfo {
  kind: "recordio" | "folder" | "synthetic";
  path: string;
  num_images: number;
  /** Largest label + 1. */
  num_classes: number;
  min_label: number;
  max_label: number;
  /** RecordIO: record 0 is an insightface meta record. */
  has_meta: boolean;
  /** RecordIO: identity records found in the meta record's range. */
  identity_records: number;
  warnings: string[];
}

/** Options of {@link Dataset.loader}. */
export interface LoaderOptions {
  /** Images per batch on this rank. */
  batchSize: number;
  /** Input size (default 112×112). */
  width?: number;
  height?: number;
  /** This process's rank and the number of ranks (default 0 of 1). */
  rank?: number;
  worldSize?: number;
  /** Seed of the per-epoch shuffle and the flips (default 2048, as arcface_torch). */
  seed?: number | bigint;
  /** Shuffle every epoch (default true). */
  shuffle?: boolean;
  /** Random horizontal flip, p = 0.5 (default true). */
  flip?: boolean;
  /** Decoding threads (default 2) and batches prefetched (default 4). */
  numThreads?: number;
  prefetch?: number;
}

const KINDS = { recordio: 0, folder: 1, synthetic: 2 } as const;
const datasetRegistry = new FinalizationRegistry<Deno.PointerValue>((p) => lib().afc_dataset_destroy(p));
const loaderRegistry = new FinalizationRegistry<Deno.PointerValue>((p) => lib().afc_loader_destroy(p));

function positiveInt(v: number, name: string, max = 2 ** 31 - 1): number {
  if (!Number.isInteger(v) || v < 1 || v > max) {
    throw new RangeError(`Invalid ${name} ${v}: expected an integer in 1..${max}`);
  }
  return v;
}

/** A labelled image collection: RecordIO, image folder or synthetic. *
 * @example
 * ```ts
 * import { Dataset } from "./data.ts";
 * using ds = Dataset.open({ kind: "recordio", path: "data/orl/train.rec" });
 * console.log(ds.numImages, ds.numClasses, ds.image(0).label); // 300 30 0n
 * ```
 */
export class Dataset {
  #ptr: Deno.PointerValue;
  #loaders = new Set<Loader>();
  /** What the dataset holds (numbers of images and classes, label range, warnings). */
  readonly info: DatasetInfo;

  private constructor(ptr: Deno.PointerValue) {
    this.#ptr = ptr;
    datasetRegistry.register(this, ptr, this);
    this.info = readJson(
      (buf, cap, needed) => lib().afc_dataset_describe(ptr, buf, cap, needed),
      "Cannot describe dataset",
    ) as DatasetInfo;
  }

  /**
   * Opens a dataset. RecordIO: the insightface layout (meta record, images, identity
   * records) or a plain im2rec file; the label of every image is read here. Folder: one
   * sub-folder per identity, labels by sorted folder name. Synthetic: `size` (default
   * 1,000,000) copies of one random image with label 1.
   */
  static open(source: DatasetSource): Dataset {
    const out = new PtrOut();
    let flags = 0;
    let path: string | null = null;
    let size = 0n;
    if (source.kind === "synthetic") {
      size = BigInt(positiveInt(source.size ?? 1_000_000, "synthetic size", Number.MAX_SAFE_INTEGER));
    } else {
      path = source.path;
      if (source.kind === "recordio" && source.verifyIndex !== false) flags |= 1;
      if (source.skipCorrupt) flags |= 2;
    }
    if (!(source.kind in KINDS)) {
      throw new TypeError(
        `Unknown dataset kind "${
          (source as { kind: string }).kind
        }": expected "recordio", "folder" or "synthetic"`,
      );
    }
    check(
      lib().afc_dataset_create(KINDS[source.kind], path === null ? null : cStr(path), size, flags, out.buf),
      `Cannot open dataset "${path ?? "synthetic"}"`,
    );
    return new Dataset(out.value);
  }

  /** @internal */
  get ptr(): Deno.PointerValue {
    if (this.#ptr === null) throw new AfcError(`Cannot use dataset "${this.info.path}": it is closed`);
    return this.#ptr;
  }

  /** Number of images. */
  get numImages(): number {
    return this.info.num_images;
  }

  /** Number of classes: largest label + 1. */
  get numClasses(): number {
    return this.info.num_classes;
  }

  /** Every image's label, in dataset order. */
  labels(): BigInt64Array<ArrayBuffer> {
    const out = new BigInt64Array(this.numImages);
    check(lib().afc_dataset_labels(this.ptr, out, BigInt(out.length)), "Cannot read labels");
    return out;
  }

  /** Decodes image `index` to RGB HWC bytes of `width`×`height` (default 112×112). */
  image(index: number, width = 112, height = 112): { rgb: Uint8Array<ArrayBuffer>; label: bigint } {
    if (!Number.isInteger(index) || index < 0 || index >= this.numImages) {
      throw new RangeError(`Invalid image index ${index}: expected 0..${this.numImages - 1}`);
    }
    positiveInt(width, "width", 4096);
    positiveInt(height, "height", 4096);
    const rgb = new Uint8Array(width * height * 3);
    const label = new BigInt64Array(1);
    check(
      lib().afc_dataset_image(this.ptr, BigInt(index), width, height, rgb, BigInt(rgb.length), label),
      `Cannot read image ${index} of "${this.info.path}"`,
    );
    return { rgb, label: label[0] };
  }

  /**
   * Fails unless every label lies in 0..numClasses-1, naming the largest label and the
   * configured count (a training run would otherwise fail or learn nonsense later).
   */
  checkLabels(numClasses: number): void {
    const { max_label: max, min_label: min, path } = this.info;
    if (max < numClasses) return;
    const hint = min === 1 && max === numClasses
      ? "labels seem numbered from 1: renumber them from 0"
      : `set num_classes to at least ${max + 1}`;
    throw new RangeError(
      `Cannot train on "${path}": the largest label is ${max} but num_classes is ${numClasses} (${hint})`,
    );
  }

  /** A loader over this dataset; it is closed when the dataset is. */
  loader(options: LoaderOptions): Loader {
    const l = new Loader(this, options, () => this.#loaders.delete(l));
    this.#loaders.add(l);
    return l;
  }

  /** Closes the loaders, then the dataset. Idempotent. */
  close(): void {
    if (this.#ptr === null) return;
    for (const l of [...this.#loaders]) l.close();
    datasetRegistry.unregister(this);
    lib().afc_dataset_destroy(this.#ptr);
    this.#ptr = null;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Batches of normalised images, `(x / 255 − 0.5) / 0.5` in NCHW float32, with int64 labels.
 * Worker threads prefetch batches while the caller trains.
 */
export class Loader {
  #ptr: Deno.PointerValue;
  #dataset: Dataset;
  #onClose: () => void;
  #warned = false;
  /** Images per batch. */
  readonly batchSize: number;
  readonly width: number;
  readonly height: number;
  /** Full batches per epoch, equal on every rank. */
  readonly steps: number;
  /** Floats in one input batch: batchSize × 3 × height × width. */
  readonly inputLength: number;

  /** Use {@link Dataset.loader}. */
  constructor(dataset: Dataset, o: LoaderOptions, onClose: () => void) {
    this.batchSize = positiveInt(o.batchSize, "batch size");
    this.width = positiveInt(o.width ?? 112, "width", 4096);
    this.height = positiveInt(o.height ?? 112, "height", 4096);
    const worldSize = positiveInt(o.worldSize ?? 1, "world size");
    const rank = o.rank ?? 0;
    if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize) {
      throw new RangeError(`Invalid rank ${rank}: expected an integer in 0..${worldSize - 1}`);
    }
    const seed = BigInt.asUintN(64, typeof o.seed === "bigint" ? o.seed : BigInt(o.seed ?? 2048));
    const flags = (o.shuffle === false ? 0 : 1) | (o.flip === false ? 0 : 2);
    const out = new PtrOut();
    check(
      lib().afc_loader_create(
        dataset.ptr,
        this.batchSize,
        this.width,
        this.height,
        rank,
        worldSize,
        seed,
        flags,
        positiveInt(o.numThreads ?? 2, "thread count", 256),
        positiveInt(o.prefetch ?? 4, "prefetch", 64),
        out.buf,
      ),
      `Cannot create a loader for "${dataset.info.path}"`,
    );
    this.#ptr = out.value;
    this.#dataset = dataset;
    this.#onClose = onClose;
    loaderRegistry.register(this, this.#ptr, this);
    const steps = new BigInt64Array(1);
    check(lib().afc_loader_steps(this.#ptr, steps), "Cannot count steps");
    this.steps = toSafeNumber(steps[0], "steps");
    this.inputLength = this.batchSize * 3 * this.height * this.width;
  }

  #live(action: string): Deno.PointerValue {
    if (this.#ptr === null) throw new AfcError(`Cannot ${action}: loader is closed`);
    return this.#ptr;
  }

  /** Restarts at the first batch of `epoch` (its own shuffle). Epoch 0 is started already. */
  async setEpoch(epoch: number): Promise<void> {
    if (!Number.isSafeInteger(epoch) || epoch < 0) {
      throw new RangeError(`Invalid epoch ${epoch}: expected a non-negative integer`);
    }
    check(
      await lib().afc_loader_set_epoch(this.#live("set the epoch"), BigInt(epoch)),
      `Cannot start epoch ${epoch}`,
    );
  }

  /**
   * Fills `input` (length {@link inputLength}) and `labels` (length {@link batchSize}) with the
   * next batch and returns the number of images, batchSize, or 0 at the end of the epoch.
   */
  async next(input: Float32Array<ArrayBuffer>, labels: BigInt64Array<ArrayBuffer>): Promise<number> {
    const p = this.#live("read a batch");
    if (input.length !== this.inputLength) {
      throw new RangeError(
        `Invalid input buffer: ${input.length} floats, expected ${this.batchSize}×3×${this.height}×${this.width} = ${this.inputLength}`,
      );
    }
    if (labels.length !== this.batchSize) {
      throw new RangeError(`Invalid labels buffer: ${labels.length} values, expected ${this.batchSize}`);
    }
    const filled = new BigInt64Array(1);
    const status = await lib().afc_loader_next(
      p,
      input,
      BigInt(input.length),
      labels,
      BigInt(labels.length),
      filled,
    );
    if (status !== Status.OK) {
      // The call ran on another thread: the detail is kept by the loader, not afc_last_error.
      const detail = readText((buf, cap, needed) => lib().afc_loader_error(p, buf, cap, needed));
      throw new AfcError(`Cannot load a batch from "${this.#dataset.info.path}": ${detail}`, status);
    }
    if (!this.#warned) {
      const { resized } = this.counters();
      if (resized > 0n) {
        this.#warned = true;
        console.warn(
          `Resizing images of "${this.#dataset.info.path}" to ${this.width}x${this.height} (bilinear): their stored size differs`,
        );
      }
    }
    return Number(filled[0]);
  }

  /** Images resized because their size differed, and corrupt images skipped, so far. */
  counters(): { resized: bigint; skipped: bigint } {
    const out = new BigInt64Array(2);
    check(
      lib().afc_loader_counters(this.#live("read counters"), out.subarray(0, 1), out.subarray(1)),
      "Cannot read counters",
    );
    return { resized: out[0], skipped: out[1] };
  }

  /** Stops the worker threads. Idempotent. */
  close(): void {
    if (this.#ptr === null) return;
    loaderRegistry.unregister(this);
    lib().afc_loader_destroy(this.#ptr);
    this.#ptr = null;
    this.#onClose();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** The data keys of an arcface_torch config that {@link openDataset} reads. */
export interface DataConfig {
  /** A folder holding train.rec/train.idx, a .rec file, an image folder, or "synthetic". */
  rec: string;
  /** When given, every label must be below it. */
  num_classes?: number;
  /** Skip undecodable images instead of failing (counted). */
  skip_corrupt?: boolean;
  /** Check every record's header when the index is opened (default true). */
  verify_index?: boolean;
}

/**
 * Opens the dataset a config names, as arcface_torch's get_dataloader chooses it:
 * "synthetic", else `<rec>/train.rec` when it exists (or `rec` itself when it is a .rec
 * file), else an image folder. Warnings go to the console; with `num_classes` the labels are
 * checked before any step runs.
 *
 * @example
 * ```ts
 * import { openDataset } from "./data.ts";
 * using ds = openDataset({ rec: "data/orl", num_classes: 30 }); // a label >= 30 would fail here
 * console.log(ds.info.has_meta, ds.numImages); // true 300
 * ```
 */
export function openDataset(config: DataConfig): Dataset {
  if (typeof config.rec !== "string" || config.rec === "") {
    throw new TypeError(
      `Invalid rec ${JSON.stringify(config.rec)}: expected a folder, a .rec file or "synthetic"`,
    );
  }
  let ds: Dataset;
  if (config.rec === "synthetic") {
    ds = Dataset.open({ kind: "synthetic" });
  } else {
    const rec = config.rec.endsWith(".rec") ? config.rec : `${config.rec.replace(/\/$/, "")}/train.rec`;
    let isRec = false;
    try {
      isRec = Deno.statSync(rec).isFile;
    } catch { /* not a RecordIO folder */ }
    ds = isRec
      ? Dataset.open({
        kind: "recordio",
        path: rec,
        verifyIndex: config.verify_index,
        skipCorrupt: config.skip_corrupt,
      })
      : Dataset.open({ kind: "folder", path: config.rec, skipCorrupt: config.skip_corrupt });
  }
  for (const w of ds.info.warnings) console.warn(`Warning: ${w}`);
  if (config.num_classes !== undefined) {
    try {
      ds.checkLabels(config.num_classes);
    } catch (e) {
      ds.close();
      throw e;
    }
  }
  return ds;
}
