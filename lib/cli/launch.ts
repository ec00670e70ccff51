/**
 * `deno task launch --nproc-per-node N [--nnodes M --node-rank R] [--rdzv <dir | redis://h:p>
 * | --master-addr A --master-port P] <config> [--key=value…]`: starts N training processes on
 * this machine with torchrun's environment, as `torchrun train_v2.py` does. Ctrl-C stops
 * every rank; when one rank fails the others are stopped and its exit code is returned.
 *
 * @module
 */
import { HELP, intOption, parseCommand, usageError } from "./args.ts";
import { loadConfig } from "../config.ts";
import { makeOutputDir } from "../trainer.ts";

const USAGE = `Usage: arcface launch --nproc-per-node N [options] <config.yaml> [--key=value …]

Starts N training ranks on this machine (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE set
as torchrun sets them). Threads per rank default to the cores divided by N.

Options:
  --nproc-per-node N   ranks on this machine (default 1)
  --nnodes M           machines taking part (default 1)
  --node-rank R        this machine's index, 0..M-1 (default 0)
  --rdzv STORE         rendezvous store: a directory every machine sees, or redis://host:port
                       (default on one machine: a new temporary directory)
  --master-addr A      with --master-port: the Redis server redis://A:P as the store
  --master-port P
  --run-id ID          namespace of this run in the store (default: a new random id on one
                       machine; required with several machines, equal on all of them)
  --address HOST       address the ranks listen on (default 127.0.0.1 on one machine, this
                       machine's host name on several)
  --timeout-s S        rendezvous and collective timeout (default 300)
  --standalone         torchrun's flag for one machine; accepted (one machine is the default)`;

const LAUNCH_OPTIONS = {
  "nproc-per-node": { type: "string", default: "1" },
  nnodes: { type: "string", default: "1" },
  "node-rank": { type: "string", default: "0" },
  rdzv: { type: "string" },
  "master-addr": { type: "string" },
  "master-port": { type: "string" },
  "run-id": { type: "string" },
  address: { type: "string" },
  "timeout-s": { type: "string", default: "300" },
  standalone: { type: "boolean" },
  ...HELP,
} as const;
const OPTIONS = new Set(Object.keys(LAUNCH_OPTIONS));

function isDirectory(path: string): boolean {
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
}

