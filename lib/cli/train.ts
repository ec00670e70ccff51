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
import { AfcError } from "../../ffi/status.ts";

const USAGE = `Usage: arcface train [config.yaml] [--key=value …]

Trains a backbone and Partial FC as the config says (merged over base.yaml in the config's
folder; --key=value overrides any key). Without a config: configs/orl_mbf.yaml, MobileFaceNet
on the shipped ORL faces. Output goes to the config's "output" folder (default
work_dirs/<config name>): training.log, model.safetensors, TensorBoard events and, with
save_all_states, checkpoints that --resume=true continues from.`;

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
  const positional = args.filter((a) => !a.startsWith("--"));
  if (positional.length > 1) {
    console.error(
      `Expected at most one config file, got ${positional.length}: ${positional.join(" ")}\n\n${USAGE}`,
    );
    return 2;
  }
  const overrides = args.filter((a) => a.startsWith("--"));
  const controller = new AbortController();
  const onSignal = () => {
    console.error("Interrupted: stopping after the current step");
    controller.abort();
  };
  try {
    const world = worldFromEnv();
    const config = loadConfig(positional[0] ?? defaultConfigPath(), overrides, {
      worldSize: world.worldSize,
    });
    Deno.addSignalListener("SIGINT", onSignal);
    using joined = await joinWorld(world);
    await train(config, { world: joined.world, signal: controller.signal });
    return controller.signal.aborted ? 130 : 0;
  } catch (e) {
    if (
      e instanceof ConfigError || e instanceof AfcError || e instanceof RangeError || e instanceof TypeError
    ) {
      console.error(e.message);
      return 1;
    }
    throw e;
  } finally {
    try {
      Deno.removeSignalListener("SIGINT", onSignal);
    } catch { /* never added */ }
  }
}
