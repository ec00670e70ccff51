/**
 * Command-line parsing shared by the commands: `node:util` parseArgs with `--help`/`-h`, the
 * synopsis on errors, and the exit codes (0 after help, 2 for a usage error).
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
    return usageError((e as Error).message, usage);
  }
  if ((parsed.values as { help?: boolean }).help) {
    console.log(usage);
    return 0;
  }
  return parsed;
}

/**
 * Prints a usage error: `message`, then the command's synopsis (`usage` up to its first
 * blank line) and where the options are described. Returns the exit code, 2.
 */
export function usageError(message: string, usage: string): number {
  console.error(`${message}\n${usage.split("\n\n")[0]}\n(--help describes the options)`);
  return 2;
}

/** The integer value of option `--name`, written in decimal digits, within `min`..`max`; a RangeError naming the option otherwise. */
export function intOption(
  v: string | undefined,
  name: string,
  min = 1,
  max = Number.MAX_SAFE_INTEGER,
): number {
  const n = Number(v);
  if (v === undefined || !/^\d+$/.test(v.trim()) || n < min || n > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in ${min}..${max}`;
    throw new RangeError(`Invalid --${name} "${v}": expected an integer ${range}`);
  }
  return n;
}

/**
 * Checks, before any work, that `path` can be written: its folder exists (or is made when
 * `makeFolder`), it is not a folder itself, and it is not one of `inputs`. Returns the error
 * text, or undefined when the path is usable.
 */
export function outputProblem(
  path: string,
  options: { inputs?: string[]; extension?: string; makeFolder?: boolean } = {},
): string | undefined {
  const resolve = (p: string) => (p.startsWith("/") ? p : `${Deno.cwd()}/${p}`).replace(/\/+$/, "");
  if (options.inputs?.some((i) => resolve(i) === resolve(path))) {
    return `Cannot write "${path}": it is also the input (choose another output file)`;
  }
  if (options.extension && !path.endsWith(options.extension)) {
    return `Cannot write "${path}": expected a file name ending in ${options.extension}`;
  }
  try {
    if (Deno.statSync(path).isDirectory) return `Cannot write "${path}": it is a folder (give a file name)`;
  } catch { /* a new file */ }
  const folder = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) || "/" : ".";
  try {
    if (!Deno.statSync(folder).isDirectory) return `Cannot write "${path}": "${folder}" is not a folder`;
  } catch {
    if (!options.makeFolder) {
      return `Cannot write "${path}": the folder "${folder}" does not exist (create it first)`;
    }
    try {
      Deno.mkdirSync(folder, { recursive: true });
    } catch (e) {
      return `Cannot write "${path}": cannot create the folder "${folder}" (${(e as Error).message})`;
    }
  }
  return undefined;
}