/** Runs the launch command; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  // Our own options come first; the config and its --key=value overrides follow.
  // torchrun's spellings (--nproc_per_node) are ours with "-".
  args = args.map((a) => {
    const m = /^--([a-z_]+)(=.*)?$/.exec(a);
    const dashed = m ? m[1].replaceAll("_", "-") : "";
    return m && OPTIONS.has(dashed) ? `--${dashed}${m[2] ?? ""}` : a;
  });
  let i = 0;
  while (i < args.length) {
    const m = /^--([\w-]+)(=.*)?$/.exec(args[i]);
    if (args[i] === "-h") i++;
    else if (m && OPTIONS.has(m[1])) {
      const flag = LAUNCH_OPTIONS[m[1] as keyof typeof LAUNCH_OPTIONS].type === "boolean";
      i += m[2] !== undefined || flag ? 1 : 2;
    } else break;
  }
  const own = args.slice(0, i), rest = args.slice(i);
  const parsed = parseCommand({ args: own, options: LAUNCH_OPTIONS }, USAGE);
  if (typeof parsed === "number") return parsed;
  const { values } = parsed;
  if (rest.length === 0 || rest[0].startsWith("--")) {
    // "--nproc-per-node configs/x.yaml" takes the config as the count.
    const took = Object.entries(values).find(([, v]) => typeof v === "string" && /\.(ya?ml|py)$/.test(v));
    if (took) {
      return usageError(`--${took[0]} took "${took[1]}" as its value: give it one, as --${took[0]}=2`, USAGE);
    }
    if (rest.length) {
      const name = rest[0].split("=")[0];
      const hint = name.startsWith("--rdzv") ? " (--rdzv takes a shared directory or redis://host:port)" : "";
      return usageError(
        `Unknown launch option "${name}"${hint}: expected --${
          [...OPTIONS].join(", --")
        }, then the config file`,
        USAGE,
      );
    }
    return usageError(`Expected a config file after the launch options`, USAGE);
  }
  const late = rest.find((a) => OPTIONS.has(/^--([\w-]+)/.exec(a)?.[1].replaceAll("_", "-") ?? ""));
  if (late) {
    return usageError(`Launch option "${late}" comes after the config: give launch options before it`, USAGE);
  }
  let nproc: number, nnodes: number, nodeRank: number, timeoutS: number;
  try {
    nproc = intOption(values["nproc-per-node"], "nproc-per-node");
    nnodes = intOption(values.nnodes, "nnodes");
    nodeRank = intOption(values["node-rank"], "node-rank", 0);
    timeoutS = intOption(values["timeout-s"], "timeout-s", 1, 7 * 86400);
    if (values.standalone && nnodes > 1) {
      throw new RangeError(`--standalone is one machine, but --nnodes is ${nnodes}: give one of them`);
    }
    if (nodeRank >= nnodes) {
      throw new RangeError(`Invalid --node-rank ${nodeRank}: expected 0..${nnodes - 1}`);
    }
  } catch (e) {
    console.error((e as Error).message);
    return 2;
  }
  if (!values["master-addr"] !== !values["master-port"]) {
    console.error(
      "--master-addr and --master-port go together: give both (the Redis server's host and port), or --rdzv",
    );
    return 2;
  }
  let store = values.rdzv;
  if (!store && values["master-addr"] && values["master-port"]) {
    store = `redis://${values["master-addr"]}:${values["master-port"]}`;
  }
  let runId = values["run-id"];
  if (nnodes > 1 && (!store || !runId)) {
    console.error(
      `Cannot launch on ${nnodes} machines without --rdzv (or --master-addr/--master-port of a Redis server) and --run-id: every machine must name the same store and run`,
    );
    return 2;
  }
  if (store && /^[a-z][a-z0-9+.-]*:\/\//i.test(store) && !/^(redis|file):\/\//.test(store)) {
    console.error(`Invalid --rdzv "${store}": expected a shared directory or redis://host:port`);
    return 2;
  }
  if (store && /^redis:\/\/(:|\/|$)/.test(store)) {
    console.error(`Invalid --rdzv "${store}": no host (expected redis://host:port)`);
    return 2;
  }
  if (runId !== undefined && !/^[A-Za-z0-9._-]{1,128}$/.test(runId)) {
    console.error(`Invalid --run-id "${runId}": expected 1 to 128 letters, digits, ".", "_" or "-"`);
    return 2;
  }
  if (store && !store.startsWith("redis://") && !isDirectory(store.replace(/^file:\/\//, ""))) {
    console.error(
      `Invalid --rdzv "${store}": no such directory (create it on a filesystem every machine sees, or use redis://host:port)`,
    );
    return 2;
  }
  // The config and the output folder once here, so that a mistake prints once rather than
  // once per rank.
  try {
    const positional = rest.filter((a) => !a.startsWith("--"));
    const config = loadConfig(
      positional[0],
      rest.filter((a) => a.startsWith("--") && !/^--local[-_]rank/.test(a)),
      { worldSize: nproc * nnodes },
    );
    await makeOutputDir(config.derived.outputDir);
  } catch (e) {
    console.error((e as Error).message);
    return 2;
  }
  let tempStore: string | undefined;
  if (!store) store = tempStore = await Deno.makeTempDir({ prefix: "arcface-rdzv-" });
  runId ??= `run-${crypto.randomUUID().slice(0, 8)}`;
  const address = values.address ?? (nnodes > 1 ? Deno.hostname() : "127.0.0.1");

  const cli = new URL("../../cli.ts", import.meta.url).href;
  const world = nproc * nnodes;
  const children = Array.from({ length: nproc }, (_, local) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", cli, "train", ...rest],
      env: {
        RANK: String(nodeRank * nproc + local),
        WORLD_SIZE: String(world),
        LOCAL_RANK: String(local),
        LOCAL_WORLD_SIZE: String(nproc),
        ARCFACE_RDZV: store!,
        ARCFACE_RUN_ID: runId!,
        ARCFACE_ADDRESS: address,
        ARCFACE_TIMEOUT_MS: String(timeoutS * 1000),
      },
      stdin: "null",
    }).spawn());

  const stopAll = (signal: Deno.Signal) => {
    for (const c of children) {
      try {
        c.kill(signal);
      } catch { /* already gone */ }
    }
  };
  // Ctrl-C reaches the ranks from the terminal too; SIGTERM (from a scheduler, or passed on
  // here) asks the same graceful stop of ranks it did not reach, and ranks count only a
  // second SIGINT as "quit at once".
  let interrupted = false;
  const onSignal = () => {
    interrupted = true;
    stopAll("SIGTERM");
  };
  for (const signal of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(signal, onSignal);
  const STOPPED = 130; // a rank that stopped on request and wrote its checkpoint
  let failed: { rank: number; code: number } | undefined;
  const codes: number[] = [];
  const killed: number[] = [];
  try {
    await Promise.all(children.map(async (c, local) => {
      const { code, signal } = await c.status;
      codes.push(code);
      // Killed by a signal: it saved nothing, and the others cannot go on without it.
      if (signal) killed.push(nodeRank * nproc + local);
      // Ended by a stop request it had no handler for yet (while the ranks meet), or told to
      // quit at once (a second Ctrl-C): a stop, with nothing left to save.
      if (signal === "SIGINT" || signal === "SIGTERM") {
        interrupted = true;
        stopAll("SIGKILL");
      }
      // A stop on request is agreed by all ranks at the same step: the others follow. A rank
      // that died otherwise leaves them waiting in a collective.
      if (code !== 0 && (code !== STOPPED || signal) && !failed && !interrupted) {
        failed = { rank: nodeRank * nproc + local, code };
        console.error(`Rank ${failed.rank} failed (exit code ${code}): stopping the other ranks`);
        stopAll("SIGKILL"); // they may wait in a collective for the failed rank
      }
    }));
  } finally {
    for (const signal of ["SIGINT", "SIGTERM"] as const) Deno.removeSignalListener(signal, onSignal);
    if (tempStore) await Deno.remove(tempStore, { recursive: true }).catch(() => {});
  }
  if (failed) return failed.code;
  if (killed.length) {
    console.error(
      `Stopped: rank(s) ${
        killed.sort((a, b) => a - b).join(", ")
      } ended by a signal (while starting, or at a second Ctrl-C) and wrote no checkpoint`,
    );
  } else if (codes.every((c) => c === STOPPED)) {
    console.error("Stopped: every rank wrote its checkpoint; --resume=true continues the run");
    return STOPPED;
  }
  return codes.find((c) => c !== 0) ?? 0;
}
