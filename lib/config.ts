/**
 * Training configuration: YAML → validated, frozen, typed object.
 *
 * Resolution order (later wins): the schema's defaults (arcface_torch `configs/base.py`),
 * `base.yaml` beside the run file, the run file, then overrides (`--key=value` strings from
 * the command line, or an object). Unknown keys are errors with a "did you mean"
 * suggestion; a wrong type names the key and both types. Values computed from the user's
 * (world size, steps per epoch, total and warmup steps, output folder) live apart, in
 * `config.derived`.
 *
 * ```ts
 * const cfg = loadConfig("configs/ms1mv3_r50.yaml", ["--lr=0.05"], { worldSize: 8 });
 * console.log(cfg.lr, cfg.derived.totalSteps, cfg.derived.warmupSteps);
 * ```
 *
 * @module
 */
import { parseYaml as parse } from "./deps.ts";

/** The value types a key may have. */
export type KeyType = "string" | "string?" | "number" | "integer" | "boolean" | "string[]" | "margin";

/** One documented configuration key. */
export interface SchemaEntry {
  readonly key: string;
  readonly type: KeyType;
  /** The default; `undefined` means the run file must set it. */
  readonly default: unknown;
  /** What it means, one sentence. */
  readonly doc: string;
  /** Allowed values, for strings. */
  readonly choices?: readonly string[];
  /** Inclusive bounds, for numbers. */
  readonly min?: number;
  readonly max?: number;
}

const e = (
  key: string,
  type: KeyType,
  def: unknown,
  doc: string,
  extra: Partial<SchemaEntry> = {},
): SchemaEntry => Object.freeze({ key, type, default: def, doc, ...extra });

/** Every key, its type, default and meaning (arcface_torch's names; ours marked). *
 * @example
 * ```ts
 * import { SCHEMA } from "./config.ts";
 * console.log(SCHEMA.find((k) => k.key === "sample_rate")?.default); // 1
 * ```
 */
