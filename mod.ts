/**
 * arcface: face-recognition training with a native core. Re-exports the public API.
 *
 * @module
 */
export { AfcError, Status } from "./ffi/status.ts";
