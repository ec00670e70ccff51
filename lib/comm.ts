/**
 * Collectives between training processes: a `Comm` joins a world through a rendezvous store
 * (a shared directory or `redis://host:port`) and offers all-reduce, all-gather, broadcast
 * and barrier on `Float32Array` and `BigInt64Array` buffers, in place or into new arrays.
 *
 * ```ts
 * using comm = await Comm.local(); // or Comm.create({ rank, worldSize, store, runId })
 * const x = new Float32Array([1, 2]);
 * await comm.allReduce(x); // the sum over every rank: unchanged with one
 * ```
 *
 * @module
 */
import type { Model } from "./model.ts";
import {
  AfcError,
  check,
  checkOn,
  cStr,
  cString,
  lib,
  PtrOut,
  Status,
  toI64,
  toSafeNumber,
} from "../ffi/mod.ts";

/** A buffer the collectives accept. */
export type CommBuffer = Float32Array<ArrayBuffer> | BigInt64Array<ArrayBuffer>;

/** How `allReduce` combines values. */
export type ReduceOp = "sum" | "max";

/** Where and how to join a world. */
export interface CommOptions {
  /** This process's rank, 0 ≤ rank < worldSize. */
  rank: number;
  /** Number of processes. 1 needs no store. */
  worldSize: number;
  /** Rendezvous store: a directory shared by all ranks, or `redis://host:port`. */
  store?: string;
  /** Namespace of this run in the store, equal on every rank and unique per run. */
  runId?: string;
  /** Bound on the rendezvous and on every collective, in milliseconds (default 300000). */
  timeoutMs?: number;
  /** Host name, IP or network interface to listen on (default 127.0.0.1). */
  address?: string;
}

const DTYPE_F32 = 0;
const DTYPE_I64 = 1;
const OPS: Record<ReduceOp, number> = { sum: 0, max: 1 };

/** The default bound on rendezvous and collectives. */
export const DEFAULT_TIMEOUT_MS = 300_000;

const registry = new FinalizationRegistry<Deno.PointerValue>((ptr) => lib().afc_comm_destroy(ptr));

function dtypeOf(data: CommBuffer, action: string): number {
  if (data instanceof Float32Array) return DTYPE_F32;
  if (data instanceof BigInt64Array) return DTYPE_I64;
  throw new TypeError(`${action}: expected a Float32Array or a BigInt64Array`);
}

/** One process's membership of a world of processes. */
export class Comm {
  #ptr: Deno.PointerValue;
  #token = {};
  readonly rank: number;
  readonly size: number;

