/**
 * The learning-rate schedule of arcface_torch (`lr_scheduler.py`, `PolyScheduler`): linear
 * warmup from 0, then polynomial decay with power 2.
 *
 *   lr(t) = base · t / warmup                                   for t < warmup
 *   lr(t) = base · (1 − (t − warmup) / (total − warmup))^power    otherwise (0 once t ≥ total)
 *
 * `t` is the scheduler's counter (torch's `last_epoch`). As in `train_v2.py`, the optimizer
 * steps before the scheduler does, and the scheduler's construction already stepped once:
 * optimizer step n (1-based) runs with lr(max(0, n − 2)) and the log after step n shows
 * lr(n − 1). With warmup, the first two updates therefore use lr 0. Here `t` counts
 * optimizer steps (not micro-batches): with gradient accumulation over k micro-batches the
 * schedule advances once per k.
 *
 * @module
 */

/** Options of {@linkcode PolyScheduler}. */
export interface PolyOptions {
  /** The peak learning rate (config `lr`). */
  baseLr: number;
  /** Total optimizer steps. */
  totalSteps: number;
  /** Warmup steps (0: none). */
  warmupSteps: number;
  /** Decay power (arcface_torch: 2). */
  power?: number;
}

/** The default decay power, as arcface_torch's PolyScheduler. */
export const POLY_POWER = 2;

/** lr(t) in closed form. *
 * @example
 * ```ts
 * import { polyLr } from "./schedule.ts";
 * const o = { baseLr: 0.1, totalSteps: 100, warmupSteps: 20 };
 * console.log(polyLr(10, o), polyLr(20, o), polyLr(60, o)); // 0.05 0.1 0.025
 * ```
 */
export function polyLr(t: number, o: PolyOptions): number {
  const power = o.power ?? POLY_POWER;
  if (t < o.warmupSteps) return (o.baseLr * t) / o.warmupSteps;
  if (t >= o.totalSteps) return 0;
  return o.baseLr * Math.pow(1 - (t - o.warmupSteps) / (o.totalSteps - o.warmupSteps), power);
}

/**
 * A stateful scheduler used like the seed's: read `lr` for the optimizer step, then call
 * `step()`. `lastEpoch` is saved and restored with checkpoints.
 *
 * @example
 * ```ts
 * import { PolyScheduler } from "./schedule.ts";
 * const s = new PolyScheduler({ baseLr: 0.1, totalSteps: 100, warmupSteps: 10 });
 * const first = s.lr; // the lr of optimizer step 1
 * s.step();
 * console.log(first, s.lr); // 0 0
 * ```
 */
export class PolyScheduler {
  readonly options: Readonly<Required<PolyOptions>>;
  /** torch's `last_epoch`: −1 after construction. */
  lastEpoch: number;
  #lr: number;

  constructor(options: PolyOptions, lastEpoch = -1) {
    const { baseLr, totalSteps, warmupSteps } = options;
    if (!(baseLr >= 0) || !Number.isFinite(baseLr)) {
      throw new RangeError(`Invalid lr "${baseLr}": expected a non-negative number`);
    }
    if (!Number.isSafeInteger(totalSteps) || totalSteps <= 0) {
      throw new RangeError(`Invalid total steps "${totalSteps}": expected a positive integer`);
    }
    if (!Number.isSafeInteger(warmupSteps) || warmupSteps < 0 || warmupSteps >= totalSteps) {
      throw new RangeError(
        `Invalid warmup steps "${warmupSteps}": expected an integer in [0, ${totalSteps}) (warmup must end before training does)`,
      );
    }
    this.options = Object.freeze({ power: POLY_POWER, ...options });
    this.lastEpoch = lastEpoch;
    // torch's constructor steps once (lr(0)) and the seed then resets last_epoch.
    this.#lr = polyLr(Math.max(0, lastEpoch), this.options);
  }

  /** The learning rate the next optimizer step uses. */
  get lr(): number {
    return this.#lr;
  }

  /** Advances the counter after an optimizer step; returns the new lr (what the seed logs). */
  step(): number {
    this.lastEpoch += 1;
    this.#lr = polyLr(this.lastEpoch, this.options);
    return this.#lr;
  }
}