export const SCHEMA: readonly SchemaEntry[] = Object.freeze([
  e(
    "margin_list",
    "margin",
    [1.0, 0.5, 0.0],
    "Margin (m1, m2, m3) of s·(cos(m1·θ + m2) − m3): ArcFace (1, 0.5, 0), CosFace (1, 0, 0.4).",
  ),
  e(
    "network",
    "string",
    "r50",
    "Backbone: r18, r34, r50, r100, r200, r2060, mbf (vit_* are read but not built).",
  ),
  e(
    "resume",
    "boolean",
    false,
    "Continue from the output folder's checkpoints (other rank counts: see Several machines).",
  ),
  e(
    "save_all_states",
    "boolean",
    false,
    "Write a checkpoint after every epoch; else only a stop does, and finishing removes it.",
  ),
  e("output", "string?", "ms1mv3_arcface_r50", "Output folder; null: work_dirs/<config file name>."),
  e("embedding_size", "integer", 512, "Embedding (feature) size.", { min: 1 }),
  e(
    "sample_rate",
    "number",
    1.0,
    "Partial FC: share of negative class centres sampled per step, in (0, 1].",
    { min: 0, max: 1 },
  ),
  e("interclass_filtering_threshold", "number", 0, "Zero non-target cosines above this (0: off).", {
    min: 0,
    max: 1,
  }),
  e("fp16", "boolean", false, "Mixed precision with dynamic loss scaling (the CPU backend runs fp32)."),
  e("batch_size", "integer", 128, "Images per rank per step.", { min: 1 }),
  e("optimizer", "string", "sgd", "Optimizer: sgd or adamw.", { choices: ["sgd", "adamw"] }),
  e("lr", "number", 0.1, "Peak learning rate (after warmup).", { min: 0 }),
  e("momentum", "number", 0.9, "SGD momentum.", { min: 0, max: 0.999999 }),
  e("weight_decay", "number", 5e-4, "Weight decay (SGD: L2 added to the gradient; AdamW: decoupled).", {
    min: 0,
  }),
  e("verbose", "integer", 2000, "Run verification every this many steps.", { min: 1 }),
  e("frequent", "integer", 10, "Log every this many steps.", { min: 1 }),
  e("dali", "boolean", false, "Use NVIDIA DALI for loading (not available: must be false).", {}),
  e("gradient_acc", "integer", 1, "Micro-batches accumulated per optimizer step; gradients are averaged.", {
    min: 1,
  }),
  e("seed", "integer", 2048, "Random seed.", { min: 0 }),
  e("num_workers", "integer", 2, "Loader threads.", { min: 0 }),
  e("rec", "string", undefined, "Training data folder holding train.rec and train.idx."),
  e("num_classes", "integer", undefined, "Number of identities.", { min: 1 }),
  e("num_image", "integer", undefined, "Number of training images.", { min: 1 }),
  e("num_epoch", "integer", undefined, "Epochs to train.", { min: 1 }),
  e("warmup_epoch", "integer", 0, "Epochs of linear learning-rate warmup.", { min: 0 }),
  e(
    "val_targets",
    "string[]",
    [],
    "Verification sets (.bin names in the rec folder), e.g. lfw, cfp_fp, agedb_30.",
  ),
  e(
    "wandb_key",
    "string",
    "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
    "Weights & Biases key (accepted for compatibility; unused).",
  ),
  e("suffix_run_name", "string?", null, "Weights & Biases run-name suffix (unused)."),
  e("using_wandb", "boolean", false, "Log to Weights & Biases (unused: must be false)."),
  e("wandb_entity", "string", "entity", "Weights & Biases entity (unused)."),
  e("wandb_project", "string", "project", "Weights & Biases project (unused)."),
  e("wandb_log_all", "boolean", true, "Weights & Biases: log everything (unused)."),
  e("save_artifacts", "boolean", false, "Weights & Biases artifacts (unused)."),
  e("wandb_resume", "boolean", false, "Resume the Weights & Biases run (unused)."),
  // Ours.
  e("scale", "number", 64, "Ours: margin scale s (arcface_torch fixes 64).", { min: 0 }),
  e(
    "loss_straight_through",
    "boolean",
    false,
    "Ours: pass ∂logit/∂cos = s for the target (detached margin) instead of the true gradient.",
  ),
  e("lr_power", "number", 2, "Ours: power of the polynomial decay (arcface_torch: 2).", { min: 0 }),
  e("max_grad_norm", "number", 5, "Ours: global-norm clipping of the backbone gradient (arcface_torch: 5).", {
    min: 0,
  }),
  e("threads", "integer", 0, "Ours: compute threads per rank (0: cores / local ranks).", { min: 0 }),
]);

const BY_KEY = new Map(SCHEMA.map((s) => [s.key, s]));

/** The user's values, typed. */
export interface UserConfig {
  readonly margin_list: readonly [number, number, number];
  readonly network: string;
  readonly resume: boolean;
  readonly save_all_states: boolean;
  readonly output: string | null;
  readonly embedding_size: number;
  readonly sample_rate: number;
  readonly interclass_filtering_threshold: number;
  readonly fp16: boolean;
  readonly batch_size: number;
  readonly optimizer: "sgd" | "adamw";
  readonly lr: number;
  readonly momentum: number;
  readonly weight_decay: number;
  readonly verbose: number;
  readonly frequent: number;
  readonly dali: boolean;
  readonly gradient_acc: number;
  readonly seed: number;
  readonly num_workers: number;
  readonly rec: string;
  readonly num_classes: number;
  readonly num_image: number;
  readonly num_epoch: number;
  readonly warmup_epoch: number;
  readonly val_targets: readonly string[];
  readonly wandb_key: string;
  readonly suffix_run_name: string | null;
  readonly using_wandb: boolean;
  readonly wandb_entity: string;
  readonly wandb_project: string;
  readonly wandb_log_all: boolean;
  readonly save_artifacts: boolean;
  readonly wandb_resume: boolean;
  readonly scale: number;
  readonly loss_straight_through: boolean;
  readonly lr_power: number;
  readonly max_grad_norm: number;
  readonly threads: number;
}

/** Values computed from the user's; logged at start-up. */
export interface Derived {
  /** Ranks taking part (WORLD_SIZE, SLURM_NTASKS or 1). */
  readonly worldSize: number;
  /** batch_size × worldSize: images per micro-batch over all ranks. */
  readonly totalBatchSize: number;
  /** Micro-batches per epoch: num_image // totalBatchSize (the loader drops the rest). */
  readonly microBatchesPerEpoch: number;
  /** Optimizer steps per epoch: microBatchesPerEpoch / gradient_acc. */
  readonly stepsPerEpoch: number;
  /** Optimizer steps in the run; the LR schedule counts these. */
  readonly totalSteps: number;
  /** Optimizer steps of linear warmup. */
  readonly warmupSteps: number;
  /** The output folder (output, or work_dirs/<config name>). */
  readonly outputDir: string;
}

