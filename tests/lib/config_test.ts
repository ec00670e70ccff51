import assert from "node:assert/strict";
import {
  ConfigError,
  deepMerge,
  loadConfig,
  parseOverrides,
  SCHEMA,
  schemaMarkdown,
  suggestKey,
} from "../../lib/config.ts";
import { parse } from "yaml";

const dir = new URL("../../configs/", import.meta.url).pathname;

Deno.test("base.yaml holds exactly the schema's defaults", () => {
  const base = parse(Deno.readTextFileSync(`${dir}base.yaml`)) as Record<string, unknown>;
  const withDefault = SCHEMA.filter((s) => s.default !== undefined);
  assert.deepEqual(Object.keys(base).sort(), withDefault.map((s) => s.key).sort());
  for (const s of withDefault) assert.deepEqual(base[s.key], s.default, s.key);
});

Deno.test("every shipped config loads, and ms1mv3_r50 resolves like arcface_torch", () => {
  for (const f of Deno.readDirSync(dir)) {
    if (f.name.endsWith(".yaml") && f.name !== "base.yaml") {
      loadConfig(`${dir}${f.name}`, {}, { worldSize: 8 });
    }
  }
  const c = loadConfig(`${dir}ms1mv3_r50.yaml`, {}, { worldSize: 8 });
  assert.equal(c.lr, 0.2);
  assert.deepEqual(c.margin_list, [1, 0.5, 0]);
  assert.equal(c.gradient_acc, 1); // from base
  assert.equal(c.seed, 2048);
  // train_v2.py: num_image // (batch_size·world) per epoch, times epochs
  assert.equal(c.derived.totalBatchSize, 1024);
  assert.equal(c.derived.stepsPerEpoch, Math.floor(5179510 / 1024));
  assert.equal(c.derived.totalSteps, 5058 * 25);
  assert.equal(c.derived.warmupSteps, 5058 * 2);
  assert.equal(c.derived.outputDir, "work_dirs/ms1mv3_r50");
  assert.ok(Object.isFrozen(c) && Object.isFrozen(c.derived) && Object.isFrozen(c.margin_list));
});

Deno.test("the ORL default trains on the shipped data in a few hundred steps", () => {
  const c = loadConfig(`${dir}orl_mbf.yaml`, {}, { worldSize: 1 });
  assert.equal(c.network, "mbf");
  assert.equal(c.rec, "data/orl");
  assert.equal(c.derived.stepsPerEpoch, 10);
  assert.equal(c.derived.totalSteps, 300);
  assert.equal(c.derived.warmupSteps, 20);
});

Deno.test("--key=value overrides are typed by the schema and win over the file", () => {
  const c = loadConfig(`${dir}glint360k_r100.yaml`, [
    "--lr=0.05",
    "--batch_size=64",
    "--margin_list=[1, 0.5, 0]",
    "--fp16=false",
    "--network=r50",
  ], { worldSize: 1 });
  assert.equal(c.lr, 0.05);
  assert.equal(c.batch_size, 64);
  assert.deepEqual(c.margin_list, [1, 0.5, 0]);
  assert.equal(c.fp16, false);
  assert.equal(c.network, "r50");
  assert.deepEqual(parseOverrides(["--output=null", "--rec=123"]), { output: null, rec: "123" });
});

Deno.test("unknown keys fail with a did-you-mean suggestion, in files and overrides", () => {
  assert.throws(
    () => loadConfig({ lr_rate: 0.1, rec: "x", num_classes: 2, num_image: 10, num_epoch: 1 }),
    (e: unknown) =>
      e instanceof ConfigError &&
      e.message === 'Cannot load config: unknown key "lr_rate" (did you mean "lr"?)',
  );
  assert.throws(
    () => loadConfig(`${dir}ms1mv3_r50.yaml`, ["--sample_rat=0.1"]),
    /unknown key "sample_rat" \(did you mean "sample_rate"\?\)/,
  );
  assert.equal(suggestKey("embeding_size"), "embedding_size");
  assert.equal(suggestKey("completely_unrelated_thing"), undefined);
});

Deno.test("a wrong type names the key and both types", () => {
  const base = { rec: "x", num_classes: 2, num_image: 10, num_epoch: 1 };
  assert.throws(
    () => loadConfig({ ...base, lr: "fast" }),
    /key "lr" must be a number, got a string \("fast"\)/,
  );
  assert.throws(
    () => loadConfig({ ...base, batch_size: 2.5 }),
    /key "batch_size" must be an integer, got a number/,
  );
  // A bad override is blamed on the override, not on the file.
  assert.throws(
    () => loadConfig(base, ["--lr=fast"]),
    /^ConfigError: Cannot apply override --lr: key "lr" must be a number, got a string \("fast"\)$/,
  );
  assert.throws(
    () => loadConfig(base, ["--sample_rate=0"]),
    /^ConfigError: Cannot apply override --sample_rate: /,
  );
  assert.throws(
    () => loadConfig({ ...base, margin_list: [1, 0.5] }),
    /key "margin_list" must be a list of three numbers/,
  );
  assert.throws(
    () => loadConfig({ ...base, optimizer: "adam" }),
    /key "optimizer" is "adam", expected one of "sgd", "adamw"/,
  );
  assert.throws(
    () => loadConfig(`${dir}ms1mv3_r50.yaml`, ["--fp16=yes please"]),
    /key "fp16" must be a boolean/,
  );
});

Deno.test("missing keys, a dataset too small for one step and warmup >= total are config errors", () => {
  assert.throws(() => loadConfig({ rec: "x", num_image: 10, num_epoch: 1 }), /missing key "num_classes"/);
  const base = { rec: "x", num_classes: 2, num_image: 100, num_epoch: 2 };
  assert.throws(
    () => loadConfig({ ...base, batch_size: 64 }, {}, { worldSize: 2 }),
    /num_image 100 is too small for one step of 128 images/,
  );
  assert.throws(
    () => loadConfig({ ...base, batch_size: 10, warmup_epoch: 2 }, {}, { worldSize: 1 }),
    /warmup_epoch 2 is not shorter than num_epoch 2/,
  );
  assert.throws(
    () => loadConfig({ ...base, batch_size: 10, gradient_acc: 3 }, {}, { worldSize: 1 }),
    /10 micro-batches per epoch do not divide into gradient_acc 3/,
  );
  assert.throws(() => loadConfig(`${dir}does_not_exist.yaml`), /Cannot load config ".*does_not_exist.yaml"/);
});

Deno.test("gradient accumulation counts optimizer steps for the schedule (C29)", () => {
  const c = loadConfig(
    { rec: "x", num_classes: 2, num_image: 400, num_epoch: 1, batch_size: 4, gradient_acc: 4 },
    {},
    { worldSize: 1 },
  );
  assert.equal(c.derived.microBatchesPerEpoch, 100);
  assert.equal(c.derived.totalSteps, 25);
});

Deno.test("deepMerge merges objects and replaces lists", () => {
  assert.deepEqual(deepMerge({ a: { x: 1, y: 2 }, l: [1, 2] }, { a: { y: 3 }, l: [9] }), {
    a: { x: 1, y: 3 },
    l: [9],
  });
});

Deno.test("the schema renders as a Markdown reference", () => {
  const md = schemaMarkdown();
  assert.match(md, /\| `sample_rate` \| number \| `1` \|/);
  assert.match(md, /\| `num_classes` \| integer \| required \|/);
});
