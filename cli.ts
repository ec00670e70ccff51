/**
 * The arcface command line: `deno run -A cli.ts <command> [args…]`, or `deno task <command>`
 * in a checkout. Each command lives in `lib/cli/<command>.ts` and is loaded only when used.
 *
 * @module
 */

/** The commands, each a module exporting `main(args): Promise<number>` (the exit code). */
const COMMANDS: Record<string, { module: string; summary: string }> = {
  train: { module: "./lib/cli/train.ts", summary: "train a model from a YAML config" },
  launch: { module: "./lib/cli/launch.ts", summary: "start several training processes (like torchrun)" },
  eval: { module: "./lib/cli/eval.ts", summary: "verification accuracy of a model on .bin sets" },
  pack: { module: "./lib/cli/pack.ts", summary: "pack an image folder or list into train.rec/.idx" },
  export: { module: "./lib/cli/export.ts", summary: "export a model to ONNX" },
  import: { module: "./lib/cli/import.ts", summary: "convert an arcface_torch .pt/.pth to safetensors" },
  embed: { module: "./lib/cli/embed.ts", summary: "embeddings of image files" },
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
  const mod = await import(new URL(command.module, import.meta.url).href);
  return await mod.main(rest);
}

if (import.meta.main) Deno.exit(await run(Deno.args));
