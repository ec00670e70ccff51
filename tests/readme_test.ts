import assert from "node:assert/strict";
import { withConfigReference } from "../tasks/readme.ts";

Deno.test("the README's config reference is the schema's (run tasks/readme.ts after changing keys)", () => {
  const readme = Deno.readTextFileSync(new URL("../README.md", import.meta.url));
  // deno fmt pads the table's cells; compare the cells.
  const cells = (s: string) => s.replace(/ *\| */g, "|").replace(/-{3,}/g, "---");
  assert.equal(cells(readme), cells(withConfigReference(readme)));
});
