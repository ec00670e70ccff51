import assert from "node:assert/strict";
import { buildIntoCache, cacheDir, cachedLibrary, VERSION } from "../../ffi/native_build.ts";
import { AfcError } from "../../ffi/status.ts";
import { sourcesText } from "../../tasks/sources.ts";

Deno.test("csrc/SOURCES.txt lists exactly the files a source build needs", () => {
  const committed = Deno.readTextFileSync(new URL("../../csrc/SOURCES.txt", import.meta.url));
  assert.equal(committed, sourcesText(), 'csrc/SOURCES.txt is stale: run "deno run -A tasks/sources.ts"');
});

Deno.test("the cache folder is per version and follows ARCFACE_CACHE, then XDG_CACHE_HOME", () => {
  const saved = { own: Deno.env.get("ARCFACE_CACHE"), xdg: Deno.env.get("XDG_CACHE_HOME") };
  try {
    Deno.env.delete("ARCFACE_CACHE");
    Deno.env.set("XDG_CACHE_HOME", "/var/tmp/xdg");
    assert.equal(cacheDir(), `/var/tmp/xdg/arcface/${VERSION}`);
    Deno.env.set("ARCFACE_CACHE", "/opt/afc");
    assert.equal(cacheDir(), `/opt/afc/${VERSION}`);
  } finally {
    for (const [k, v] of [["ARCFACE_CACHE", saved.own], ["XDG_CACHE_HOME", saved.xdg]] as const) {
      if (v === undefined) Deno.env.delete(k);
      else Deno.env.set(k, v);
    }
  }
});

Deno.test("a read-only cache folder is a clear error and leaves no library behind", async () => {
  if (Deno.uid() === 0) {
    // root ignores permission bits: use a path under a regular file instead, which no one can create
    const file = await Deno.makeTempFile();
    try {
      const dir = `${file}/arcface`;
      await assert.rejects(() => buildIntoCache({ dir, log: () => {} }), (e: unknown) => {
        assert.ok(e instanceof AfcError);
        assert.match(e.message, /^Cannot build libarcface into ".*\/arcface": .*set ARCFACE_CACHE/);
        return true;
      });
      assert.equal(cachedLibrary(dir), undefined);
    } finally {
      await Deno.remove(file);
    }
    return;
  }
  const parent = await Deno.makeTempDir();
  try {
    await Deno.chmod(parent, 0o500);
    const dir = `${parent}/cache`;
    await assert.rejects(() => buildIntoCache({ dir, log: () => {} }), /Cannot build libarcface into/);
    assert.equal(cachedLibrary(dir), undefined);
  } finally {
    await Deno.chmod(parent, 0o700);
    await Deno.remove(parent, { recursive: true });
  }
});

Deno.test("a source list that cannot be fetched fails naming the URL and releases the lock", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const sourceRoot = new URL(`file://${dir}/no-package/`);
    await assert.rejects(
      () => buildIntoCache({ dir, sourceRoot, log: () => {} }),
      /Cannot build libarcface into .*no-package\/csrc\/SOURCES.txt/,
    );
    assert.equal(cachedLibrary(dir), undefined);
    await assert.rejects(() => Deno.stat(`${dir}/.lock`), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a lock left by a dead process is taken over", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/.lock`);
    await Deno.writeTextFile(`${dir}/.lock/pid`, "999999999");
    const sourceRoot = new URL(`file://${dir}/missing/`);
    await assert.rejects(
      () => buildIntoCache({ dir, sourceRoot, log: () => {}, lockTimeoutMs: 2000 }),
      /SOURCES/,
    ); // past the lock, not a lock timeout
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
