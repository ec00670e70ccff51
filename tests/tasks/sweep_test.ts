import assert from "node:assert/strict";
import { gridPoints, parseAxis } from "../../tasks/sweep.ts";

const root = new URL("../..", import.meta.url).pathname;

Deno.test("sweep grid: axes by comma or semicolon, every combination, bad values refused up front", () => {
  const lr = parseAxis("lr=0.1,0.05");
  const margin = parseAxis("margin_list=[1,0.5,0];[1,0,0.4]");
  assert.deepEqual(margin.values, ["[1,0.5,0]", "[1,0,0.4]"]);
  assert.deepEqual(gridPoints([lr, margin]), [
    { lr: "0.1", margin_list: "[1,0.5,0]" },
    { lr: "0.1", margin_list: "[1,0,0.4]" },
    { lr: "0.05", margin_list: "[1,0.5,0]" },
    { lr: "0.05", margin_list: "[1,0,0.4]" },
  ]);
  assert.throws(() => parseAxis("lr_rate=0.1"), /unknown key "lr_rate" \(did you mean "lr"\?\)/);
  assert.throws(() => parseAxis("lr"), /expected key=value1,value2/);
});

/** Runs tasks/sweep.ts on the ORL config with `args`. */
async function sweep(args: string[]): Promise<{ code: number; text: string; stderr: string }> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${root}tasks/sweep.ts`, `${root}configs/orl_mbf.yaml`, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(r.stderr);
  return { code: r.code, text: new TextDecoder().decode(r.stdout) + stderr, stderr };
}

Deno.test("sweep: two short runs, results as Markdown and CSV", async () => {
  const out = await Deno.makeTempDir();
  const r = await sweep([
    "--grid=margin_list=[1,0.5,0];[1,0,0.4]",
    `--out=${out}`,
    `--rec=${root}data/orl`,
    "--num_image=30",
    "--num_epoch=2",
    "--warmup_epoch=0",
    "--val_targets=[]",
    "--threads=2",
  ]);
  assert.equal(r.code, 0, r.text);
  assert.match(r.text, /Loss: CosFace m=0\.4 s=64/);
  const csv = (await Deno.readTextFile(`${out}/results.csv`)).trim().split("\n");
  assert.equal(csv[0], "margin_list,loss,steps,samples/s,output,error");
  assert.equal(csv.length, 3);
  assert.match(csv[2], /^"\[1,0,0\.4\]",\d+\.\d{4},2,[\d.]+,.*run2,$/);
  assert.match(await Deno.readTextFile(`${out}/results.md`), /^\| margin_list \| loss \| steps/);
});

Deno.test("sweep: a bad value anywhere in the grid stops it before the first run, in one line", async () => {
  const out = await Deno.makeTempDir();
  const r = await sweep(["--grid=lr=0.1,abc", `--out=${out}/s`]);
  assert.equal(r.code, 2);
  assert.equal(
    r.stderr.trim(),
    `Cannot apply override --lr: key "lr" must be a number, got a string ("abc")`,
  );
  await assert.rejects(() => Deno.stat(`${out}/s`), Deno.errors.NotFound);
});
