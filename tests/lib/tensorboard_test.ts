import assert from "node:assert/strict";
import { crc32c, EventWriter } from "../../lib/tensorboard.ts";

Deno.test("CRC-32C of the standard check string", () => {
  assert.equal(crc32c(new TextEncoder().encode("123456789")), 0xe3069283);
});

Deno.test("event files read back with the tensorboard package: tags, steps and values", async () => {
  const dir = await Deno.makeTempDir();
  {
    using tb = await EventWriter.open(dir);
    await tb.scalar("loss", 12.5, 10);
    await tb.scalar("loss", 3.25, 20);
    await tb.scalar("lfw", 0.9975, 20);
  }
  const out = await new Deno.Command("python3", {
    args: [new URL("./tensorboard_read.py", import.meta.url).pathname, dir],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const scalars = JSON.parse(new TextDecoder().decode(out.stdout));
  assert.deepEqual(scalars.loss, [[10, 12.5], [20, 3.25]]);
  assert.equal(scalars.lfw[0][0], 20);
  assert.ok(Math.abs(scalars.lfw[0][1] - 0.9975) < 1e-6);
});
