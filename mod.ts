/**
 * arcface: face-recognition training with a native core. Re-exports the public API.
 *
 * @module
 */
export { AfcError, Status } from "./ffi/status.ts";
export { ConfigError, loadConfig, parseOverrides, SCHEMA, schemaMarkdown } from "./lib/config.ts";
export type { Config, Derived, LoadOptions, SchemaEntry, UserConfig } from "./lib/config.ts";
export { polyLr, PolyScheduler } from "./lib/schedule.ts";
export { clipCoefficient, Margin, marginName, Optimizer, PartialFC, sumSquares } from "./lib/head.ts";
export type { HeadStep, MarginOptions, OptimizerOptions, PartialFCOptions } from "./lib/head.ts";
