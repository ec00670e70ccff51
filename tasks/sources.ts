/**
 * Writes `csrc/SOURCES.txt`: the files a build from sources needs (CMakeLists.txt and
 * everything under csrc/), which the package fetches when it builds itself on first use.
 * `deno task build` keeps it current; a test fails when it is stale.
 *
 * @module
 */

const root = new URL("..", import.meta.url).pathname;
const EXTENSIONS = /\.(c|cc|cpp|cu|cuh|h|hpp|inl)$/;

/** The source list, sorted, relative to the package root. */
export function listSources(): string[] {
  const out = ["CMakeLists.txt"];
  const walk = (dir: string) => {
    for (const entry of Deno.readDirSync(`${root}${dir}`)) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory) walk(path);
      else if (EXTENSIONS.test(entry.name)) out.push(path);
    }
  };
  walk("csrc");
  return out.sort();
}

/** The text of `csrc/SOURCES.txt` for the current tree. */
export function sourcesText(): string {
  return `# Files fetched to build libarcface from sources (written by tasks/sources.ts)\n${
    listSources().join("\n")
  }\n`;
}

if (import.meta.main) {
  const path = `${root}csrc/SOURCES.txt`;
  const tmp = `${path}.tmp`;
  Deno.writeTextFileSync(tmp, sourcesText());
  Deno.renameSync(tmp, path);
}
