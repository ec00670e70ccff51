/**
 * `deno task test`: builds the native library, runs its C unit tests (CTest) and the Deno
 * tests, and ends with one plain line `N passed, N failed` (`, N skipped` when some were).
 * Extra arguments replace the default targets of `deno test` (tests/ and the documentation
 * examples of mod.ts, lib/ and ffi/), e.g. a file.
 *
 * @module
 */
import { build } from "./build.ts";

const root = new URL("..", import.meta.url).pathname;
const counts = { passed: 0, failed: 0, skipped: 0 };

async function capture(cmd: string, args: string[]): Promise<{ code: number; text: string }> {
  const child = new Deno.Command(cmd, { args, cwd: root, stdout: "piped", stderr: "piped" }).spawn();
  const decoder = new TextDecoder();
  let text = "";
  const pump = async (stream: ReadableStream<Uint8Array>, sink: typeof Deno.stdout) => {
    for await (const chunk of stream) {
      text += decoder.decode(chunk, { stream: true });
      await sink.write(chunk);
    }
  };
  await Promise.all([pump(child.stdout, Deno.stdout), pump(child.stderr, Deno.stderr)]);
  return { code: (await child.status).code, text };
}

await build();

// CTest prints one line per test: "1/3 Test #1: name ....   Passed" / "***Failed" / "Skipped".
const ctest = await capture("ctest", ["--test-dir", "build", "--output-on-failure", "--timeout", "600"]);
for (const line of ctest.text.split("\n")) {
  if (!/Test\s+#\d+:/.test(line)) continue;
  if (/\sPassed\s/.test(line)) counts.passed++;
  else if (/Not Run|Skipped/.test(line)) counts.skipped++;
  else counts.failed++;
}

// Deno's summary: "ok | 12 passed (3 steps) | 0 failed | 1 ignored (…)".
// The tests, and the examples in the modules' documentation (`--doc` runs them).
const denoArgs = [
  "test",
  "-A",
  "--no-check=remote",
  "--doc",
  ...(Deno.args.length ? Deno.args : ["tests/", "mod.ts", "lib/", "ffi/"]),
];
const deno = await capture(Deno.execPath(), denoArgs);
const summary = deno.text.match(/\|\s*(\d+) passed[^|]*\|\s*(\d+) failed(?:[^|]*\|\s*(\d+) ignored)?/);
if (summary) {
  counts.passed += Number(summary[1]);
  counts.failed += Number(summary[2]);
  counts.skipped += Number(summary[3] ?? 0);
} else if (deno.code !== 0) {
  counts.failed++; // the run itself failed (type error, crash) before reporting
}

const skipped = counts.skipped ? `, ${counts.skipped} skipped` : "";
console.log(`${counts.passed} passed, ${counts.failed} failed${skipped}`);
Deno.exit(counts.failed || ctest.code || deno.code ? 1 : 0);
