/**
 * Loads a model.safetensors for export or embedding: its tensors, and the architecture and
 * embedding size from the metadata ("network", "embedding_size"), inferred from tensor
 * names and shapes when the metadata lacks them.
 *
 * @module
 */
import { inferNetwork, NETWORKS, type StateDict } from "./graph.ts";
import { readStateDict } from "./state_dict.ts";

export interface LoadedWeights {
  network: string;
  numFeatures: number;
  weights: StateDict;
  /** How network/numFeatures were found. */
  source: "metadata" | "inferred" | "given";
}

/** Reads `path` and works out its architecture; `override` wins over the metadata. */
export async function loadWeights(
  path: string,
  override: { network?: string; numFeatures?: number } = {},
): Promise<LoadedWeights> {
  let file;
  try {
    file = await readStateDict(path);
  } catch (e) {
    // The reader names the path too: keep the detail once.
    const detail = (e as Error).message.replace(/^Cannot read safetensors "[^"]*": /, "");
    throw new Error(`Cannot read model "${path}": ${detail}`);
  }
  const { tensors, metadata } = file;
  const guess = inferNetwork(tensors.keys(), (n) => tensors.get(n)?.shape);
  let source: LoadedWeights["source"] = "metadata";
  let network = override.network ?? metadata.network;
  let numFeatures = override.numFeatures ??
    (metadata.embedding_size ? Number(metadata.embedding_size) : undefined);
  if (override.network || override.numFeatures) source = "given";
  if (network === undefined || numFeatures === undefined) {
    if (!guess) {
      throw new Error(
        `Cannot load model "${path}": no "network"/"embedding_size" metadata and the tensor names match ` +
          `no known backbone (pass --network and --num-features)`,
      );
    }
    network ??= guess.network;
    numFeatures ??= guess.numFeatures;
    source = "inferred";
  }
  if (!NETWORKS.includes(network)) {
    throw new Error(`Cannot load model "${path}": network "${network}" is not one of ${NETWORKS.join(", ")}`);
  }
  if (!Number.isInteger(numFeatures) || numFeatures < 1) {
    throw new Error(`Cannot load model "${path}": embedding_size "${numFeatures}" is not a positive integer`);
  }
  return { network, numFeatures, weights: tensors, source };
}
