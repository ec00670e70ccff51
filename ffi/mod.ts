/**
 * Typed helpers over the raw symbols: status checking, C strings, out-parameters and
 * safe 64-bit conversion. `lib/` uses these and never touches pointers itself.
 *
 * @module
 */
import { lib } from "./load.ts";
import { AfcError, Status } from "./status.ts";

export { lib } from "./load.ts";
export { AfcError, Status } from "./status.ts";

/** Reads a NUL-terminated C string, or `null` for a NULL pointer. */
export function cString(ptr: Deno.PointerValue): string | null {
  return ptr === null ? null : Deno.UnsafePointerView.getCString(ptr);
}

/** Throws an `AfcError` for a non-zero status, with the library's detail text. */
export function check(status: number, action: string): void {
  if (status === Status.OK) return;
  const l = lib();
  const detail = cString(l.afc_last_error()) ?? cString(l.afc_status_string(status)) ?? "";
  throw new AfcError(`${action}: ${detail}`, status);
}

/** Reads an `afc_<object>_error`-style text (sized like describe), or "" when it cannot. */
export function readText(
  fill: (buf: Uint8Array<ArrayBuffer> | null, cap: bigint, needed: BigInt64Array) => number,
): string {
  const needed = new BigInt64Array(1);
  if (fill(null, 0n, needed) !== Status.OK) return "";
  const buf = new Uint8Array(toSafeNumber(needed[0], "text length"));
  if (fill(buf, BigInt(buf.length), needed) !== Status.OK) return "";
  return new TextDecoder().decode(buf.subarray(0, buf.length - 1));
}

/**
 * `check` for a call that ran on a worker thread (nonblocking): the detail comes from the
 * object's own copy (`readError`), since that thread's afc_last_error() is out of reach.
 */
export function checkOn(
  status: number,
  action: string,
  readError: (buf: Uint8Array<ArrayBuffer> | null, cap: bigint, needed: BigInt64Array) => number,
): void {
  if (status === Status.OK) return;
  const detail = readText(readError) || (cString(lib().afc_status_string(status)) ?? "");
  throw new AfcError(`${action}: ${detail}`, status);
}

/** A NUL-terminated UTF-8 copy of `s` for a `buffer` parameter. */
export function cStr(s: string): Uint8Array<ArrayBuffer> {
  const bytes = new TextEncoder().encode(s);
  if (bytes.includes(0)) throw new TypeError(`Cannot pass string "${s}": it contains a NUL byte`);
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  return out;
}

/** Out-parameter holding one pointer. */
export class PtrOut {
  readonly buf = new BigUint64Array(1);
  get value(): Deno.PointerValue {
    return Deno.UnsafePointer.create(this.buf[0]);
  }
}

/**
 * Converts a bigint to a number, refusing values a number cannot hold exactly.
 * The one place where 64-bit values become numbers.
 */
export function toSafeNumber(v: bigint, what: string): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw new RangeError(
      `Cannot convert ${what} ${v} to a number: it exceeds 2^53 - 1 (keep it as a bigint)`,
    );
  }
  return Number(v);
}

/** Converts a count/offset to bigint for an `i64` parameter, refusing unsafe numbers. */
export function toI64(v: number | bigint, what: string): bigint {
  if (typeof v === "bigint") {
    if (v !== BigInt.asIntN(64, v)) {
      throw new RangeError(`Invalid ${what} ${v}: expected a signed 64-bit integer`);
    }
    return v;
  }
  if (!Number.isSafeInteger(v)) {
    throw new RangeError(`Invalid ${what} ${v}: expected an integer within ±(2^53 - 1), or a bigint`);
  }
  return BigInt(v);
}

/** Checks a value for a `u32` parameter: never truncated. */
export function toU32(v: number, what: string): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
    throw new RangeError(`Invalid ${what} ${v}: expected an integer in 0..4294967295`);
  }
  return v;
}

/** Calls a describe-style function twice (size, then fill) and parses its JSON. */
export function readJson(
  fill: (buf: Uint8Array<ArrayBuffer> | null, cap: bigint, needed: BigInt64Array) => number,
  action: string,
): unknown {
  const needed = new BigInt64Array(1);
  check(fill(null, 0n, needed), action);
  const buf = new Uint8Array(toSafeNumber(needed[0], "JSON length"));
  check(fill(buf, BigInt(buf.length), needed), action);
  return JSON.parse(new TextDecoder().decode(buf.subarray(0, buf.length - 1)));
}
