/**
 * arcface: face-recognition training with a native core. Re-exports the public API.
 *
 * ```ts
 * import { loadConfig, train } from "./mod.ts"; // "@arcface/train" from JSR
 * const config = loadConfig("configs/orl_mbf.yaml", {
 *   num_image: 60, // a short run: 2 steps of 30 images, no verification
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
export { AfcError, Status } from "./ffi/status.ts";
export { ensureLibrary } from "./ffi/load.ts";
export { ConfigError, loadConfig, parseOverrides, SCHEMA, schemaMarkdown } from "./lib/config.ts";
export type { Config, Derived, LoadOptions, SchemaEntry, UserConfig } from "./lib/config.ts";
export { train } from "./lib/trainer.ts";
export type { TrainOptions, TrainResult, VerificationFigures, World } from "./lib/trainer.ts";
export { Model } from "./lib/model.ts";
export type { ModelInfo, ModelOptions, TensorInfo } from "./lib/model.ts";
export { embed } from "./lib/embed.ts";
export type { EmbedImagesOptions, ImageInput, RgbImage } from "./lib/embed.ts";
export { decodeSet, readBin, verify, writeBin } from "./lib/verification.ts";
export type { DecodedSet, VerificationResult, VerificationSet } from "./lib/verification.ts";
export { Dataset, openDataset } from "./lib/data.ts";
export { polyLr, PolyScheduler } from "./lib/schedule.ts";
export { clipCoefficient, Margin, marginName, Optimizer, PartialFC, sumSquares } from "./lib/head.ts";
export type { HeadStep, MarginOptions, OptimizerOptions, PartialFCOptions } from "./lib/head.ts";
export { Comm } from "./lib/comm.ts";
export type { CommBuffer, CommOptions, ReduceOp } from "./lib/comm.ts";
export { joinWorld, worldFromEnv } from "./lib/launch.ts";
export type { WorldSpec } from "./lib/launch.ts";
