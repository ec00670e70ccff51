/**
 * Face embeddings from a trained backbone: encoded images (JPEG, PNG, PGM/PPM bytes) or
 * decoded RGB pixels in, one `numFeatures` vector per image out, in the seed's input
 * scaling `((x / 255) − 0.5) / 0.5`. Images of another size are resized to 112×112.
 *
 * ```ts
 * import { embed, Model, openDataset } from "../mod.ts";
 * using ds = openDataset({ rec: "data/orl" });
 * const face = ds.image(0); // or the bytes of a JPEG / PNG file
 * using model = Model.create({ network: "mbf", maxBatch: 8 }); // or Model.load("model.safetensors")
 * const [e] = await embed(model, [{ rgb: face.rgb, width: 112, height: 112 }], { normalize: true });
 * console.log(e.length); // 512
 * ```
 *
 * @module
 */
import { decodeImage, resizeImage } from "./image.ts";
import type { Model } from "./model.ts";
import { toInput } from "./verification.ts";

/** Decoded pixels: row-major RGB, `width × height × 3` bytes. */
export interface RgbImage {
  rgb: Uint8Array<ArrayBuffer>;
  width: number;
  height: number;
}

/** An image to embed: encoded file bytes or decoded RGB pixels. */
export type ImageInput = Uint8Array<ArrayBuffer> | RgbImage;

/** Options of {@linkcode embed}. */
export interface EmbedImagesOptions {
  /** L2-normalise each embedding (default false: the backbone's raw output). */
  normalize?: boolean;
}

const SIZE = 112;

function toPixels(image: ImageInput, index: number): Uint8Array<ArrayBuffer> {
  try {
    if (image instanceof Uint8Array) return decodeImage(image, SIZE, SIZE);
    const { rgb, width, height } = image;
    return width === SIZE && height === SIZE ? rgb : resizeImage(rgb, width, height, SIZE, SIZE);
  } catch (e) {
    throw new Error(`Cannot embed image ${index}: ${(e as Error).message}`, { cause: e });
  }
}

/** Embeds any number of images, `model.maxBatch` at a time, in eval mode. *
 * @example
 * ```ts
 * import { embed } from "./embed.ts";
 * import { Model } from "./model.ts";
 * using model = Model.create({ network: "mbf", maxBatch: 2 });
 * const [e] = await embed(model, [await Deno.readFile("tests/fixtures/data/orl_s1_1.pgm")]);
 * console.log(e.length); // 512
 * ```
 */
export async function embed(
  model: Model,
  images: readonly ImageInput[],
  options: EmbedImagesOptions = {},
): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  const batch = model.maxBatch, plane = 3 * SIZE * SIZE;
  const pixels = new Uint8Array(batch * plane);
  for (let first = 0; first < images.length; first += batch) {
    const n = Math.min(batch, images.length - first);
    for (let i = 0; i < n; i++) pixels.set(toPixels(images[first + i], first + i), i * plane);
    const emb = await model.forward(toInput(pixels, SIZE, 0, n, false), n);
    for (let i = 0; i < n; i++) {
      const v = emb.slice(i * model.numFeatures, (i + 1) * model.numFeatures);
      if (options.normalize) {
        const norm = Math.hypot(...v) || 1;
        for (let j = 0; j < v.length; j++) v[j] /= norm;
      }
      out.push(v);
    }
  }
  return out;
}
