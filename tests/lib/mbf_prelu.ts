/**
 * Sets every PReLU slope of a MobileFaceNet to 1. Its ConvBlock is conv, batch norm, PReLU,
 * so the slopes are the 1-D tensors named "….layers.2.weight" (33 of them).
 *
 * @module
 */
import type { Model } from "../../lib/model.ts";

export function setMbfPReLUSlopesToOne(model: Model): void {
  const slopes = model.tensors().filter((t) => t.shape.length === 1 && t.name.endsWith("layers.2.weight"));
  if (slopes.length !== 33) throw new Error(`expected 33 PReLU layers in mbf, found ${slopes.length}`);
  for (const t of slopes) model.write(t.name, new Float32Array(t.shape[0]).fill(1));
}
