/**
 * model.safetensors as the export, import and embedding code see it: float32 tensors by
 * arcface_torch name, with the architecture in the metadata ("network", "embedding_size").
 *
 * @module
 */
import { fromFloat32, readSafetensors, toFloat32, writeSafetensors } from "../safetensors.ts";
import type { StateDict } from "./graph.ts";

/** Tensors (as float32) and metadata of one file. */
export interface TensorFile {
  tensors: StateDict;
  metadata: Record<string, string>;
}

/** Reads a safetensors file; every floating or integer tensor is converted to float32. */
export async function readStateDict(path: string): Promise<TensorFile> {
  const f = await readSafetensors(path);
  const tensors: StateDict = new Map();
  for (const [name, t] of f.tensors) tensors.set(name, { shape: t.shape, data: toFloat32(t) });
  return { tensors, metadata: f.metadata };
}

/** Writes a backbone's weights as float32 safetensors with its architecture (atomic). */
export async function writeStateDict(
  path: string,
  tensors: StateDict,
  network: string,
  numFeatures: number,
): Promise<void> {
  const out = new Map([...tensors].map(([k, t]) => [k, fromFloat32(t.data, t.shape)]));
  await writeSafetensors(path, out, { network, embedding_size: numFeatures });
}

/** Writes `bytes` to `path` through a temporary file in the same directory and a rename. */
export async function writeAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${path}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  try {
    await Deno.writeFile(tmp, bytes, { createNew: true });
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}
