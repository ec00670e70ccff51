/**
 * Loader benchmark: images/s of the native loader (decode + flip + normalise, 2 threads,
 * batch 64) on data/orl/train.rec (112×112 JPEGs), next to a Python reference reading the
 * same file in the same run (PIL + numpy + torch DataLoader with 2 workers,
 * tasks/bench/data_reference.py). Python is taken from $AFC_PYTHON or /usr/bin/python3; the
 * reference needs Pillow, numpy and torch.
 *
 * `deno run -A tasks/bench/data.ts [rec] [images]`
 *
 * @module
 */
import { openDataset } from "../../lib/data.ts";

const root = new URL("../..", import.meta.url).pathname;
const batch = 64;

async function native(rec: string, images: number, threads: number): Promise<number> {
  using ds = openDataset({ rec });
  using loader = ds.loader({ batchSize: batch, numThreads: threads, prefetch: 4 });
  const input = new Float32Array(loader.inputLength), labels = new BigInt64Array(batch);
  await loader.next(input, labels); // warm-up: threads started, file mapped
  let n = 0, epoch = 0;
  const start = performance.now();
  while (n < images) {
    const got = await loader.next(input, labels);
    if (got === 0) await loader.setEpoch(++epoch);
    n += got;
  }
  return n / ((performance.now() - start) / 1000);
}

async function reference(rec: string, images: number): Promise<number | string> {
  const python = Deno.env.get("AFC_PYTHON") ?? "/usr/bin/python3";
  try {
    const out = await new Deno.Command(python, {
      args: [`${root}tasks/bench/data_reference.py`, rec, String(images), String(batch)],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) return `failed: ${new TextDecoder().decode(out.stderr).trim().split("\n").pop()}`;
    return Number(new TextDecoder().decode(out.stdout).trim());
  } catch (e) {
    return `unavailable: ${(e as Error).message}`;
  }
}

/** Runs the benchmark: `args` = [rec] [images]. */
export async function main(args: string[]): Promise<void> {
  const rec = args[0] ?? `${root}data/orl/train.rec`;
  const images = Number(args[1] ?? 6400);
  const ours2 = await native(rec, images, 2);
  const ours1 = await native(rec, images, 1);
  const ref = await reference(rec, images);
  console.log(`data: ${rec}, ${images} images, batch ${batch}, 112x112 JPEG`);
  console.log(`  native loader, 2 threads   ${ours2.toFixed(0)} images/s`);
  console.log(`  native loader, 1 thread    ${ours1.toFixed(0)} images/s`);
  if (typeof ref === "number") {
    console.log(`  python reference (PIL+numpy+torch DataLoader, 2 workers)   ${ref.toFixed(0)} images/s`);
    console.log(`  ratio (native 2 threads / python)   ${(ours2 / ref).toFixed(2)}x`);
  } else {
    console.log(`  python reference ${ref}`);
  }
}

if (import.meta.main) await main(Deno.args);
