/**
 * Backbone benchmark: samples/s and peak memory of our backbones (lib/model.ts) next to
 * arcface_torch's in PyTorch on the CPU (tests/golden/backbones.py through
 * tasks/bench/backbones_reference.py), measured in the same run, interleaved.
 *
 * For each backbone, eval forward ("infer": batch 64, r50 32) and a training step
 * ("train": forward + backward of the fixed loss sum(emb · g), batch 32, r50 16; no
 * optimizer step) on the same number of threads. Every measurement runs in its own process
 * (ours: this file with `--child`; PyTorch: the reference script), so the peak resident
 * memory (VmHWM) of each is its own; rounds alternate which side runs first. Speed is the
 * batch over the median time of the timed runs of every round (warm-up runs excluded).
 *
 * `deno run -A tasks/bench/backbones.ts [--networks=mbf,r18,r50] [--modes=infer,train]
 *   [--runs=5] [--warmup=2] [--rounds=2] [--threads=2] [--no-reference]`
 *
 * Python is taken from $AFC_PYTHON or /usr/bin/python3 (Debian's python3-torch).
 *
 * @module
 */
import { parseArgs } from "node:util";

const root = new URL("../..", import.meta.url).pathname;
const self = new URL(import.meta.url).pathname;
const reference = `${root}tasks/bench/backbones_reference.py`;

/** Batch of each mode; r50 uses half. */
const BATCH = { infer: 64, train: 32 } as const;
type Mode = keyof typeof BATCH;

/** What one measuring process reports. */
interface Measurement {
  times: number[];
  rss_mib: number;
  base_rss_mib: number;
  threads: number;
  version?: string;
  isa?: string;
}

function statusMib(key: string): number {
  const line = Deno.readTextFileSync("/proc/self/status").split("\n").find((l) => l.startsWith(`${key}:`));
  return line ? Number(line.split(/\s+/)[1]) / 1024 : NaN;
}

/** The median of `values` (the mean of the middle two for an even count). */
export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Our side of one measurement, in this process (`--child network mode batch warmup runs threads`). */
async function child(args: string[]): Promise<void> {
  const [network, mode] = args;
  const [batch, warmup, runs, threads] = args.slice(2).map(Number);
  const base = statusMib("VmRSS");
  const { IMAGE_FLOATS, Model } = await import("../../lib/model.ts");
  using model = Model.create({ network, maxBatch: batch, threads });
  const x = new Float32Array(batch * IMAGE_FLOATS), g = new Float32Array(batch * model.numFeatures);
  let seed = 1;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648 - 0.5;
  for (let i = 0; i < x.length; i++) x[i] = rand() * 3.4;
  for (let i = 0; i < g.length; i++) g[i] = rand() * 3.4;
  const emb = new Float32Array(batch * model.numFeatures);
  const step = mode === "infer" ? () => model.forward(x, batch, { out: emb }) : async () => {
    await model.forward(x, batch, { train: true, out: emb });
    await model.backward(g, batch);
  };
  for (let i = 0; i < warmup; i++) await step();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    await step();
    times.push((performance.now() - start) / 1000);
  }
  const out: Measurement = { times, rss_mib: statusMib("VmHWM"), base_rss_mib: base, threads };
  console.log(JSON.stringify(out));
}

async function spawn(cmd: string, args: string[], env?: Record<string, string>): Promise<string> {
  const out = await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-3).join(" | ");
    throw new Error(`${cmd} ${args.join(" ")} exited with ${out.code}: ${err}`);
  }
  return text;
}

function lastJson(text: string): Measurement {
  const line = text.trim().split("\n").filter((l) => l.startsWith("{")).pop();
  if (!line) throw new Error(`no result in output: ${text.slice(-200)}`);
  return JSON.parse(line);
}

function ours(network: string, mode: Mode, batch: number, o: Options): Promise<Measurement> {
  return spawn(Deno.execPath(), [
    "run",
    "-A",
    self,
    "--child",
    network,
    mode,
    ...[batch, o.warmup, o.runs, o.threads].map(String),
  ]).then(lastJson);
}

function python(): string {
  return Deno.env.get("AFC_PYTHON") ?? "/usr/bin/python3";
}

function pytorch(network: string, mode: Mode, batch: number, o: Options): Promise<Measurement> {
  return spawn(python(), [reference, network, mode, ...[batch, o.warmup, o.runs, o.threads].map(String)])
    .then(lastJson);
}

/** The ISA oneDNN dispatches to in our library, from its verbose output. */
async function ourIsa(): Promise<string> {
  const code = `import { Model } from "${root}lib/model.ts";
using m = Model.create({ network: "mbf", maxBatch: 2, threads: 1 });
await m.forward(new Float32Array(2 * 3 * 112 * 112), 2);`;
  try {
    const text = await spawn(Deno.execPath(), ["eval", code], { DNNL_VERBOSE: "1", ONEDNN_VERBOSE: "1" });
    const info = text.split("\n").filter((l) => /_verbose,info,(oneDNN|cpu,isa)/.test(l));
    const version = info.find((l) => l.includes("oneDNN"))?.match(/oneDNN (v[\d.]+)/)?.[1];
    const isa = info.find((l) => l.includes("isa:"))?.split("isa:")[1]?.trim();
    return `oneDNN ${version ?? "?"}, ISA ${isa ?? "unknown"}`;
  } catch (e) {
    return `oneDNN ISA unknown (${(e as Error).message})`;
  }
}

