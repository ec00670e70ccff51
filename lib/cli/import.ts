/**
 * `deno task import <checkpoint.pt> <model.safetensors> [--network r50] [--num-features 512]`:
 * converts an arcface_torch checkpoint (a plain or DDP state dict, or the seed's
 * `checkpoint_gpu_0.pt`) into our `model.safetensors`, checking every tensor against the
 * backbone.
 *
 * @module
 */
import { HELP, intOption, outputProblem, parseCommand, usageError } from "./args.ts";
import { readTorchCheckpoint } from "../export/torch_import.ts";
import { inferNetwork } from "../export/graph.ts";
import { Model } from "../model.ts";

const USAGE = `Usage: arcface import <checkpoint.pt|.pth> <model.safetensors> [options]

Reads a PyTorch checkpoint of an arcface_torch backbone without Python and writes its
weights as model.safetensors (for eval, export, embed or fine-tuning).

Options:
  --network NAME       r18, r34, r50, r100, r200, r2060 or mbf (default: from the tensors)
  --num-features N     embedding size (default: from the tensors)`;

/** Runs the import command; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const parsed = parseCommand({
    args,
    allowPositionals: true,
    options: { network: { type: "string" }, "num-features": { type: "string" }, ...HELP },
  }, USAGE);
  if (typeof parsed === "number") return parsed;
  const { values, positionals } = parsed;
  if (positionals.length !== 2) {
    return usageError(`Expected 2 arguments, got ${positionals.length}`, USAGE);
  }
  const [input, output] = positionals;
  const problem = outputProblem(output, { inputs: [input], extension: ".safetensors" });
  if (problem) {
    console.error(problem);
    return 2;
  }
  let given: number | undefined;
  try {
    given = values["num-features"] === undefined
      ? undefined
      : intOption(values["num-features"], "num-features");
  } catch (e) {
    console.error((e as Error).message);
    return 2;
  }
  try {
    const bytes = await Deno.readFile(input).catch((e) => {
      throw new Error(`Cannot read "${input}": ${(e as Error).message}`);
    });
    const weights = await readTorchCheckpoint(bytes, input);
    const guess = inferNetwork(weights.keys(), (n) => weights.get(n)?.shape);
    const network = values.network ?? guess?.network;
    const numFeatures = given ?? guess?.numFeatures;
    if (!network || !numFeatures) {
      const keys = [...weights.keys()].slice(0, 6).map((k) => `"${k}"`).join(", ");
      throw new Error(
        `Cannot import "${input}": its tensors (${keys}, …) match no backbone; is it a backbone state dict? (else pass --network and --num-features)`,
      );
    }
    using model = Model.create({ network, numFeatures, maxBatch: 1 });
    model.loadStateDict(weights, `"${input}"`);
    await model.save(output);
    console.log(
      `Imported ${weights.size} tensors of a ${network} (${numFeatures} features) into "${output}"`,
    );
    return 0;
  } catch (e) {
    console.error((e as Error).message);
    return 1;
  }
}
