/**
 * Data-parallel benchmark: the same global batch trained by 1 process × 2 threads and by
 * 2 processes × 1 thread (`deno task launch`), on the shipped ORL faces, and the share of
 * the 2-process step spent in collectives (Partial FC's and the gradient all-reduce,
 * waiting for the other rank included). Both runs are ours: data parallelism on one
 * machine should cost little against threads.
 *
 * `deno task bench dist [--network=r18] [--batch=30] [--epochs=3] [--warmup=3] [--repeats=3]`
 *
 * Where it may (root, iproute2, redis-server), it then trains the same on two machines:
 * network namespaces joined by a veth pair limited to 1 Gbit/s each way (tasks/netns.ts),
 * where the transfer of the gradients, not the CPU, bounds the collectives.
 *
 * Speed: median of rank 0's per-step `Speed` lines after `warmup` steps. The two setups
 * alternate `repeats` times, so that both see the same load on a shared machine; the
 * ratio is the median of the rounds' ratios.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { median } from "./backbones.ts";
import { canUseNetns, type Ran, sh, twoHosts } from "../netns.ts";

const root = new URL("../..", import.meta.url).pathname;

interface Options {
  network: string;
  batch: number;
  epochs: number;
  warmup: number;
}

interface Run {
  samplesPerSecond: number;
  commShare: number | null;
}

/** `deno task launch` with `procs` processes in all, its training options, and then `extra`. */
function launchArgs(procs: number, threads: number, o: Options, out: string, extra: string[]): string[] {
  return [
    Deno.execPath(),
    "run",
    "-A",
    `${root}cli.ts`,
    "launch",
    ...extra,
    "configs/orl_mbf.yaml",
    `--network=${o.network}`,
    `--batch_size=${o.batch / procs}`,
    `--threads=${threads}`,
    `--num_epoch=${o.epochs}`,
    "--warmup_epoch=0",
    "--frequent=1",
    "--val_targets=[]",
    `--output=${out}`,
  ];
}

/** Rank 0's median step speed after the warm-up, and its share of time in collectives. */
function parseRun(what: string, r: Ran, o: Options): Run {
  if (r.code !== 0) throw new Error(`${what} failed:\n${r.text.slice(-1500)}`);
  const speeds = [...r.text.matchAll(/Speed ([\d.]+) samples\/sec/g)].map((m) => Number(m[1]));
  if (speeds.length <= o.warmup) {
    throw new Error(`${what}: only ${speeds.length} steps logged:\n${r.text.slice(-1500)}`);
  }
  const comm = /Communication: ([\d.]+) s of ([\d.]+) s on rank 0/.exec(r.text);
  return {
    samplesPerSecond: median(speeds.slice(o.warmup)),
    commShare: comm ? Number(comm[1]) / Number(comm[2]) : null,
  };
}

/** `nproc` processes × `threads` threads on this machine. */
async function local(nproc: number, threads: number, o: Options): Promise<Run> {
  const out = await Deno.makeTempDir();
  const [cmd, ...args] = launchArgs(nproc, threads, o, out, [`--nproc-per-node=${nproc}`]);
  const r = await sh(cmd, args, root);
  await Deno.remove(out, { recursive: true });
  return parseRun(`launch --nproc-per-node=${nproc}`, r, o);
}

/** Two network namespaces, one process × 1 thread each, over a veth pair limited to `rate`. */
async function twoMachines(o: Options, rate: string): Promise<Run> {
  const outs = [await Deno.makeTempDir(), await Deno.makeTempDir()];
  const hosts = await twoHosts(`afcb${Deno.pid % 10000}`, { rate });
  try {
    const node = (rank: 0 | 1) =>
      hosts.run(
        rank,
        launchArgs(2, 1, o, outs[rank], [
          "--nnodes=2",
          `--node-rank=${rank}`,
          "--nproc-per-node=1",
          `--rdzv=${hosts.store}`,
          `--run-id=bench-${Deno.pid}`,
          `--address=${hosts.addrs[rank]}`,
        ]),
        root,
      );
    const [r0, r1] = await Promise.all([node(0), node(1)]);
    if (r1.code !== 0) throw new Error(`node 1 failed:\n${r1.text.slice(-1500)}`);
    return parseRun("node 0", r0, o);
  } finally {
    await hosts.close();
    for (const out of outs) await Deno.remove(out, { recursive: true });
  }
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
  const o: Options = {
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
    const threads = await local(1, 2, o);
    const procs = await local(2, 1, o);
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
  if (!(await canUseNetns())) {
    console.log("(two machines over a 1 Gbit/s link: skipped, it needs root, iproute2 and redis-server)");
    return;
  }
  const net = await twoMachines(o, "1gbit");
  const share = net.commShare === null ? "?" : `${(100 * net.commShare).toFixed(1)} %`;
  console.log(
    `2 machines (network namespaces) × 1 thread over a 1 Gbit/s link: ${
      net.samplesPerSecond.toFixed(1)
    } samples/s, ${share} of the time in collectives`,
  );
}

if (import.meta.main) await main(Deno.args);