function cpuModel(): string {
  try {
    const info = Deno.readTextFileSync("/proc/cpuinfo");
    const model = info.match(/^model name\s*:\s*(.*)$/m)?.[1] ?? "unknown CPU";
    const flags = info.match(/^flags\s*:\s*(.*)$/m)?.[1].split(" ") ?? [];
    const wide = ["avx512f", "avx512_bf16", "avx512_vnni", "amx_tile"].filter((f) => flags.includes(f));
    return `${model} (${navigator.hardwareConcurrency} logical cores${
      wide.length ? `; ${wide.join(" ")}` : ""
    })`;
  } catch {
    return "unknown CPU";
  }
}

function loadAvg(): string {
  try {
    return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
  } catch {
    return "?";
  }
}

interface Options {
  networks: string[];
  modes: Mode[];
  runs: number;
  warmup: number;
  rounds: number;
  threads: number;
  reference: boolean;
}

function options(args: string[]): Options {
  const { values } = parseArgs({
    args,
    options: {
      networks: { type: "string", default: "mbf,r18,r50" },
      modes: { type: "string", default: "infer,train" },
      runs: { type: "string", default: "5" },
      warmup: { type: "string", default: "2" },
      rounds: { type: "string", default: "2" },
      threads: { type: "string", default: "2" },
      "no-reference": { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(
      "deno task bench [backbones] [--networks=mbf,r18,r50] [--modes=infer,train] [--runs=5] [--warmup=2] " +
        "[--rounds=2] [--threads=2] [--no-reference]",
    );
    Deno.exit(0);
  }
  const int = (k: string, v: string, min: number) => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < min) {
      throw new RangeError(`Invalid --${k} "${v}": expected an integer >= ${min}`);
    }
    return n;
  };
  const modes = values.modes.split(",").filter(Boolean);
  for (const m of modes) {
    if (!(m in BATCH)) throw new RangeError(`Invalid mode "${m}": expected "infer" or "train"`);
  }
  return {
    networks: values.networks.split(",").filter(Boolean),
    modes: modes as Mode[],
    runs: int("runs", values.runs, 1),
    warmup: int("warmup", values.warmup, 0),
    rounds: int("rounds", values.rounds, 1),
    threads: int("threads", values.threads, 1),
    reference: !values["no-reference"],
  };
}

const fmt = (v: number, digits = 1) => (Number.isFinite(v) ? v.toFixed(digits) : "–");

/** Runs the benchmark and prints the environment line and a markdown table. */
export async function main(args: string[]): Promise<void> {
  if (args[0] === "--child") return await child(args.slice(1));
  const o = options(args);
  const torchVersion = o.reference
    ? await spawn(python(), ["-c", "import torch; print(torch.__version__)"]).then((t) => `torch ${t.trim()}`)
      .catch(() => "PyTorch unavailable")
    : "PyTorch not run";
  console.log(
    `Environment: ${cpuModel()}; ${await ourIsa()}; ${o.threads} threads each side; ${torchVersion}; ` +
      `load average ${loadAvg()} at start`,
  );
  console.log(
    `Median of ${o.runs} timed runs × ${o.rounds} rounds after ${o.warmup} warm-up runs; ` +
      "one process per measurement, sides alternating; RSS: peak (VmHWM) of the process, " +
      "in brackets over the runtime before the model was built",
  );
  console.log("");
  console.log(
    "| backbone | mode | batch | ours samples/s | PyTorch samples/s | ratio | ours RSS MiB | PyTorch RSS MiB |",
  );
  console.log("|---|---|---:|---:|---:|---:|---:|---:|");
  for (const network of o.networks) {
    for (const mode of o.modes) {
      const batch = network === "r50" ? BATCH[mode] / 2 : BATCH[mode];
      const mine: Measurement[] = [], theirs: Measurement[] = [];
      let failure = "";
      for (let r = 0; r < o.rounds; r++) {
        const sides = [
          async () => mine.push(await ours(network, mode, batch, o)),
          async () => {
            if (o.reference) theirs.push(await pytorch(network, mode, batch, o));
          },
        ];
        if (r % 2) sides.reverse();
        for (const side of sides) {
          try {
            await side();
          } catch (e) {
            failure = (e as Error).message;
          }
        }
      }
      const speed = (ms: Measurement[]) => ms.length ? batch / median(ms.flatMap((m) => m.times)) : NaN;
      const rss = (ms: Measurement[]) => {
        if (!ms.length) return "–";
        const peak = Math.max(...ms.map((m) => m.rss_mib));
        const base = median(ms.map((m) => m.base_rss_mib));
        return `${fmt(peak, 0)} (+${fmt(peak - base, 0)})`;
      };
      const a = speed(mine), b = speed(theirs);
      console.log(
        `| ${network} | ${mode} | ${batch} | ${fmt(a)} | ${fmt(b)} | ${fmt(a / b, 2)}× | ${rss(mine)} | ${
          rss(theirs)
        } |`,
      );
      if (failure) console.error(`  ${network} ${mode}: ${failure}`);
    }
  }
  console.log("");
  console.log(`Load average ${loadAvg()} at the end`);
}

if (import.meta.main) await main(Deno.args);
