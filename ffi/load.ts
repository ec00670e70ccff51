/**
 * Finds, opens and checks libarcface. Lookup order: the `ARCFACE_LIB` environment
 * variable, then `build/libarcface.so` next to this checkout, then this version's build in
 * the user's cache (made by {@linkcode ensureLibrary} on first use of a remote import). A
 * missing or mismatched library is an `AfcError` that lists what was tried and how to build it.
 *
 * @module
 */
import { ABI_VERSION, symbols } from "./symbols.ts";
import { AfcError, Status } from "./status.ts";
import { buildIntoCache, cachedLibrary } from "./native_build.ts";

/** The opened library's functions. */
export type Lib = Deno.DynamicLibrary<typeof symbols>["symbols"];

let cached: Lib | undefined;

/** Paths tried, in order, to find the library. */
export function candidatePaths(): string[] {
  const paths: string[] = [];
  const env = Deno.env.get("ARCFACE_LIB");
  if (env) return [env];
  const url = new URL("../build/libarcface.so", import.meta.url);
  if (url.protocol === "file:") paths.push(decodeURIComponent(url.pathname));
  const cached = cachedLibrary();
  if (cached) paths.push(cached);
  return paths;
}

function exists(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/**
 * Makes sure a library is there to open: when neither `ARCFACE_LIB`, a checkout build nor a
 * cached build exists, builds the C sources into the cache (once per version; see
 * `native_build.ts`). Every entry point (the CLI, `train`) awaits it before the first call.
 *
 * @example
 * ```ts
 * import { ensureLibrary } from "./load.ts";
 * await ensureLibrary(); // builds into the cache only when no library is found
 * ```
 */
export async function ensureLibrary(): Promise<void> {
  if (cached || Deno.env.get("ARCFACE_LIB") || candidatePaths().some(exists)) return;
  await buildIntoCache();
}

function dlopen<S extends Deno.ForeignLibraryInterface>(path: string, table: S): Deno.DynamicLibrary<S> {
  try {
    return Deno.dlopen(path, table);
  } catch (e) {
    throw new AfcError(`Cannot load libarcface "${path}": ${(e as Error).message}`, Status.NOT_FOUND, {
      cause: e,
    });
  }
}

/**
 * Opens the library at `path` after checking its ABI version on its own, so that a stale
 * build whose symbols differ is reported as stale rather than as a missing symbol.
 */
export function openLibrary(path: string): Lib {
  const probe = dlopen(path, { afc_abi_version: symbols.afc_abi_version });
  const abi = probe.symbols.afc_abi_version();
  probe.close();
  if (abi !== ABI_VERSION) {
    throw new AfcError(
      `Cannot use libarcface "${path}": ABI version ${abi}, these bindings need ${ABI_VERSION} (rebuild with "deno task build", or remove the stale cached build)`,
      Status.UNSUPPORTED,
    );
  }
  return dlopen(path, symbols).symbols;
}

/** The process-wide library, opened on first use. */
export function lib(): Lib {
  if (cached) return cached;
  const tried = candidatePaths();
  for (const path of tried) {
    if (!exists(path)) continue;
    cached = openLibrary(path);
    return cached;
  }
  throw new AfcError(
    `Cannot find libarcface: tried ${
      tried.map((p) => `"${p}"`).join(", ") || "nothing"
    } (build it with "deno task build", or await ensureLibrary() to build it into the cache, or set ARCFACE_LIB to its path)`,
    Status.NOT_FOUND,
  );
}
