/**
 * `deno task eval --model <model.safetensors> --bin <a.bin> [--bin …] [--roc out.png]`:
 * verification accuracy of a trained backbone on `.bin` sets, with the protocol of
 * arcface_torch (10 folds, image + flip embeddings) and a summary table.
 *
 * @module
 */
import { HELP, outputProblem, parseCommand, usageError } from "./args.ts";
import { Model } from "../model.ts";
import { decodeSet, readBin, type VerificationResult, verify } from "../verification.ts";
import { linePlot } from "../plot.ts";
import { writeAtomic } from "../export/state_dict.ts";

const USAGE = `Usage: arcface eval --model <model.safetensors> --bin <set.bin> [--bin …] [options]

Reports, for each verification set (the insightface .bin pickles: lfw.bin, cfp_fp.bin,
agedb_30.bin, …), the 10-fold accuracy with and without the flipped image, XNorm, EER,
ROC AUC and TAR at FAR 1e-3 / 1e-2.

Options:
  --model PATH      backbone weights (model.safetensors from training, import or embed)
  --bin PATH        a verification set; repeat for several
  --batch-size N    images per forward pass (default 64)
  --threads N       compute threads (default: all cores)
  --no-resize       refuse images whose size is not 112x112 instead of resizing them
  --roc PATH        draw the ROC curves (TAR against FAR, log scale) into a PNG file`;

function progress(name: string): ((done: number, total: number) => void) | undefined {
  if (!Deno.stderr.isTerminal()) return undefined;
  const enc = new TextEncoder();
  return (done, total) => {
    const width = 30, filled = Math.round((done / total) * width);
    const bar = "#".repeat(filled) + "-".repeat(width - filled);
    Deno.stderr.writeSync(
      enc.encode(`\r[${bar}] ${done}/${total} images of "${name}"${done === total ? "\n" : ""}`),
    );
  };
}

function table(results: VerificationResult[]): string {
  const head = ["set", "pairs", "XNorm", "Accuracy", "Accuracy-Flip", "EER", "AUC", "TAR@1e-3", "TAR@1e-2"];
  const pct = (v: number) => Number.isFinite(v) ? (100 * v).toFixed(2) : "-";
  const rows = results.map((r) => [
    r.name,
    String(r.pairs),
    r.xnorm.toFixed(4),
    `${pct(r.plain.accuracy)} ± ${pct(r.plain.std)}`,
    `${pct(r.flip.accuracy)} ± ${pct(r.flip.std)}`,
    pct(r.flip.eer),
    r.flip.auc.toFixed(4),
    ...r.flip.tar.map((t) => pct(t.val)),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ");
  return [line(head), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n") +
    "\n(percent; Accuracy-Flip is arcface_torch's reported figure; EER, AUC and TAR on the flip embeddings)";
}

/** Runs the eval command; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const parsed = parseCommand({
    args,
    options: {
      model: { type: "string" },
      bin: { type: "string", multiple: true, default: [] },
      "batch-size": { type: "string", default: "64" },
      threads: { type: "string", default: "0" },
      "no-resize": { type: "boolean", default: false },
      roc: { type: "string" },
      ...HELP,
    },
  }, USAGE);
  if (typeof parsed === "number") return parsed;
  const { values } = parsed;
  const batch = Number(values["batch-size"]), threads = Number(values.threads);
  if (!values.model || values.bin.length === 0) {
    return usageError(`Expected --model and at least one --bin`, USAGE);
  }
  if (!Number.isInteger(batch) || batch < 1) {
    console.error(`Invalid --batch-size "${values["batch-size"]}": expected a positive integer`);
    return 2;
  }
  if (!Number.isInteger(threads) || threads < 0) {
    console.error(`Invalid --threads "${values.threads}": expected 0 (all cores) or a positive integer`);
    return 2;
  }
  const problem = values.roc
    ? outputProblem(values.roc, { inputs: [values.model, ...values.bin] })
    : undefined;
  if (problem) {
    console.error(problem);
    return 2;
  }
  try {
    using model = await Model.load(values.model, { maxBatch: batch, threads });
    const results: VerificationResult[] = [];
    for (const path of values.bin) {
      const set = decodeSet(await readBin(path), { resize: !values["no-resize"] });
      if (set.resized) console.error(`Resized ${set.resized} images of "${set.name}" to 112x112 (bilinear)`);
      const r = await verify(set, (x, n) => model.forward(x, n), {
        batchSize: batch,
        onProgress: progress(set.name),
      });
      for (const w of r.warnings) console.error(`Warning: ${w}`);
      results.push(r);
    }
    console.log(table(results));
    if (values.roc) {
      const series = results.filter((r) => r.flip.roc).map((r) => ({
        x: r.flip.roc!.fpr,
        y: r.flip.roc!.tpr,
        label: r.name,
      }));
      const png = await linePlot({
        series,
        logX: true,
        xLabel: "False accept rate",
        yLabel: "True accept rate",
        title: `ROC of ${values.model}`,
        yRange: [0, 1],
      });
      await writeAtomic(values.roc, png);
      console.log(`ROC curves written to "${values.roc}"`);
    }
    return 0;
  } catch (e) {
    console.error((e as Error).message);
    return 1;
  }
}
