/**
 * `deno task pack <image folder | list file> <out>/train.rec [--size 112] [--fit resize|crop|pad]
 * [--grey-to-rgb] [--quality 95]`: writes an insightface RecordIO dataset.
 *
 * @module
 */
import { HELP, outputProblem, parseCommand, usageError } from "./args.ts";
import { listFolder, pack, type PackItem, readList } from "../pack.ts";

const USAGE = `Usage: arcface pack <image folder | list file> <out>/train.rec [options]

Writes train.rec and train.idx in the insightface layout (meta record, images, identity
records). A folder holds one sub-folder per identity; a list file has MXNet im2rec lines
"index<TAB>label<TAB>path" or "path label" lines.

Options:
  --size N        output side in pixels (default 112)
  --fit MODE      resize (stretch, default), crop (centre crop), pad (centre on black)
  --quality Q     JPEG quality 1..100 (default 95)
  --grey-to-rgb   accepted for compatibility: images are always stored as 3 channels`;

/** Runs the pack command; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const parsed = parseCommand({
    args,
    allowPositionals: true,
    options: {
      size: { type: "string", default: "112" },
      fit: { type: "string", default: "resize" },
      quality: { type: "string", default: "95" },
      "grey-to-rgb": { type: "boolean", default: false },
      ...HELP,
    },
  }, USAGE);
  if (typeof parsed === "number") return parsed;
  const { values, positionals } = parsed;
  if (positionals.length !== 2) {
    return usageError(`Expected 2 arguments, got ${positionals.length}`, USAGE);
  }
  const [input, out] = positionals;
  const size = Number(values.size), quality = Number(values.quality);
  if (!out.endsWith(".rec")) {
    console.error(`Cannot pack to "${out}": the output must end with .rec (its index is written beside it)`);
    return 2;
  }
  const problem = outputProblem(out, { inputs: [input], makeFolder: true });
  if (problem) {
    console.error(problem);
    return 2;
  }
  try {
    const items: PackItem[] = Deno.statSync(input).isDirectory ? listFolder(input) : readList(input);
    const start = performance.now();
    const enc = new TextEncoder();
    let last = 0;
    const { images, identities } = await pack(items, out, {
      size,
      quality,
      fit: values.fit as "resize" | "crop" | "pad",
      progress: (done, total) => {
        const now = performance.now();
        if (done !== total && now - last < 100) return;
        last = now;
        const width = 30, filled = Math.round((done / total) * width);
        const rate = done / Math.max((now - start) / 1000, 1e-3);
        Deno.stderr.writeSync(enc.encode(
          `\r[${"#".repeat(filled)}${" ".repeat(width - filled)}] ${done}/${total} images  ${
            rate.toFixed(0)
          } img/s`,
        ));
      },
    });
    Deno.stderr.writeSync(enc.encode("\n"));
    console.log(`Packed ${images} images of ${identities} identities into "${out}"`);
    return 0;
  } catch (e) {
    console.error((e as Error).message);
    return 1;
  }
}
