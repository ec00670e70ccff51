/**
 * Data-parallel benchmark: the same global batch trained by 1 process × 2 threads and by
 * 2 processes × 1 thread (`deno task launch`), on the shipped ORL faces, and the share of
 * the 2-process step spent in collectives (Partial FC's and the gradient all-reduce,
 * waiting for the other rank included). Both runs are ours: data parallelism on one
 * machine should cost little against threads.
 *
 * `deno task bench dist [--network=r18] [--batch=30] [--epochs=3] [--warmup=3] [--repeats=3]`
 *
 * Speed: median of rank 0's per-step `Speed` lines after `warmup` steps. The two setups
 * alternate `repeats` times, so that both see the same load on a shared machine; the
 * ratio is the median of the rounds' ratios.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { median } from "./backbones.ts";

const root = new URL("../..", import.meta.url).pathname;

interface Run {
  samplesPerSecond: number;
  commShare: number | null;
}

async function launch(
  nproc: number,
  threads: number,
  o: { network: string; batch: number; epochs: number; warmup: number },
): Promise<Run> {
  const out = await Deno.makeTempDir();
  const r = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `${root}cli.ts`,
      "launch",
      `--nproc-per-node=${nproc}`,
      "configs/orl_mbf.yaml",
      `--network=${o.network}`,
      `--batch_size=${o.batch / nproc}`,
      `--threads=${threads}`,
      `--num_epoch=${o.epochs}`,
      "--warmup_epoch=0",
      "--frequent=1",
      "--val_targets=[]",
      `--output=${out}`,
    ],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(r.stdout) + new TextDecoder().decode(r.stderr);
  await Deno.remove(out, { recursive: true });
  if (r.code !== 0) throw new Error(`launch --nproc-per-node=${nproc} failed:\n${text.slice(-1500)}`);
  const speeds = [...text.matchAll(/Speed ([\d.]+) samples\/sec/g)].map((m) => Number(m[1]));
  if (speeds.length <= o.warmup) throw new Error(`only ${speeds.length} steps logged:\n${text.slice(-1500)}`);
  const comm = /Communication: ([\d.]+) s of ([\d.]+) s on rank 0/.exec(text);
  return {
    samplesPerSecond: median(speeds.slice(o.warmup)),
    commShare: comm ? Number(comm[1]) / Number(comm[2]) : null,
  };
}

/** Runs the benchmark and prints a table. */
export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      network: { type: "string", default: "r18" },
      batch: { type: "string", default: "30" },
      epochs: { type: "string", default: "3" },
      warmup: { type: "string", default: "3" },
      repeats: { type: "string", default: "3" },
    },
  });
  const o = {
    network: values.network,
    batch: Number(values.batch),
    epochs: Number(values.epochs),
    warmup: Number(values.warmup),
  };
  if (!(o.batch > 0 && o.batch % 2 === 0)) {
    throw new RangeError(`Invalid --batch=${values.batch}: expected an even count`);
  }
  const repeats = Number(values.repeats);
  if (!(Number.isInteger(repeats) && repeats > 0)) {
    throw new RangeError(`Invalid --repeats=${values.repeats}: expected a positive integer`);
  }
  console.log(`${o.network} on data/orl, global batch ${o.batch}, median step speed after ${o.warmup} steps`);
  console.log(
    "| round | 1 process × 2 threads, samples/s | 2 processes × 1 thread, samples/s | 2 × 1 / 1 × 2 | time in collectives (2 × 1) |",
  );
  console.log("|---:|---:|---:|---:|---:|");
  const ratios: number[] = [];
  for (let round = 1; round <= repeats; round++) {
    const threads = await launch(1, 2, o);
    const procs = await launch(2, 1, o);
    const ratio = procs.samplesPerSecond / threads.samplesPerSecond;
    ratios.push(ratio);
    const share = procs.commShare === null ? "?" : `${(100 * procs.commShare).toFixed(1)} %`;
    console.log(
      `| ${round} | ${threads.samplesPerSecond.toFixed(1)} | ${procs.samplesPerSecond.toFixed(1)} | ${
        ratio.toFixed(2)
      } | ${share} |`,
    );
  }
  console.log(`2 × 1 / 1 × 2, median of ${repeats}: ${median(ratios).toFixed(2)}`);
}

if (import.meta.main) await main(Deno.args);
