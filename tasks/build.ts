/**
 * Builds libarcface.so with CMake (Release) into build/. Used by `deno task build` and,
 * before running tests, by `deno task test`.
 *
 * @module
 */

import { sourcesText } from "./sources.ts";

const root = new URL("..", import.meta.url).pathname;

async function run(cmd: string[]): Promise<void> {
  const { code } = await new Deno.Command(cmd[0], { args: cmd.slice(1), cwd: root }).spawn().status;
  if (code !== 0) throw new Error(`Cannot build libarcface: "${cmd.join(" ")}" exited with ${code}`);
}

/** Configures (once) and builds the native library and its C tests. */
export async function build(buildDir = "build"): Promise<void> {
  const sources = `${root}csrc/SOURCES.txt`;
  if (Deno.readTextFileSync(sources) !== sourcesText()) {
    Deno.writeTextFileSync(`${sources}.tmp`, sourcesText());
    Deno.renameSync(`${sources}.tmp`, sources);
  }
  try {
    Deno.statSync(`${root}${buildDir}/CMakeCache.txt`);
  } catch {
    await run(["cmake", "-S", ".", "-B", buildDir, "-DCMAKE_BUILD_TYPE=Release"]);
  }
  await run(["cmake", "--build", buildDir, `-j${navigator.hardwareConcurrency}`]);
}

if (import.meta.main) {
  try {
    await build();
  } catch (e) {
    console.error((e as Error).message);
    Deno.exit(1);
  }
}
