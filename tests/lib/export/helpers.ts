// Helpers shared by the interop tests: run the PyTorch reference and onnxruntime scripts.
import { decodeNpy, encodeNpy, type NpyArray } from "../../../lib/npy.ts";

export const TORCH_PYTHON = "/usr/bin/python3"; // Debian's python3 with torch
export const ORT_PYTHON = "python3"; // the PATH python with onnx/onnxruntime (tasks/setup.sh)
const here = new URL(".", import.meta.url).pathname;

export async function sh(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`${cmd} ${args.join(" ")} failed (exit ${out.code}):\n${text}`);
  return text;
}

/** Writes a reference model with torch_ref.py into a new temp dir and returns the dir. */
export async function makeReference(
  network: string,
  opts: { form?: string; batch?: number; numFeatures?: number } = {},
) {
  const dir = await Deno.makeTempDir({ prefix: `afc_${network}_` });
  await sh(TORCH_PYTHON, [
    `${here}torch_ref.py`,
    "make",
    "--network",
    network,
    "--out",
    dir,
    "--batch",
    String(opts.batch ?? 4),
    "--form",
    opts.form ?? "plain",
    "--num-features",
    String(opts.numFeatures ?? 512),
  ]);
  return dir;
}

export const readNpy = async (path: string): Promise<NpyArray> => decodeNpy(await Deno.readFile(path), path);
export const writeNpy = (path: string, a: NpyArray) => Deno.writeFile(path, encodeNpy(a));

/** Runs `model.onnx` in onnxruntime on `input` and returns its output. */
export async function runOrt(onnxPath: string, input: NpyArray, threads = 1): Promise<NpyArray> {
  const dir = await Deno.makeTempDir({ prefix: "afc_ort_" });
  try {
    await writeNpy(`${dir}/x.npy`, input);
    await sh(ORT_PYTHON, [`${here}ort_run.py`, onnxPath, `${dir}/x.npy`, `${dir}/y.npy`, String(threads)]);
    return await readNpy(`${dir}/y.npy`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** The first `n` images of an NCHW batch (or rows of an [N,F] array). */
export function firstRows(a: NpyArray, n: number): NpyArray {
  const per = a.data.length / a.shape[0];
  return { shape: [n, ...a.shape.slice(1)], data: a.data.slice(0, n * per) };
}
