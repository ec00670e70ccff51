import assert from "node:assert/strict";
import { symbols } from "../../ffi/symbols.ts";

const header = Deno.readTextFileSync(new URL("../../csrc/include/arcface.h", import.meta.url));

/** Names of every `AFC_API` function in the header, in order. */
function headerFunctions(): string[] {
  const names: string[] = [];
  for (const m of header.matchAll(/AFC_API\s+[^;(]*?\b(afc_\w+)\s*\(/g)) names.push(m[1]);
  return names;
}

Deno.test("ffi/symbols.ts lists exactly the functions of arcface.h, in header order", () => {
  assert.deepEqual(Object.keys(symbols), headerFunctions());
});

Deno.test("every symbol's parameter count matches the header", () => {
  for (const m of header.matchAll(/AFC_API\s+[^;(]*?\b(afc_\w+)\s*\(([^)]*)\)/g)) {
    const params = m[2].trim() === "void" || m[2].trim() === "" ? 0 : m[2].split(",").length;
    const sym = symbols[m[1] as keyof typeof symbols];
    assert.equal(sym.parameters.length, params, `${m[1]}: header has ${params} parameters`);
  }
});