/** A resolved configuration: the user's values plus `derived` and where it came from. */
export type Config = UserConfig & { readonly derived: Derived; readonly source: string };

/** Options of {@linkcode loadConfig}. */
export interface LoadOptions {
  /** Number of ranks (default: WORLD_SIZE or SLURM_NTASKS from the environment, else 1). */
  worldSize?: number;
}

/** A configuration error: the message names the file, the key and the fix. *
 * @example
 * ```ts
 * import { ConfigError, loadConfig } from "./config.ts";
 * try {
 *   loadConfig("configs/orl_mbf.yaml", ["--lr_rate=0.1"]);
 * } catch (e) {
 *   console.log(e instanceof ConfigError, (e as Error).message); // … unknown key "lr_rate" (did you mean "lr"?)
 * }
 * ```
 */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** Edit distance, for "did you mean". */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
  }
  return d[a.length][b.length];
}

/** The closest known key, if it is close enough to be a likely typo. */
export function suggestKey(key: string): string | undefined {
  let best: string | undefined, bestD = Infinity;
  for (const k of BY_KEY.keys()) {
    const d = Math.min(distance(key, k), k.includes(key) || key.includes(k) ? 1 : Infinity);
    if (d < bestD) [best, bestD] = [k, d];
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(key.length / 3)) ? best : undefined;
}

function typeName(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "number") {
    return !Number.isFinite(v) ? "a number out of range" : Number.isInteger(v) ? "an integer" : "a number";
  }
  if (typeof v === "string") return "a string";
  if (typeof v === "boolean") return "a boolean";
  return `a ${typeof v}`;
}

const EXPECTED: Record<KeyType, string> = {
  "string": "a string",
  "string?": "a string or null",
  "number": "a number",
  "integer": "an integer",
  "boolean": "a boolean (true or false)",
  "string[]": "a list of strings",
  "margin": "a list of three numbers [m1, m2, m3]",
};

function checkValue(s: SchemaEntry, v: unknown, where: string): unknown {
  const bad = () =>
    new ConfigError(
      `${where}: key "${s.key}" must be ${EXPECTED[s.type]}, got ${typeName(v)} (${
        typeof v === "number" ? String(v) : JSON.stringify(v)
      })`,
    );
  switch (s.type) {
    case "string":
      if (typeof v !== "string") throw bad();
      if (s.choices && !s.choices.includes(v)) {
        throw new ConfigError(
          `${where}: key "${s.key}" is "${v}", expected one of ${s.choices.map((c) => `"${c}"`).join(", ")}`,
        );
      }
      return v;
    case "string?":
      if (v !== null && typeof v !== "string") throw bad();
      return v;
    case "boolean":
      if (typeof v !== "boolean") throw bad();
      return v;
    case "number":
    case "integer":
      if (
        typeof v !== "number" || !Number.isFinite(v) || (s.type === "integer" && !Number.isSafeInteger(v))
      ) throw bad();
      if ((s.min !== undefined && v < s.min) || (s.max !== undefined && v > s.max)) {
        throw new ConfigError(
          `${where}: key "${s.key}" is ${v}, expected a value in [${s.min ?? "-inf"}, ${s.max ?? "inf"}]`,
        );
      }
      return v;
    case "string[]":
      if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) throw bad();
      return Object.freeze([...v]);
    case "margin":
      if (
        !Array.isArray(v) || v.length !== 3 || v.some((x) => typeof x !== "number" || !Number.isFinite(x))
      ) throw bad();
      return Object.freeze([...v]);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Deep merge: objects merge key by key, anything else (lists included) replaces. */
export function deepMerge(
  base: Record<string, unknown>,
  over: Record<string, unknown>,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    out[k] = isObject(v) && isObject(out[k]) ? deepMerge(out[k] as Record<string, unknown>, v) : v;
  }
  return out;
}

