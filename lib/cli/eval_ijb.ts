/**
 * `deno task eval-ijb --root <IJBC folder> --model <model.safetensors> [--name ijbc|ijbb]
 * [--roc out.png]`: IJB-B/C 1:1 verification, TAR at FAR 1e-6 … 1e-1 as the seed prints it.
 *
 * @module
 */
import { HELP, outputProblem, parseCommand, usageError } from "./args.ts";
import { Model } from "../model.ts";
import { evaluateIjb, readIjb } from "../ijb.ts";
import { linePlot } from "../plot.ts";
import { writeAtomic } from "../export/state_dict.ts";

const USAGE = `Usage: arcface eval-ijb --root <IJB folder> --model <model.safetensors> [options]

Aligns the loose crops (5 landmarks, ArcFace reference), embeds image + flip, fuses media
then templates, scores every template pair and prints TAR at FAR 1e-6 … 1e-1.

Options:
  --name ijbc|ijbb   which meta files (default ijbc)
  --batch-size N     images per forward pass (default 64)
  --roc PATH         draw the ROC (TAR against FAR, log scale) into a PNG file`;

/** Runs the eval-ijb command; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const parsed = parseCommand({
    args,
    options: {
      root: { type: "string" },
      model: { type: "string" },
      name: { type: "string", default: "ijbc" },
      "batch-size": { type: "string", default: "64" },
      roc: { type: "string" },
      ...HELP,
    },
  }, USAGE);
  if (typeof parsed === "number") return parsed;
  const { values } = parsed;
  const batch = Number(values["batch-size"]);
  if (!values.root || !values.model) {
    return usageError(`Expected --root and --model`, USAGE);
  }
  if (values.name !== "ijbc" && values.name !== "ijbb") {
    console.error(`Invalid --name "${values.name}": expected ijbc or ijbb`);
    return 2;
  }
  if (!Number.isInteger(batch) || batch < 1) {
    console.error(`Invalid --batch-size "${values["batch-size"]}": expected a positive integer`);
    return 2;
  }
  const problem = values.roc ? outputProblem(values.roc, { inputs: [values.model] }) : undefined;
  if (problem) {
    console.error(problem);
    return 2;
  }
  try {
    const set = await readIjb(values.root, values.name);
    using model = await Model.load(values.model, { maxBatch: batch });
    const enc = new TextEncoder(), terminal = Deno.stderr.isTerminal();
    const r = await evaluateIjb(set, (x, n) => model.forward(x, n), {
      batchSize: batch,
      onProgress: terminal
        ? (done, total) =>
          Deno.stderr.writeSync(enc.encode(`\r${done}/${total} faces${done === total ? "\n" : ""}`))
        : undefined,
    });
    console.log(`${values.name}: ${set.faces.length} faces, ${set.pairs.length} template pairs`);
    console.log(`| FAR | ${r.tar.map((t) => t.far.toExponential(0)).join(" | ")} |`);
    console.log(`| TAR | ${r.tar.map((t) => (100 * t.tar).toFixed(2)).join(" | ")} |`);
    if (values.roc) {
      const png = await linePlot({
        series: [{ x: r.roc.fpr, y: r.roc.tpr, label: values.name }],
        logX: true,
        xLabel: "False accept rate",
        yLabel: "True accept rate",
        yRange: [0, 1],
      });
      await writeAtomic(values.roc, png);
      console.log(`ROC written to "${values.roc}"`);
    }
    return 0;
  } catch (e) {
    console.error((e as Error).message);
    return 1;
  }
}
