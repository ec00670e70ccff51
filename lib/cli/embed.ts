/**
 * `deno task embed <model.safetensors> <image…> [--out emb.npy] [--normalize]`: embeddings of
 * image files, printed as JSON lines or written as one float32 `.npy` (images × features).
 *
 * @module
 */
import { HELP, outputProblem, parseCommand, usageError } from "./args.ts";
import { Model } from "../model.ts";
import { embed } from "../embed.ts";
import { encodeNpy } from "../npy.ts";
import { writeAtomic } from "../export/state_dict.ts";

const USAGE = `Usage: arcface embed <model.safetensors> <image …> [options]

Embeds face images (JPEG, PNG, PGM/PPM; aligned faces, resized to 112x112 when needed).

Options:
  --out PATH     write a float32 .npy of images × features instead of printing JSON lines
  --normalize    L2-normalise each embedding
  --batch-size N images per forward pass (default 32)`;

/** Runs the embed command; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const parsed = parseCommand({
    args,
    allowPositionals: true,
    options: {
      out: { type: "string" },
      normalize: { type: "boolean", default: false },
      "batch-size": { type: "string", default: "32" },
      ...HELP,
    },
  }, USAGE);
  if (typeof parsed === "number") return parsed;
  const { values, positionals } = parsed;
  const batch = Number(values["batch-size"]);
  if (!Number.isInteger(batch) || batch < 1) {
    console.error(`Invalid --batch-size "${values["batch-size"]}": expected a positive integer`);
    return 2;
  }
  if (positionals.length < 2) {
    return usageError(`Expected a model and at least one image`, USAGE);
  }
  const [modelPath, ...files] = positionals;
  const problem = values.out
    ? outputProblem(values.out, { inputs: positionals, extension: ".npy" })
    : undefined;
  if (problem) {
    console.error(problem);
    return 2;
  }
  try {
    using model = await Model.load(modelPath, { maxBatch: Math.min(batch, files.length) });
    const images = await Promise.all(files.map(async (f) => {
      try {
        return await Deno.readFile(f);
      } catch (e) {
        throw new Error(`Cannot read image "${f}": ${(e as Error).message}`);
      }
    }));
    const emb = await embed(model, images, { normalize: values.normalize }).catch((e) => {
      const i = Number(/image (\d+)/.exec((e as Error).message)?.[1]);
      throw new Error(Number.isInteger(i) ? `"${files[i]}": ${(e as Error).message}` : (e as Error).message);
    });
    if (values.out) {
      const data = new Float32Array(emb.length * model.numFeatures);
      emb.forEach((v, i) => data.set(v, i * model.numFeatures));
      await writeAtomic(values.out, encodeNpy({ shape: [emb.length, model.numFeatures], data }));
      console.log(`Wrote ${emb.length}×${model.numFeatures} embeddings to "${values.out}"`);
    } else {
      emb.forEach((v, i) => console.log(JSON.stringify({ file: files[i], embedding: Array.from(v) })));
    }
    return 0;
  } catch (e) {
    console.error((e as Error).message);
    return 1;
  }
}
