/**
 * Status codes of libarcface and the one error class native failures become.
 *
 * @module
 */

/** Status codes, as in `arcface.h`. *
 * @example
 * ```ts
 * import { Status } from "./status.ts";
 * console.log(Status.OK, Status.TIMEOUT); // 0 -9
 * ```
 */
export const Status = {
  OK: 0,
  INVALID_ARGUMENT: -1,
  NOT_FOUND: -2,
  SHAPE: -3,
  OUT_OF_MEMORY: -4,
  IO: -5,
  FORMAT: -6,
  UNSUPPORTED: -7,
  BACKEND: -8,
  TIMEOUT: -9,
  NUMERIC: -10,
  STATE: -11,
  INTERNAL: -12,
} as const;

const NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(Status).map(([k, v]) => [v, k]),
);

/** An error reported by libarcface, or a call on a closed object. *
 * @example
 * ```ts
 * import { AfcError, Status } from "./status.ts";
 * const e = new AfcError('Cannot read tensor "x": it does not exist', Status.NOT_FOUND);
 * console.log(e.code, e.status); // "NOT_FOUND" -2
 * ```
 */
export class AfcError extends Error {
  /** Numeric status (negative), or 0 for errors raised on the TS side. */
  readonly status: number;
  /** Symbolic name of the status, e.g. `"NOT_FOUND"`. */
  readonly code: string;
  constructor(message: string, status: number = Status.STATE, options?: ErrorOptions) {
    super(message, options);
    this.name = "AfcError";
    this.status = status;
    this.code = NAMES[status] ?? `STATUS_${status}`;
  }
}