function checkKeys(obj: Record<string, unknown>, where: string): void {
  for (const k of Object.keys(obj)) {
    if (BY_KEY.has(k)) continue;
    const hint = suggestKey(k);
    throw new ConfigError(
      `${where}: unknown key "${k}"${
        hint ? ` (did you mean "${hint}"?)` : " (see the configuration reference for the keys)"
      }`,
    );
  }
}

/**
 * Parses `--key=value` arguments into typed values (by the schema): strings stay as
 * written, other types are read as YAML (`--margin_list=[1,0,0.4]`, `--fp16=true`).
 *
 * @example
 * ```ts
 * import { parseOverrides } from "./config.ts";
 * console.log(parseOverrides(["--lr=0.05", "--margin_list=[1,0,0.4]"])); // { lr: 0.05, margin_list: [1, 0, 0.4] }
 * ```
 */
export function parseOverrides(args: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const a of args) {
    const m = /^--([A-Za-z_][\w]*)=(.*)$/s.exec(a);
    if (!m) throw new ConfigError(`Cannot parse override "${a}": expected --key=value`);
    const [, key, raw] = m;
    const s = BY_KEY.get(key);
    if (!s) {
      const hint = suggestKey(key);
      throw new ConfigError(
        `Cannot apply override "${a}": unknown key "${key}"${hint ? ` (did you mean "${hint}"?)` : ""}`,
      );
    }
    if (s.type === "string") out[key] = raw;
    else if (s.type === "string?") out[key] = raw === "null" ? null : raw;
    else {
      try {
        out[key] = parse(raw);
      } catch (err) {
        throw new ConfigError(
          `Cannot apply override "${a}": value is not valid YAML (${(err as Error).message})`,
        );
      }
    }
  }
  return out;
}

