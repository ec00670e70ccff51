/**
 * Where a training process stands among its peers, read from the environment the way
 * torchrun and Slurm set it, and joining the world through a rendezvous store.
 *
 * - This project's launcher and torchrun: `RANK`, `WORLD_SIZE`, `LOCAL_RANK`,
 *   `LOCAL_WORLD_SIZE`; the store is `ARCFACE_RDZV` (a shared directory or
 *   `redis://host:port`), else `redis://MASTER_ADDR:MASTER_PORT`.
 * - Slurm: `SLURM_PROCID`, `SLURM_NTASKS`, `SLURM_LOCALID`, `SLURM_NTASKS_PER_NODE`.
 * - Neither: one process.
 *
 * @module
 */
import { Comm, DEFAULT_TIMEOUT_MS } from "./comm.ts";
import type { World } from "./trainer.ts";
import { ConfigError } from "./config.ts";

/** A world description before joining: ranks plus where to meet. */
export interface WorldSpec {
  rank: number;
  worldSize: number;
  localRank: number;
  localWorldSize: number;
  /** Rendezvous store (needed when worldSize > 1). */
  store?: string;
  /** Namespace of this run in the store. */
  runId: string;
  /** Rendezvous and collective timeout, ms. */
  timeoutMs: number;
  /** Address this rank listens on (default 127.0.0.1). */
  address?: string;
}

function int(env: Record<string, string | undefined>, key: string): number | undefined {
  const v = env[key];
  if (v === undefined || v === "") return undefined;
  if (!/^\d+$/.test(v)) {
    throw new ConfigError(`Invalid environment variable ${key}="${v}": expected a non-negative integer`);
  }
  return Number(v);
}

/** Reads the world from `env` (default: the process environment). */
export function worldFromEnv(env: Record<string, string | undefined> = Deno.env.toObject()): WorldSpec {
  let rank = int(env, "RANK"), worldSize = int(env, "WORLD_SIZE");
  let localRank = int(env, "LOCAL_RANK"), localWorldSize = int(env, "LOCAL_WORLD_SIZE");
  let source = "RANK/WORLD_SIZE";
  if (rank === undefined && worldSize === undefined && env.SLURM_PROCID !== undefined) {
    source = "SLURM_PROCID/SLURM_NTASKS";
    rank = int(env, "SLURM_PROCID");
    worldSize = int(env, "SLURM_NTASKS");
    localRank = int(env, "SLURM_LOCALID");
    // "4" or "4(x2)": tasks on each node.
    const perNode = /^(\d+)/.exec(env.SLURM_NTASKS_PER_NODE ?? env.SLURM_TASKS_PER_NODE ?? "")?.[1];
    localWorldSize = perNode ? Number(perNode) : undefined;
  }
  rank ??= 0;
  worldSize ??= 1;
  localRank ??= worldSize === 1 ? 0 : rank;
  localWorldSize ??= worldSize;
  if (worldSize < 1 || rank >= worldSize) {
    throw new ConfigError(
      `Invalid ${source}: rank ${rank} of world size ${worldSize} (expected 0 <= rank < size)`,
    );
  }
  if (localRank >= localWorldSize) {
    throw new ConfigError(
      `Invalid local rank ${localRank}: expected below the ${localWorldSize} ranks on this machine`,
    );
  }
  let store = env.ARCFACE_RDZV;
  if (!store && env.MASTER_ADDR && env.MASTER_PORT) store = `redis://${env.MASTER_ADDR}:${env.MASTER_PORT}`;
  if (worldSize > 1 && !store) {
    throw new ConfigError(
      `Cannot join a world of ${worldSize} processes: no rendezvous store (set ARCFACE_RDZV to a shared directory or redis://host:port, or MASTER_ADDR and MASTER_PORT of a Redis server)`,
    );
  }
  const runId = env.ARCFACE_RUN_ID ?? env.TORCHELASTIC_RUN_ID ?? env.SLURM_JOB_ID ?? "arcface";
  const timeoutMs = int(env, "ARCFACE_TIMEOUT_MS") ?? DEFAULT_TIMEOUT_MS;
  return {
    rank,
    worldSize,
    localRank,
    localWorldSize,
    store,
    runId,
    timeoutMs,
    address: env.ARCFACE_ADDRESS,
  };
}

/** Joins the world of `spec`; disposing the result leaves it. */
export async function joinWorld(spec: WorldSpec): Promise<{ world: World } & Disposable> {
  const comm = spec.worldSize > 1
    ? await Comm.create({
      rank: spec.rank,
      worldSize: spec.worldSize,
      store: spec.store,
      runId: spec.runId,
      timeoutMs: spec.timeoutMs,
      address: spec.address,
    })
    : undefined;
  const { rank, worldSize, localRank, localWorldSize } = spec;
  return {
    world: { rank, worldSize, localRank, localWorldSize, comm },
    [Symbol.dispose]: () => comm?.close(),
  };
}
