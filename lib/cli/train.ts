/**
 * `deno task train [config.yaml] [--key=value…]`: trains as `train_v2.py` does. Without a
 * config it trains the shipped default, `configs/orl_mbf.yaml`. Under a launcher (this
 * project's `launch`, torchrun's or Slurm's environment) the process joins its world first.
 *
 * @module
 */
import { ConfigError, loadConfig } from "../config.ts";
import { train } from "../trainer.ts";
import { joinWorld, worldFromEnv } from "../launch.ts";
import { usageError } from "./args.ts";

const USAGE = `Usage: arcface train [config.yaml] [--key=value …]

Trains a backbone and Partial FC as the config says (merged over base.yaml in the config's
folder; --key=value overrides any key). Without a config: configs/orl_mbf.yaml, MobileFaceNet
on the shipped ORL faces. Output goes to the config's "output" folder (default
work_dirs/<config name>): training.log, model.safetensors, loss.png, TensorBoard events and,
with save_all_states after every epoch, checkpoints that --resume=true continues from.
Ctrl-C (or SIGTERM) stops at the next step and writes such a checkpoint; Ctrl-C twice quits.`;

/** The default run: the ORL config next to this module. */
export function defaultConfigPath(): string {
  const url = new URL("../../configs/orl_mbf.yaml", import.meta.url);
  if (url.protocol !== "file:") {
    throw new ConfigError(
      `Cannot find the default config: give a config path (the module is at ${url.href})`,
    );
  }
  const abs = decodeURIComponent(url.pathname), cwd = Deno.cwd();
  return abs.startsWith(`${cwd}/`) ? abs.slice(cwd.length + 1) : abs;
}

/** Runs the train command; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    console.log(USAGE);
    return 0;
  }
  // torchrun passes --local-rank / --local_rank to its scripts: accepted, LOCAL_RANK rules.
  args = args.filter((a) => !/^--local[-_]rank(=\d+)?$/.test(a));
  const bare = args.findIndex((a) => /^--?[A-Za-z_][\w-]*$/.test(a));
  if (bare >= 0) {
    const next = args[bare + 1];
    return usageError(
      `Invalid option "${args[bare]}": overrides are written --key=value${
        next !== undefined && !next.startsWith("-") ? ` (e.g. ${args[bare]}=${next})` : ""
      }`,
      USAGE,
    );
  }
  const positional = args.filter((a) => !a.startsWith("--"));
  if (positional.length > 1) {
    return usageError(
      `Expected at most one config file, got ${positional.length}: ${positional.join(" ")}`,
      USAGE,
    );
  }
  const overrides = args.filter((a) => a.startsWith("--"));
  const controller = new AbortController();
  // The first Ctrl-C (or SIGTERM from a scheduler) stops at the next step and writes a
  // checkpoint; a second Ctrl-C quits at once.
  let firstAt = 0;
  const onSignal = (signal: Deno.Signal) => {
    if (controller.signal.aborted) {
      // `deno task` passes the terminal's Ctrl-C on to its child as well: one key press
      // arrives twice within milliseconds, and must not count as the second.
      if (signal !== "SIGINT" || performance.now() - firstAt < 1000) return;
      // Die of the signal, as a program without a handler does: exit() would run the
      // library's destructors under its loader threads.
      Deno.removeSignalListener("SIGINT", onInt);
      Deno.kill(Deno.pid, "SIGINT");
      return;
    }
    firstAt = performance.now();
    console.error("Interrupted: stopping after the current step (Ctrl-C again to quit at once)");
    controller.abort();
  };
  const onInt = () => onSignal("SIGINT"), onTerm = () => onSignal("SIGTERM");
  try {
    const world = worldFromEnv();
    const config = loadConfig(positional[0] ?? defaultConfigPath(), overrides, {
      worldSize: world.worldSize,
    });
    // The rendezvous blocks this thread, silently until it times out: say where it waits.
    if (world.worldSize > 1 && world.localRank === 0) {
      console.error(
        `Meeting ${world.worldSize} ranks at ${world.store} (run id "${world.runId}"); waiting up to ${
          world.timeoutMs / 1000
        } s for them`,
      );
    }
    // Signal handlers only once the ranks have met: until then a signal ends the process at
    // once (there is nothing to save yet).
    using joined = await joinWorld(world);
    Deno.addSignalListener("SIGINT", onInt);
    Deno.addSignalListener("SIGTERM", onTerm);
    // 130 also where another rank asked for the stop: the run did not finish.
    const result = await train(config, { world: joined.world, signal: controller.signal });
    return result.stopped ? 130 : 0;
  } catch (e) {
    // Every failure is one message: the library's errors name the value and the fix, and the
    // file-system errors of Deno name the path.
    console.error((e as Error).message);
    return 1;
  } finally {
    for (const [signal, f] of [["SIGINT", onInt], ["SIGTERM", onTerm]] as const) {
      try {
        Deno.removeSignalListener(signal, f);
      } catch { /* never added */ }
    }
  }
}
