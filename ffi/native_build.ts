/**
 * Builds libarcface from its C sources into a per-version cache folder, for uses of the
 * package that have no build of their own (a remote import, or a checkout never built).
 * The sources are fetched relative to this module (`csrc/SOURCES.txt` lists them), so the
 * same code works from a `file:` checkout and from an `https:` URL. Nothing but sources is
 * downloaded: the library is compiled here, with CMake and the system's compiler.
 *
 * @module
 */
import meta from "../deno.json" with { type: "json" };
import { AfcError, Status } from "./status.ts";

/** The package version; the cache folder is per version. */
export const VERSION: string = meta.version;

const LIB_NAME = "libarcface.so";
const APT_HINT =
  "sudo apt-get install build-essential cmake libdnnl-dev libopenblas-dev libturbojpeg0-dev libpng-dev libgloo-dev";

/** The folder holding this version's cached build: `$ARCFACE_CACHE`, else the platform cache. */
export function cacheDir(): string {
  const own = Deno.env.get("ARCFACE_CACHE");
  if (own) return `${own}/${VERSION}`;
  const home = Deno.env.get("HOME") ?? ".";
  let base = Deno.env.get("XDG_CACHE_HOME") || `${home}/.cache`;
  if (Deno.build.os === "darwin") base = `${home}/Library/Caches`;
  if (Deno.build.os === "windows") base = Deno.env.get("LOCALAPPDATA") ?? home;
  return `${base}/arcface/${VERSION}`;
}

/** The cached library's path if a complete build is there. */
export function cachedLibrary(dir = cacheDir()): string | undefined {
  const path = `${dir}/${LIB_NAME}`;
  try {
    return Deno.statSync(path).isFile ? path : undefined;
  } catch {
    return undefined;
  }
}

/** Options of {@linkcode buildIntoCache}. */
export interface BuildOptions {
  /** Root of the package (the folder of deno.json); defaults to this module's parent. */
  sourceRoot?: URL;
  /** Cache folder; defaults to {@linkcode cacheDir}. */
  dir?: string;
  /** Progress lines; defaults to stderr. */
  log?: (line: string) => void;
  /** How long to wait for another process's build, in ms. */
  lockTimeoutMs?: number;
}

/**
 * Returns the path of a cached build of libarcface, building it first when there is none.
 * Two processes building at once do not collide: the second waits for the first's lock.
 */
export async function buildIntoCache(options: BuildOptions = {}): Promise<string> {
  const dir = options.dir ?? cacheDir();
  const log = options.log ?? ((line: string) => console.error(line));
  const root = options.sourceRoot ?? new URL("../", import.meta.url);
  const done = cachedLibrary(dir);
  if (done) return done;

  try {
    await Deno.mkdir(dir, { recursive: true });
  } catch (e) {
    throw new AfcError(
      `Cannot build libarcface into "${dir}": ${
        (e as Error).message
      } (set ARCFACE_CACHE to a writable folder, or ARCFACE_LIB to a built library)`,
      Status.IO,
      { cause: e },
    );
  }
  const release = await acquireLock(`${dir}/.lock`, options.lockTimeoutMs ?? 20 * 60_000, log);
  try {
    const built = cachedLibrary(dir); // another process may have finished while we waited
    if (built) return built;
    await requireTools();
    const work = await Deno.makeTempDir({ dir, prefix: "work-" });
    try {
      log(`arcface: building libarcface ${VERSION} into ${dir} (once; a few minutes)`);
      await fetchSources(root, `${work}/src`);
      await run(["cmake", "-S", `${work}/src`, "-B", `${work}/build`, "-DCMAKE_BUILD_TYPE=Release"]);
      const jobs = String(navigator.hardwareConcurrency || 2);
      await run(["cmake", "--build", `${work}/build`, "--target", "arcface", "-j", jobs]);
      const tmp = `${dir}/${LIB_NAME}.${Deno.pid}.tmp`;
      await Deno.copyFile(`${work}/build/${LIB_NAME}`, tmp);
      await Deno.rename(tmp, `${dir}/${LIB_NAME}`); // atomic: never a half library under the name
      log(`arcface: built ${dir}/${LIB_NAME}`);
      return `${dir}/${LIB_NAME}`;
    } catch (e) {
      if (e instanceof AfcError) throw e;
      throw new AfcError(
        `Cannot build libarcface into "${dir}": ${(e as Error).message}`,
        Status.IO,
        { cause: e },
      );
    } finally {
      await Deno.remove(work, { recursive: true }).catch(() => {});
    }
  } finally {
    await release();
  }
}

