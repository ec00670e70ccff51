/**
 * The arcface command line: `deno run -A cli.ts <command> [args…]`, or `deno task <command>`
 * in a checkout. Each command lives in `lib/cli/<command>.ts` and is loaded only when used.
 *
 * @module
 */

import { ensureLibrary } from "./ffi/load.ts";

type Main = { main(args: string[]): Promise<number> };

/** The commands, each a module exporting `main(args): Promise<number>` (the exit code). */
const COMMANDS: Record<string, { load: () => Promise<Main>; summary: string }> = {
  train: { load: () => import("./lib/cli/train.ts"), summary: "train a model from a YAML config" },
  launch: {
    load: () => import("./lib/cli/launch.ts"),
    summary: "start several training processes (like torchrun)",
  },
  eval: { load: () => import("./lib/cli/eval.ts"), summary: "verification accuracy of a model on .bin sets" },
  "eval-ijb": {
    load: () => import("./lib/cli/eval_ijb.ts"),
    summary: "IJB-B/C 1:1 verification (TAR at FAR)",
  },
  pack: {
    load: () => import("./lib/cli/pack.ts"),
    summary: "pack an image folder or list into train.rec/.idx",
  },
  export: { load: () => import("./lib/cli/export.ts"), summary: "export a model to ONNX" },
  import: {
    load: () => import("./lib/cli/import.ts"),
    summary: "convert an arcface_torch .pt/.pth to safetensors",
  },
  embed: { load: () => import("./lib/cli/embed.ts"), summary: "embeddings of image files" },
};

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return `Usage: arcface <command> [options]\n\nCommands:\n${lines.join("\n")}\n\n` +
    `Run "arcface <command> --help" for a command's options.`;
}

/** Runs one command line and returns its exit code. */
export async function run(args: string[]): Promise<number> {
  const [name, ...rest] = args;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    console.log(usage());
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    console.error(`Unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  if (!rest.includes("--help") && !rest.includes("-h")) await ensureLibrary();
  return await (await command.load()).main(rest);
}

if (import.meta.main) Deno.exit(await run(Deno.args));
