/**
 * arcface: face-recognition training with a native core. Re-exports the public API.
 *
 * ```ts
 * import { loadConfig, train } from "@arcface/train";
 * const result = await train(loadConfig("configs/orl_mbf.yaml", { num_epoch: 1 }));
 * console.log(result.loss, result.verification);
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
