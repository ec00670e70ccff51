/**
 * `deno run -A tasks/sweep.ts [config.yaml] --grid lr=0.1,0.05 --grid 'margin_list=[1,0.5,0];[1,0,0.4]'
 * [--out work_dirs/sweep] [--key=value …]`: trains one run per point of the grid, one after
 * another, each in its own output folder, and writes the results as `results.md` and
 * `results.csv` in the sweep folder (updated after every run, so a stopped sweep keeps what it
 * finished). Values of a grid key are separated by "," — or by ";" when a value holds commas.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { loadConfig, parseOverrides } from "../lib/config.ts";
import { train, type TrainResult } from "../lib/trainer.ts";
import { defaultConfigPath } from "../lib/cli/train.ts";
import { writeAtomic } from "../lib/export/state_dict.ts";

/** One grid axis: a config key and its values as written. */
export interface Axis {
  key: string;
  values: string[];
}

/** Parses "key=v1,v2" (or "key=v1;v2" when a value holds commas). */
export function parseAxis(text: string): Axis {
  const m = /^([A-Za-z_]\w*)=(.+)$/s.exec(text);
  if (!m) throw new Error(`Invalid --grid "${text}": expected key=value1,value2`);
  const values = (m[2].includes(";") ? m[2].split(";") : m[2].split(",")).map((v) => v.trim());
  // Check every value now, so that a typo fails before the first run rather than the tenth.
  for (const v of values) parseOverrides([`--${m[1]}=${v}`]);
  return { key: m[1], values };
}

/** Every combination of the axes, in order (the last axis varies fastest). */
export function gridPoints(axes: Axis[]): Record<string, string>[] {
  return axes.reduce<Record<string, string>[]>(
    (points, axis) => points.flatMap((p) => axis.values.map((v) => ({ ...p, [axis.key]: v }))),
    [{}],
  );
}

interface Row {
  point: Record<string, string>;
  result?: TrainResult;
  error?: string;
}

function tables(axes: Axis[], rows: Row[]): { md: string; csv: string } {
  const sets = [...new Set(rows.flatMap((r) => Object.keys(r.result?.verification ?? {})))];
  const head = [
    ...axes.map((a) => a.key),
    "loss",
    "steps",
    "samples/s",
    ...sets.map((s) => `${s} acc`),
    "output",
    "error",
  ];
  const body = rows.map((r) => [
    ...axes.map((a) => r.point[a.key]),
    r.result ? r.result.loss.toFixed(4) : "failed",
    String(r.result?.steps ?? ""),
    r.result ? r.result.samplesPerSecond.toFixed(1) : "",
    ...sets.map((s) => r.result?.verification[s]?.accuracy.toFixed(5) ?? ""),
    r.result?.outputDir ?? "",
    (r.error ?? "").replaceAll("|", "/").replaceAll("\n", " "),
  ]);
  const md = [head, head.map(() => "---"), ...body].map((r) => `| ${r.join(" | ")} |`).join("\n") + "\n";
  const quote = (c: string) => /[",\n]/.test(c) ? `"${c.replaceAll('"', '""')}"` : c;
  const csv = [head, ...body].map((r) => r.map(quote).join(",")).join("\n") + "\n";
  return { md, csv };
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    strict: false,
    options: {
      grid: { type: "string", multiple: true },
      out: { type: "string", default: "work_dirs/sweep" },
    },
  });
  const grid = (values.grid ?? []) as string[];
  const out = values.out as string;
  const extra = Deno.args.filter((a) => /^--[A-Za-z_]\w*=/.test(a) && !/^--(grid|out)=/.test(a));
  const config = positionals[0] ?? defaultConfigPath();
  if (grid.length === 0) {
    console.error(
      "Usage: tasks/sweep.ts [config.yaml] --grid key=v1,v2 [--grid …] [--out DIR] [--key=value …]",
    );
    Deno.exit(2);
  }
  const overridesOf = (point: Record<string, string>, i: number) => [
    ...extra,
    ...Object.entries(point).map(([k, v]) => `--${k}=${v}`),
    `--output=${out}/run${i + 1}`,
  ];
  // Every point's config is checked before the first run: a typo fails now, not in run ten.
  let axes: Axis[], points: Record<string, string>[];
  try {
    axes = grid.map(parseAxis);
    points = gridPoints(axes);
    points.forEach((point, i) => loadConfig(config, overridesOf(point, i)));
  } catch (e) {
    console.error((e as Error).message);
    Deno.exit(2);
  }
  const rows: Row[] = [];
  await Deno.mkdir(out, { recursive: true });
  for (const [i, point] of points.entries()) {
    const name = Object.entries(point).map(([k, v]) => `${k}=${v}`).join(" ");
    console.log(`\n=== run ${i + 1}: ${name}`);
    const row: Row = { point };
    try {
      row.result = await train(loadConfig(config, overridesOf(point, i)));
    } catch (e) {
      row.error = (e as Error).message;
      console.error(`Run ${i + 1} (${name}) failed: ${row.error}`);
    }
    rows.push(row);
    const { md, csv } = tables(axes, rows);
    await writeAtomic(`${out}/results.md`, new TextEncoder().encode(md));
    await writeAtomic(`${out}/results.csv`, new TextEncoder().encode(csv));
  }
  console.log(`\n${tables(axes, rows).md}\nResults in "${out}/results.md" and "${out}/results.csv"`);
  const failed = rows.filter((r) => r.error).length;
  if (failed > 0) {
    console.error(`${failed} of ${rows.length} runs failed (see the error column)`);
    Deno.exit(1);
  }
}
