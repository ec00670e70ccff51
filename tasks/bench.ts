/**
 * `deno task bench [name] [args…]`: runs the benchmark tasks/bench/<name>.ts (its exported
 * `main(args)`); without a name (or when the first argument is an option) the backbone
 * benchmark. Every benchmark compares against its PyTorch / Python peer in the same run.
 *
 * @module
 */
const dir = new URL("./bench/", import.meta.url);

function available(): string[] {
  const names: string[] = [];
  for (const e of Deno.readDirSync(dir)) {
    if (e.isFile && e.name.endsWith(".ts")) names.push(e.name.slice(0, -3));
  }
  return names.sort();
}

const [first, ...rest] = Deno.args;
const named = first !== undefined && !first.startsWith("-");
const name = named ? first : "backbones";
const args = named ? rest : Deno.args;
const names = available();
if (!names.includes(name)) {
  console.error(`Cannot run benchmark "${name}": no tasks/bench/${name}.ts (available: ${names.join(", ")})`);
  Deno.exit(2);
}
const mod = await import(new URL(`${name}.ts`, dir).href);
if (typeof mod.main !== "function") {
  console.error(`Cannot run benchmark "${name}": tasks/bench/${name}.ts exports no main(args)`);
  Deno.exit(2);
}
await mod.main(args);
