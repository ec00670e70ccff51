/**
 * Inference benchmark against onnxruntime: our CPU forward of a backbone next to
 * onnxruntime running the ONNX file we export from the same weights, same batch, same
 * threads, in the same run. Ours runs twice: with direct convolutions (the default) and
 * with `winograd: true` (faster where the CPU has AVX-512, for more memory). Each
 * measurement is a process of its own, so that its peak memory (VmHWM) is its own.
 *
 * `deno task bench onnx [--networks=mbf,r50] [--batches=1,64] [--runs=5] [--warmup=2] [--threads=2]`
 *
 * Python is taken from $AFC_PYTHON or `python3` on PATH (onnxruntime comes from PyPI).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { median } from "./backbones.ts";
import { Model } from "../../lib/model.ts";
import { exportOnnx } from "../../lib/export/onnx.ts";

const root = new URL("../..", import.meta.url).pathname;

interface Measurement {
  times: number[];
  peakMiB: number;
}

/** Runs a command that prints a Measurement as its last line. */
async function measure(cmd: string, args: string[]): Promise<Measurement> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (out.code !== 0) {
    throw new Error(`${cmd} ${args[0]} failed: ${new TextDecoder().decode(out.stderr).slice(-400)}`);
  }
  return JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").pop()!);
}

/**
 * The child of one measurement of ours: `--child=<network>,<batch>,<winograd 0|1>`. Its
 * weights are the initial ones (seed 0), those the ONNX file was exported from.
 */
async function child(spec: string, o: { runs: number; warmup: number; threads: number }): Promise<void> {
  const [network, batch, winograd] = spec.split(",");
  const n = Number(batch);
  using model = Model.create({ network, maxBatch: n, threads: o.threads, winograd: winograd === "1" });
  const x = new Float32Array(n * 3 * 112 * 112).map(() => Math.random() - 0.5);
  const times: number[] = [];
  for (let i = 0; i < o.warmup + o.runs; i++) {
    const start = performance.now();
    await model.forward(x, n);
    if (i >= o.warmup) times.push((performance.now() - start) / 1000);
  }
  const hwm = Deno.readTextFileSync("/proc/self/status").match(/VmHWM:\s+(\d+)/)![1];
  console.log(JSON.stringify({ times, peakMiB: Number(hwm) / 1024 } satisfies Measurement));
}

/** Runs the benchmark and prints a table. */
export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      networks: { type: "string", default: "mbf,r50" },
      batches: { type: "string", default: "1,64" },
      runs: { type: "string", default: "5" },
      warmup: { type: "string", default: "2" },
      threads: { type: "string", default: "2" },
      child: { type: "string" },
    },
  });
  const o = { runs: Number(values.runs), warmup: Number(values.warmup), threads: Number(values.threads) };
  if (values.child) return await child(values.child, o);
  const python = Deno.env.get("AFC_PYTHON") ?? "python3";
  const dir = await Deno.makeTempDir();
  console.log(`inference, ${o.threads} threads, median of ${o.runs} runs after ${o.warmup} warm-up runs`);
  console.log(
    "| backbone | batch | ours samples/s (MiB) | ratio | ours, winograd (MiB) | ratio | onnxruntime samples/s (MiB) |\n" +
      "|---|---:|---:|---:|---:|---:|---:|",
  );
  for (const network of values.networks.split(",")) {
    const onnx = `${dir}/${network}.onnx`;
    {
      using model = Model.create({ network, maxBatch: 1, threads: 1 });
      await Deno.writeFile(onnx, exportOnnx(network, model.numFeatures, model.stateDict()));
    }
    for (const batch of values.batches.split(",").map(Number)) {
      const ours = (winograd: number) =>
        measure(Deno.execPath(), [
          "run",
          "-A",
          new URL(import.meta.url).pathname,
          `--child=${network},${batch},${winograd}`,
          `--runs=${o.runs}`,
          `--warmup=${o.warmup}`,
          `--threads=${o.threads}`,
        ]);
      const direct = await ours(0), wino = await ours(1);
      const ref = await measure(python, [
        `${root}tasks/bench/onnx_reference.py`,
        onnx,
        ...[batch, o.warmup, o.runs, o.threads].map(String),
      ]);
      const speed = (m: Measurement) => batch / median(m.times);
      const cell = (m: Measurement) => `${speed(m).toFixed(1)} (${m.peakMiB.toFixed(0)})`;
      const ratio = (m: Measurement) => `${(speed(m) / speed(ref)).toFixed(2)}×`;
      console.log(
        `| ${network} | ${batch} | ${cell(direct)} | ${ratio(direct)} | ${cell(wino)} | ${ratio(wino)} | ${
          cell(ref)
        } |`,
      );
    }
  }
  await Deno.remove(dir, { recursive: true });
}

if (import.meta.main) await main(Deno.args);
