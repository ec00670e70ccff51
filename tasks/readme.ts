/**
 * `deno run -A tasks/readme.ts`: writes the configuration reference into README.md between
 * `<!-- config-reference:start -->` and `<!-- config-reference:end -->`, generated from the
 * config schema so that it cannot drift (a test compares them).
 *
 * @module
 */
import { schemaMarkdown } from "../lib/config.ts";

const START = "<!-- config-reference:start -->", END = "<!-- config-reference:end -->";

/** README text with the reference section replaced by the schema's table. */
export function withConfigReference(readme: string): string {
  const a = readme.indexOf(START), b = readme.indexOf(END);
  if (a < 0 || b < a) throw new Error(`Cannot update README.md: the markers ${START} … ${END} are missing`);
  return `${readme.slice(0, a + START.length)}\n\n${schemaMarkdown()}\n\n${readme.slice(b)}`;
}

if (import.meta.main) {
  const path = new URL("../README.md", import.meta.url);
  Deno.writeTextFileSync(path, withConfigReference(Deno.readTextFileSync(path)));
  await new Deno.Command(Deno.execPath(), { args: ["fmt", path.pathname] }).output();
}
