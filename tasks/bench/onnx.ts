/**
 * Inference benchmark against onnxruntime: our CPU forward of a backbone next to
 * onnxruntime running the ONNX file we export from the same weights, same batch, same
 * threads, in the same run. Ours runs twice: direct convolutions (the default) and with
 * `winograd: true` (faster where the CPU has AVX-512, for more memory).
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
    },
  });
  const runs = Number(values.runs), warmup = Number(values.warmup), threads = Number(values.threads);
  const python = Deno.env.get("AFC_PYTHON") ?? "python3";
  const dir = await Deno.makeTempDir();
  console.log(`inference, ${threads} threads, median of ${runs} runs after ${warmup} warm-up runs`);
  console.log(
    "| backbone | batch | ours samples/s | ratio | ours, winograd | ratio | onnxruntime samples/s |\n|---|---:|---:|---:|---:|---:|---:|",
  );
  for (const network of values.networks.split(",")) {
    const batches = values.batches.split(",").map(Number);
    const maxBatch = Math.max(...batches);
    using model = Model.create({ network, maxBatch, threads });
    using wino = Model.create({ network, maxBatch, threads, winograd: true });
    const onnx = `${dir}/${network}.onnx`;
    await Deno.writeFile(onnx, exportOnnx(network, model.numFeatures, model.stateDict()));
    for (const batch of batches) {
      const x = new Float32Array(batch * 3 * 112 * 112).map(() => Math.random() - 0.5);
      const speed = async (m: Model) => {
        const times: number[] = [];
        for (let i = 0; i < warmup + runs; i++) {
          const start = performance.now();
          await m.forward(x, batch);
          if (i >= warmup) times.push((performance.now() - start) / 1000);
        }
        return batch / median(times);
      };
      const ours = await speed(model), oursWino = await speed(wino);
      const out = await new Deno.Command(python, {
        args: [`${root}tasks/bench/onnx_reference.py`, onnx, ...[batch, warmup, runs, threads].map(String)],
        stdout: "piped",
        stderr: "piped",
      }).output();
      if (out.code !== 0) {
        throw new Error(`onnxruntime failed: ${new TextDecoder().decode(out.stderr).slice(-400)}`);
      }
      const ref = JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").pop()!);
      const theirs = batch / median(ref.times);
      const cells = [ours, ours / theirs, oursWino, oursWino / theirs, theirs];
      console.log(
        `| ${network} | ${batch} | ${
          cells.map((v, i) => i % 2 ? `${v.toFixed(2)}×` : v.toFixed(1)).join(" | ")
        } |`,
      );
    }
  }
}

if (import.meta.main) await main(Deno.args);