function readYaml(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (err) {
    throw new ConfigError(`Cannot load config "${path}": ${(err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (err) {
    throw new ConfigError(
      `Cannot load config "${path}": invalid YAML (${(err as Error).message.split("\n")[0]})`,
    );
  }
  if (doc === null || doc === undefined) return {};
  if (!isObject(doc)) {
    throw new ConfigError(
      `Cannot load config "${path}": expected a mapping of keys to values, got ${typeName(doc)}`,
    );
  }
  return doc;
}

function envWorldSize(): number {
  try {
    const v = Deno.env.get("WORLD_SIZE") ?? Deno.env.get("SLURM_NTASKS");
    if (v !== undefined && /^\d+$/.test(v) && Number(v) > 0) return Number(v);
  } catch {
    // no env permission: one process
  }
  return 1;
}

function dirname(p: string): string {
  const i = p.lastIndexOf("/");
  return i < 0 ? "." : i === 0 ? "/" : p.slice(0, i);
}

function stem(p: string): string {
  return p.slice(p.lastIndexOf("/") + 1).replace(/\.ya?ml$/i, "");
}

/** The values computed from the user's; throws for a run that cannot make one step. */
export function deriveValues(c: UserConfig, name: string, where: string, worldSize: number): Derived {
  if (!Number.isSafeInteger(worldSize) || worldSize < 1) {
    throw new RangeError(`Invalid world size "${worldSize}": expected a positive integer`);
  }
  const totalBatchSize = c.batch_size * worldSize;
  const micro = Math.floor(c.num_image / totalBatchSize);
  if (micro < 1) {
    throw new ConfigError(
      `${where}: num_image ${c.num_image} is too small for one step of ${totalBatchSize} images (batch_size ${c.batch_size} × ${worldSize} ranks): lower batch_size`,
    );
  }
  if (micro % c.gradient_acc !== 0) {
    throw new ConfigError(
      `${where}: ${micro} micro-batches per epoch do not divide into gradient_acc ${c.gradient_acc} windows: choose a gradient_acc that divides ${micro}`,
    );
  }
  const stepsPerEpoch = micro / c.gradient_acc;
  const totalSteps = stepsPerEpoch * c.num_epoch;
  const warmupSteps = stepsPerEpoch * c.warmup_epoch;
  if (warmupSteps >= totalSteps) {
    throw new ConfigError(
      `${where}: warmup_epoch ${c.warmup_epoch} is not shorter than num_epoch ${c.num_epoch} (${warmupSteps} warmup of ${totalSteps} steps): lower warmup_epoch`,
    );
  }
  const outputDir = c.output ?? `work_dirs/${name}`;
  return Object.freeze({
    worldSize,
    totalBatchSize,
    microBatchesPerEpoch: micro,
    stepsPerEpoch,
    totalSteps,
    warmupSteps,
    outputDir,
  });
}

/**
 * Loads a configuration: a YAML path (merged over `base.yaml` beside it, if present) or an
 * object (merged over the defaults), then `overrides` (`--key=value` strings or an object).
 * Returns a frozen, validated, typed object with `derived` values.
 *
 * @example
 * ```ts
 * import { loadConfig } from "./config.ts";
 * const config = loadConfig("configs/orl_mbf.yaml", ["--lr=0.05"]);
 * console.log(config.lr, config.derived.totalSteps); // 0.05 300
 * ```
 */
export function loadConfig(
  pathOrObject: string | Record<string, unknown>,
  overrides: readonly string[] | Record<string, unknown> = {},
  options: LoadOptions = {},
): Config {
  let merged: Record<string, unknown> = {};
  for (const s of SCHEMA) if (s.default !== undefined) merged[s.key] = s.default;
  let source: string, name: string, where: string;
  if (typeof pathOrObject === "string") {
    source = pathOrObject;
    name = stem(pathOrObject);
    where = `Cannot load config "${pathOrObject}"`;
    const basePath = `${dirname(pathOrObject)}/base.yaml`;
    if (stem(pathOrObject) !== "base") {
      let hasBase = false;
      try {
        hasBase = Deno.statSync(basePath).isFile;
      } catch {
        hasBase = false;
      }
      if (hasBase) {
        const base = readYaml(basePath);
        checkKeys(base, `Cannot load config "${basePath}"`);
        merged = deepMerge(merged, base);
      }
    }
    const run = readYaml(pathOrObject);
    checkKeys(run, where);
    merged = deepMerge(merged, run);
  } else {
    if (!isObject(pathOrObject)) {
      throw new TypeError("Cannot load config: expected a path or an object of keys to values");
    }
    source = "<object>";
    name = "run";
    where = "Cannot load config";
    checkKeys(pathOrObject, where);
    merged = deepMerge(merged, pathOrObject);
  }
  const over = Array.isArray(overrides) ? parseOverrides(overrides) : overrides as Record<string, unknown>;
  checkKeys(over, `${where} with overrides`);
  merged = deepMerge(merged, over);

  // A bad value from an override is the override's mistake, not the file's.
  const whereFor = (key: string) => key in over ? `Cannot apply override --${key}` : where;
  const values: Record<string, unknown> = {};
  for (const s of SCHEMA) {
    if (merged[s.key] === undefined) {
      throw new ConfigError(
        `${where}: missing key "${s.key}" (${
          s.doc.replace(/\.$/, "")
        }; set it in the file or with --${s.key}=...)`,
      );
    }
    values[s.key] = checkValue(s, merged[s.key], whereFor(s.key));
  }
  const user = values as unknown as UserConfig;
  if (user.dali) {
    throw new ConfigError(`${where}: key "dali" is true, but DALI is not available here: set dali to false`);
  }
  if (user.using_wandb) {
    throw new ConfigError(
      `${where}: key "using_wandb" is true, but Weights & Biases is not supported: set it to false`,
    );
  }
  if (user.sample_rate <= 0) {
    throw new ConfigError(`${whereFor("sample_rate")}: key "sample_rate" is 0, expected a value in (0, 1]`);
  }
  const derived = deriveValues(user, name, where, options.worldSize ?? envWorldSize());
  return Object.freeze({ ...user, derived, source });
}

/** The configuration reference as a Markdown table (for the README). *
 * @example
 * ```ts
 * import { schemaMarkdown } from "./config.ts";
 * console.log(schemaMarkdown().split("\n")[0]); // | key | type | default | meaning |
 * ```
 */
export function schemaMarkdown(): string {
  const rows = SCHEMA.map((s) =>
    `| \`${s.key}\` | ${s.type} | ${
      s.default === undefined ? "required" : `\`${JSON.stringify(s.default)}\``
    } | ${s.doc} |`
  );
  return ["| key | type | default | meaning |", "| --- | --- | --- | --- |", ...rows].join("\n");
}