/** Downloads every file listed in `csrc/SOURCES.txt` (paths relative to the package root). */
async function fetchSources(root: URL, into: string): Promise<void> {
  const list = new TextDecoder().decode(await fetchBytes(new URL("csrc/SOURCES.txt", root)));
  const paths = list.split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
  for (const path of paths) {
    const bytes = await fetchBytes(new URL(path, root));
    const target = `${into}/${path}`;
    await Deno.mkdir(target.slice(0, target.lastIndexOf("/")), { recursive: true });
    await Deno.writeFile(target, bytes);
  }
}

async function fetchBytes(url: URL): Promise<Uint8Array> {
  const res = await fetch(url);
  if (!res.ok) {
    await res.body?.cancel();
    throw new Error(`fetching "${url.href}" gave HTTP ${res.status}`);
  }
  return new Uint8Array(await res.arrayBuffer());
}

/** Fails with the install command when the compiler or CMake is missing. */
async function requireTools(): Promise<void> {
  for (const tool of ["cmake", "c++"]) {
    try {
      await new Deno.Command(tool, { args: ["--version"], stdout: "null", stderr: "null" }).output();
    } catch {
      throw new AfcError(
        `Cannot build libarcface: "${tool}" is not installed (install the build tools and libraries: ${APT_HINT})`,
        Status.NOT_FOUND,
      );
    }
  }
}

async function run(cmd: string[]): Promise<void> {
  const out = await new Deno.Command(cmd[0], { args: cmd.slice(1), stdout: "piped", stderr: "piped" })
    .output();
  if (out.success) return;
  const text = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
  const missing = text.match(/Could NOT find (\w+)|(\w+)_LIB-NOTFOUND|fatal error: ([\w./]+): No such file/);
  const hint = missing
    ? ` (a library is missing: ${missing[1] ?? missing[2] ?? missing[3]}; ${APT_HINT})`
    : "";
  const tail = text.trim().split("\n").slice(-15).join("\n");
  throw new Error(`"${cmd.join(" ")}" exited with ${out.code}${hint}\n${tail}`);
}

/**
 * A lock folder (mkdir is atomic). A lock whose owner process is gone is taken over; one
 * held longer than `timeoutMs` by a live process is an error, never a silent wait forever.
 */
async function acquireLock(
  path: string,
  timeoutMs: number,
  log: (line: string) => void,
): Promise<() => Promise<void>> {
  const start = Date.now();
  let announced = false;
  for (;;) {
    try {
      await Deno.mkdir(path);
      await Deno.writeTextFile(`${path}/pid`, String(Deno.pid));
      return () => Deno.remove(path, { recursive: true }).catch(() => {});
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
    }
    const owner = Number(await Deno.readTextFile(`${path}/pid`).catch(() => "0"));
    if (owner > 0 && !isAlive(owner)) {
      await Deno.remove(path, { recursive: true }).catch(() => {});
      continue;
    }
    if (Date.now() - start > timeoutMs) {
      throw new AfcError(
        `Cannot build libarcface: another process (pid ${owner}) has held the build lock "${path}" for over ${
          Math.round(timeoutMs / 1000)
        } s (remove the folder if that process is gone)`,
        Status.TIMEOUT,
      );
    }
    if (!announced) log(`arcface: waiting for another process (pid ${owner}) building libarcface`);
    announced = true;
    await new Promise((r) => setTimeout(r, 500));
  }
}

function isAlive(pid: number): boolean {
  if (Deno.build.os !== "linux") return true;
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}
