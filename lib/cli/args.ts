/**
 * Command-line parsing shared by the commands: `node:util` parseArgs with `--help`/`-h`, the
 * usage text on errors, and the exit codes (0 after help, 2 for a usage error).
 *
 * @module
 */
import { parseArgs, type ParseArgsConfig } from "node:util";

/** The `--help` / `-h` option every command takes. */
export const HELP = { help: { type: "boolean", short: "h", default: false } } as const;

/**
 * Parses as `parseArgs(config)` does (include {@linkcode HELP} in its options). Returns the
 * result, or the exit code when the command should stop: 0 after printing the usage for
 * `--help`, 2 after printing a usage error.
 */
export function parseCommand<T extends ParseArgsConfig>(
  config: T,
  usage: string,
): ReturnType<typeof parseArgs<T>> | number {
  let parsed;
  try {
    parsed = parseArgs(config);
  } catch (e) {
    console.error(`${(e as Error).message}\n\n${usage}`);
    return 2;
  }
  if ((parsed.values as { help?: boolean }).help) {
    console.log(usage);
    return 0;
  }
  return parsed;
}
