import assert from "node:assert/strict";
import { lib, openLibrary } from "../../ffi/load.ts";
import { AfcError } from "../../ffi/status.ts";
import { check, cString } from "../../ffi/mod.ts";
import { ABI_VERSION } from "../../ffi/symbols.ts";

Deno.test("the built library reports the ABI version of arcface.h, which the bindings expect", () => {
  const header = Deno.readTextFileSync(new URL("../../csrc/include/arcface.h", import.meta.url));
  const declared = Number(header.match(/#define AFC_ABI_VERSION (\d+)/)?.[1]);
  assert.equal(ABI_VERSION, declared);
  assert.equal(lib().afc_abi_version(), declared);
});

Deno.test("a missing library file is an AfcError naming the path", () => {
  assert.throws(() => openLibrary("/nonexistent/libarcface.so"), (e: unknown) => {
    assert.ok(e instanceof AfcError);
    assert.match(e.message, /Cannot load libarcface "\/nonexistent\/libarcface.so"/);
    return true;
  });
});

Deno.test("a file that is not a shared library is refused with its path", async () => {
  const path = await Deno.makeTempFile({ suffix: ".so" });
  await Deno.writeTextFile(path, "not an ELF file");
  try {
    assert.throws(() => openLibrary(path), /Cannot load libarcface/);
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("a NULL last-error pointer means no error, without throwing", () => {
  assert.equal(cString(lib().afc_last_error()), null);
  check(0, "Cannot do nothing");
});

Deno.test("a native failure becomes an AfcError with status, code and detail", () => {
  const out = new BigUint64Array(1);
  const status = lib().afc_context_create(7, 1, out);
  assert.throws(() => check(status, "Cannot create context"), (e: unknown) => {
    assert.ok(e instanceof AfcError);
    assert.equal(e.status, -1);
    assert.equal(e.code, "INVALID_ARGUMENT");
    assert.match(
      e.message,
      /^Cannot create context: backend 7 is unknown: expected 0 \(CPU\) or 1 \(CUDA\)$/,
    );
    return true;
  });
});

Deno.test("a library of another ABI version is refused naming both versions, before its symbols are bound", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/old.c`, "unsigned afc_abi_version(void) { return 1; }\n");
  const cc = await new Deno.Command("cc", {
    args: ["-shared", "-fPIC", "-o", `${dir}/libold.so`, `${dir}/old.c`],
  })
    .output();
  assert.equal(cc.code, 0, new TextDecoder().decode(cc.stderr));
  assert.throws(() => openLibrary(`${dir}/libold.so`), (e: unknown) => {
    assert.ok(e instanceof AfcError);
    assert.equal(e.code, "UNSUPPORTED");
    assert.match(e.message, new RegExp(`ABI version 1, these bindings need ${ABI_VERSION} \\(rebuild`));
    return true;
  });
});
