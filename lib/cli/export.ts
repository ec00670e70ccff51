/**
 * `deno task export <model.safetensors> <out.onnx>`: writes the backbone as ONNX and checks
 * the result. `deno task export --check <model.onnx>` checks an existing ONNX file.
 *
 * @module
 */
import { HELP, intOption, outputProblem, parseCommand, usageError } from "./args.ts";
import { checkOnnx, formatReport } from "../export/check.ts";
import { loadWeights } from "../export/load.ts";
import { exportOnnx } from "../export/onnx.ts";
import { writeAtomic } from "../export/state_dict.ts";

const USAGE = `Usage: arcface export <model.safetensors> <out.onnx> [--network r50] [--num-features 512]
       arcface export --check <model.onnx>

Writes the backbone as ONNX (input "data" float32 [N,3,112,112], output [N,num_features],
batch norms folded, opset 13) and prints the model checks. The architecture comes from the
file's metadata, or from the tensor names when it has none; --network/--num-features override.`;

export async function main(args: string[]): Promise<number> {
  const parsed = parseCommand({
    args,
    allowPositionals: true,
    options: {
      check: { type: "boolean", default: false },
      network: { type: "string" },
      "num-features": { type: "string" },
      ...HELP,
    },
  }, USAGE);
  if (typeof parsed === "number") return parsed;
  const { values, positionals } = parsed;
  try {
    if (values.check) {
      if (positionals.length !== 1) {
        return usageError(
          `Cannot check: expected one ONNX file, got ${positionals.length} argument${
            positionals.length === 1 ? "" : "s"
          }`,
          USAGE,
        );
      }
      const bytes = await Deno.readFile(positionals[0]).catch((e) => {
        throw new Error(`Cannot check "${positionals[0]}": ${(e as Error).message}`);
      });
      const report = checkOnnx(bytes);
      console.log(formatReport(report));
      return report.violations.length === 0 ? 0 : 1;
    }
    if (positionals.length !== 2) {
      return usageError(
        `Cannot export: expected <model.safetensors> <out.onnx>, got ${positionals.length} argument${
          positionals.length === 1 ? "" : "s"
        }`,
        USAGE,
      );
    }
    const [src, dst] = positionals;
    const problem = outputProblem(dst, { inputs: [src], extension: ".onnx" });
    if (problem) {
      console.error(problem);
      return 2;
    }
    let nf: number | undefined;
    try {
      nf = values["num-features"] === undefined
        ? undefined
        : intOption(values["num-features"], "num-features");
    } catch (e) {
      console.error((e as Error).message);
      return 2;
    }
    const m = await loadWeights(src, { network: values.network, numFeatures: nf });
    if (m.source === "inferred") {
      console.log(
        `network ${m.network}, num_features ${m.numFeatures} (inferred from tensor names: no metadata)`,
      );
    }
    const bytes = exportOnnx(m.network, m.numFeatures, m.weights);
    const report = checkOnnx(bytes);
    console.log(formatReport(report));
    if (report.violations.length > 0) {
      console.error(`Cannot export "${src}": the ONNX model fails the checks; "${dst}" was not written`);
      return 1;
    }
    await writeAtomic(dst, bytes);
    console.log(`wrote ${dst}`);
    return 0;
  } catch (e) {
    console.error((e as Error).message);
    return 1;
  }
}