  private constructor(ptr: Deno.PointerValue, rank: number, size: number) {
    this.#ptr = ptr;
    this.rank = rank;
    this.size = size;
    registry.register(this, ptr, this.#token);
  }

  /**
   * Joins the world described by `options`. Ranks that start early wait for the others
   * up to the timeout; missing ranks make it throw an `AfcError` (code `TIMEOUT`) that names
   * them, the store and the timeout. The rendezvous holds the calling thread until the
   * world is complete (timers do not run meanwhile): start the ranks as processes.
   */
  // deno-lint-ignore require-await
  static async create(options: CommOptions): Promise<Comm> {
    const { rank, worldSize } = options;
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!Number.isInteger(worldSize) || worldSize < 1) {
      throw new RangeError(`Invalid world size ${worldSize}: expected a positive integer`);
    }
    if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize) {
      throw new RangeError(`Invalid rank ${rank}: expected an integer in 0..${worldSize - 1}`);
    }
    if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) {
      throw new RangeError(`Invalid timeout ${timeoutMs} ms: expected a positive integer`);
    }
    if (worldSize > 1 && !options.store) {
      throw new TypeError(
        `Cannot join a world of ${worldSize} processes: no store (give a shared directory or redis://host:port)`,
      );
    }
    if (worldSize > 1 && !/^[A-Za-z0-9._-]{1,128}$/.test(options.runId ?? "")) {
      throw new TypeError(
        `Invalid run id "${options.runId ?? ""}": expected 1 to 128 letters, digits, ".", "_" or "-"`,
      );
    }
    const out = new PtrOut();
    // Blocking on purpose: the detail of a failed rendezvous is in this thread's last error.
    const status = lib().afc_comm_create(
      cStr(options.store ?? ""),
      cStr(options.runId ?? ""),
      rank,
      worldSize,
      BigInt(timeoutMs),
      cStr(options.address ?? ""),
      out.buf,
    );
    if (status !== Status.OK) {
      const detail = cString(lib().afc_last_error()) ?? cString(lib().afc_status_string(status));
      throw new AfcError(`Cannot join the world as rank ${rank} of ${worldSize}: ${detail}`, status);
    }
    return new Comm(out.value, rank, worldSize);
  }

  /** Seconds spent inside collectives so far, waiting for slower ranks included. */
  get seconds(): number {
    const out = new Float64Array(1);
    const action = "Cannot read the communication time";
    check(lib().afc_comm_seconds(this.#live(action), out), action);
    return out[0];
  }

  /** A world of this process alone: every collective leaves the data as it is. */
  static local(): Promise<Comm> {
    return Comm.create({ rank: 0, worldSize: 1 });
  }

  #live(action: string): Deno.PointerValue {
    if (this.#ptr === null) throw new AfcError(`${action}: communicator is closed`, Status.STATE);
    return this.#ptr;
  }

  // The detail of a failed call lives on the handle: the call ran on a worker thread.
  #check(status: number, action: string): void {
    const ptr = this.#ptr;
    checkOn(status, action, (buf, cap, needed) => lib().afc_comm_error(ptr, buf, cap, needed));
  }

  /** Combines `data` over all ranks in place: every rank ends with the sum (or max). */
  async allReduce(data: CommBuffer, op: ReduceOp = "sum"): Promise<void> {
    const action = "Cannot all-reduce";
    const ptr = this.#live(action);
    const dtype = dtypeOf(data, action);
    if (!(op in OPS)) throw new TypeError(`${action}: unknown op "${op}" (expected "sum" or "max")`);
    this.#check(
      await lib().afc_comm_all_reduce(ptr, dtype, data, toI64(data.length, "count"), OPS[op]),
      action,
    );
  }

  /** Every rank's `data` (equal lengths) concatenated in rank order. */
  async allGather<T extends CommBuffer>(data: T): Promise<T> {
    const action = "Cannot all-gather";
    const ptr = this.#live(action);
    const dtype = dtypeOf(data, action);
    const out = new (data.constructor as { new (n: number): T })(data.length * this.size);
    this.#check(
      await lib().afc_comm_all_gather(ptr, dtype, data, BigInt(data.length), out, BigInt(out.length)),
      action,
    );
    return out;
  }

  /**
   * Every rank's `data` concatenated in rank order, lengths free. `counts` (every rank's
   * length) is gathered first when not given.
   */
  async allGatherV<T extends CommBuffer>(data: T, counts?: number[]): Promise<{ data: T; counts: number[] }> {
    const action = "Cannot all-gather";
    const ptr = this.#live(action);
    const dtype = dtypeOf(data, action);
    if (counts === undefined) {
      const all = await this.allGather(new BigInt64Array([BigInt(data.length)]));
      counts = Array.from(all, (c) => toSafeNumber(c, "count"));
    }
    if (counts.length !== this.size || counts[this.rank] !== data.length) {
      throw new RangeError(
        `${action}: counts [${counts}] must list ${this.size} lengths with ${data.length} at rank ${this.rank}`,
      );
    }
    const total = counts.reduce((a, b) => a + b, 0);
    const out = new (data.constructor as { new (n: number): T })(total);
    const c64 = new BigInt64Array(counts.map((c) => BigInt(c)));
    this.#check(
      await lib().afc_comm_all_gather_v(
        ptr,
        dtype,
        data,
        BigInt(data.length),
        c64,
        BigInt(c64.length),
        out,
        BigInt(total),
      ),
      action,
    );
    return { data: out, counts };
  }

  /** Copies rank `root`'s `data` to every rank, in place. */
  async broadcast(data: CommBuffer, root = 0): Promise<void> {
    const action = "Cannot broadcast";
    const ptr = this.#live(action);
    const dtype = dtypeOf(data, action);
    if (!Number.isInteger(root) || root < 0 || root >= this.size) {
      throw new RangeError(`${action}: root ${root} is outside 0..${this.size - 1}`);
    }
    this.#check(await lib().afc_comm_broadcast(ptr, dtype, data, BigInt(data.length), root), action);
  }

  /** Resolves once every rank has reached it. */
  async barrier(): Promise<void> {
    const action = "Cannot wait at the barrier";
    this.#check(await lib().afc_comm_barrier(this.#live(action)), action);
  }

  /**
   * Data parallelism: averages gradients over all ranks in place (sums, then divides by the
   * world size), in buckets of `bucketElems` values. A list of per-parameter gradients is
   * packed into one buffer for the transfer and unpacked again.
   */
  async allReduceGrads(
    grads: Float32Array<ArrayBuffer> | Float32Array<ArrayBuffer>[],
    options: { bucketElems?: number; average?: boolean } = {},
  ): Promise<void> {
    const action = "Cannot all-reduce gradients";
    const ptr = this.#live(action);
    const scale = options.average === false ? 1 : 1 / this.size;
    const bucket = toI64(options.bucketElems ?? 0, "bucket size");
    if (bucket < 0n) throw new RangeError(`${action}: bucket size ${bucket} is negative`);
    if (this.size === 1 && scale === 1) return;
    const list = Array.isArray(grads) ? grads : [grads];
    const flat = list.length === 1 ? list[0] : new Float32Array(list.reduce((n, g) => n + g.length, 0));
    if (flat !== list[0]) {
      let off = 0;
      for (const g of list) {
        flat.set(g, off);
        off += g.length;
      }
    }
    this.#check(await lib().afc_comm_all_reduce_grads(ptr, flat, BigInt(flat.length), bucket, scale), action);
    if (flat !== list[0]) {
      let off = 0;
      for (const g of list) {
        g.set(flat.subarray(off, off + g.length));
        off += g.length;
      }
    }
  }

  /** Averages every parameter gradient of `model` over all ranks, in place, in buckets. */
  async allReduceModelGrads(model: Model, bucketElems = 0): Promise<void> {
    const action = "Cannot all-reduce model gradients";
    const ptr = this.#live(action);
    this.#check(
      await lib().afc_model_all_reduce_grads(
        model.handle,
        ptr,
        toI64(bucketElems, "bucket size"),
        1 / this.size,
      ),
      action,
    );
  }

  /** @internal The native handle, for the Partial FC collectives. */
  get handle(): Deno.PointerValue {
    return this.#live("Cannot use communicator");
  }

  /** Leaves the world. Idempotent. */
  close(): void {
    if (this.#ptr === null) return;
    registry.unregister(this.#token);
    lib().afc_comm_destroy(this.#ptr);
    this.#ptr = null;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
