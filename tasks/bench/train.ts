/**
 * Training-step benchmark: samples/s of our whole step (loader decoding the shipped ORL
 * JPEGs + backbone + Partial FC + clipping + SGD) next to PyTorch 1.13 doing arcface_torch's
 * step on a ready tensor (tasks/bench/train_reference.py), same threads, same run.
 *
 * `deno task bench train [--networks=mbf,r50] [--runs=6] [--warmup=2] [--threads=2]
 *   [--classes=10000] [--no-reference]`
 *
 * Ours is measured through `train()` with a log line per step: the speed of each step after
 * the warm-up, median. Partial FC holds `classes` centres (the ORL labels use the first 30).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { median } from "./backbones.ts";
import { loadConfig } from "../../lib/config.ts";
import { train } from "../../lib/trainer.ts";

const root = new URL("../..", import.meta.url).pathname;
const BATCH: Record<string, number> = { mbf: 32, r18: 32, r50: 16 };

async function ours(network: string, o: { runs: number; warmup: number; threads: number; classes: number }) {
  const batch = BATCH[network] ?? 32;
  const perEpoch = Math.floor(300 / batch);
  const speeds: number[] = [];
  await train(
    loadConfig(`${root}configs/orl_mbf.yaml`, {
      network,
      batch_size: batch,
      num_classes: o.classes,
      rec: `${root}data/orl`,
      num_epoch: Math.ceil((o.warmup + o.runs) / perEpoch),
      warmup_epoch: 0,
      val_targets: [],
      frequent: 1,
      verbose: 1_000_000,
      threads: o.threads,
      output: await Deno.makeTempDir(),
    }, { worldSize: 1 }),
    {
      console: false,
      onLog: (line) => {
        const m = /^Speed ([\d.]+) samples\/sec .*Global Step: (\d+)/.exec(line);
        if (m && Number(m[2]) > o.warmup && speeds.length < o.runs) speeds.push(Number(m[1]));
      },
    },
  );
  return median(speeds);
}

async function reference(
  network: string,
  o: { runs: number; warmup: number; threads: number; classes: number },
) {
  const batch = BATCH[network] ?? 32;
  const python = Deno.env.get("AFC_PYTHON") ?? "/usr/bin/python3";
  const out = await new Deno.Command(python, {
    args: [
      `${root}tasks/bench/train_reference.py`,
      network,
      ...[batch, o.classes, o.warmup, o.runs, o.threads].map(String),
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (out.code !== 0) {
    throw new Error(`PyTorch reference failed: ${new TextDecoder().decode(out.stderr).slice(-400)}`);
  }
  const r = JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").pop()!);
  return batch / median(r.times);
}

/** Runs the benchmark and prints one line per backbone. */
export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      networks: { type: "string", default: "mbf,r50" },
      runs: { type: "string", default: "6" },
      warmup: { type: "string", default: "2" },
      threads: { type: "string", default: "2" },
      classes: { type: "string", default: "10000" },
      "no-reference": { type: "boolean", default: false },
    },
  });
  const o = {
    runs: Number(values.runs),
    warmup: Number(values.warmup),
    threads: Number(values.threads),
    classes: Number(values.classes),
  };
  console.log(
    `training step, ${o.threads} threads, Partial FC ${o.classes} classes, median of ${o.runs} steps`,
  );
  console.log("network  batch  ours (samples/s)  PyTorch (samples/s)  ratio");
  for (const network of values.networks.split(",")) {
    const a = await ours(network, o);
    const b = values["no-reference"] ? NaN : await reference(network, o);
    console.log(
      `${network.padEnd(8)} ${String(BATCH[network] ?? 32).padStart(5)}  ${a.toFixed(1).padStart(16)}  ${
        b.toFixed(1).padStart(19)
      }  ${(a / b).toFixed(2)}x`,
    );
  }
}

if (import.meta.main) await main(Deno.args);
