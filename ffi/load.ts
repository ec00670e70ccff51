/**
 * Finds, opens and checks libarcface. Lookup order: the `ARCFACE_LIB` environment
 * variable, then `build/libarcface.so` next to this checkout. A missing or mismatched
 * library is an `AfcError` that lists what was tried and how to build it.
 *
 * @module
 */
import { ABI_VERSION, symbols } from "./symbols.ts";
import { AfcError, Status } from "./status.ts";

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
  return paths;
}

/** Opens the library at `path` and checks its ABI version. */
export function openLibrary(path: string): Lib {
  let lib: Deno.DynamicLibrary<typeof symbols>;
  try {
    lib = Deno.dlopen(path, symbols);
  } catch (e) {
    throw new AfcError(
      `Cannot load libarcface "${path}": ${(e as Error).message}`,
      Status.NOT_FOUND,
      { cause: e },
    );
  }
  const abi = lib.symbols.afc_abi_version();
  if (abi !== ABI_VERSION) {
    lib.close();
    throw new AfcError(
      `Cannot use libarcface "${path}": ABI version ${abi}, these bindings need ${ABI_VERSION} (rebuild with "deno task build")`,
      Status.UNSUPPORTED,
    );
  }
  return lib.symbols;
}

/** The process-wide library, opened on first use. */
export function lib(): Lib {
  if (cached) return cached;
  const tried = candidatePaths();
  for (const path of tried) {
    try {
      Deno.statSync(path);
    } catch {
      continue;
    }
    cached = openLibrary(path);
    return cached;
  }
  throw new AfcError(
    `Cannot find libarcface: tried ${
      tried.map((p) => `"${p}"`).join(", ") || "nothing"
    } (build it with "deno task build", or set ARCFACE_LIB to its path)`,
    Status.NOT_FOUND,
  );
}
