import assert from "node:assert/strict";
import { decodeImage, encodeJpeg, imageInfo, resizeImage } from "../../lib/image.ts";
import type { AfcError } from "../../ffi/mod.ts";
import { readBin } from "../../lib/verification.ts";

const ascii = (s: string) => new TextEncoder().encode(s);

function crc32(bytes: Uint8Array): number {
  let c = ~0;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

/** A minimal PNG (8-bit, colour type 0 grey or 2 RGB, no filtering) built by hand. */
async function png(
  width: number,
  height: number,
  channels: 1 | 3,
  pixels: number[],
): Promise<Uint8Array<ArrayBuffer>> {
  const raw: number[] = [];
  for (let y = 0; y < height; y++) {
    raw.push(0, ...pixels.slice(y * width * channels, (y + 1) * width * channels));
  }
  const z = new Uint8Array(
    await new Response(new Blob([new Uint8Array(raw)]).stream().pipeThrough(new CompressionStream("deflate")))
      .arrayBuffer(),
  );
  const chunk = (type: string, data: Uint8Array) => {
    const body = new Uint8Array([...ascii(type), ...data]);
    const out = new Uint8Array(12 + data.length);
    const v = new DataView(out.buffer);
    v.setUint32(0, data.length);
    out.set(body, 4);
    v.setUint32(8 + data.length, crc32(body));
    return out;
  };
  const ihdr = new Uint8Array(13);
  const v = new DataView(ihdr.buffer);
  v.setUint32(0, width);
  v.setUint32(4, height);
  ihdr.set([8, channels === 1 ? 0 : 2, 0, 0, 0], 8);
  return new Uint8Array([
    ...[0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a],
    ...chunk("IHDR", ihdr),
    ...chunk("IDAT", z),
    ...chunk("IEND", new Uint8Array(0)),
  ]);
}

const grey = (vals: number[]) => vals.flatMap((x) => [x, x, x]);

Deno.test("PGM P5 and P2 decode to known pixels, greyscale repeated into RGB", () => {
  const p5 = new Uint8Array([...ascii("P5\n# comment\n3 2\n255\n"), 0, 10, 20, 200, 254, 255]);
  assert.deepEqual(imageInfo(p5), { width: 3, height: 2, channels: 1 });
  assert.deepEqual([...decodeImage(p5)], grey([0, 10, 20, 200, 254, 255]));
  // maxval 15 scales to 0..255 with rounding: 15 -> 255, 1 -> 17, 8 -> 136
  const p2 = ascii("P2 2 2 15\n0 1\n8 15\n");
  assert.deepEqual([...decodeImage(p2)], grey([0, 17, 136, 255]));
});

Deno.test("PPM P6 and P3 decode to known RGB pixels", () => {
  const p6 = new Uint8Array([...ascii("P6 2 1 255\n"), 1, 2, 3, 250, 251, 252]);
  assert.deepEqual(imageInfo(p6), { width: 2, height: 1, channels: 3 });
  assert.deepEqual([...decodeImage(p6)], [1, 2, 3, 250, 251, 252]);
  assert.deepEqual([...decodeImage(ascii("P3 1 1 255 9 8 7"))], [9, 8, 7]);
});

Deno.test("PNG grey and RGB decode to known pixels", async () => {
  const g = await png(2, 2, 1, [0, 64, 128, 255]);
  assert.deepEqual(imageInfo(g), { width: 2, height: 2, channels: 1 });
  assert.deepEqual([...decodeImage(g)], grey([0, 64, 128, 255]));
  const c = await png(2, 1, 3, [255, 0, 0, 0, 128, 255]);
  assert.deepEqual(imageInfo(c), { width: 2, height: 1, channels: 3 });
  assert.deepEqual([...decodeImage(c)], [255, 0, 0, 0, 128, 255]);
});

Deno.test("JPEG round trip: a flat colour survives quality 100 within 2 levels", () => {
  const rgb = new Uint8Array(16 * 16 * 3).map((_, i) => [200, 100, 50][i % 3]);
  const jpeg = encodeJpeg(rgb, 16, 16, 100);
  assert.deepEqual([...jpeg.subarray(0, 3)], [0xff, 0xd8, 0xff]);
  assert.deepEqual(imageInfo(jpeg), { width: 16, height: 16, channels: 3 });
  const back = decodeImage(jpeg);
  for (let i = 0; i < back.length; i++) {
    assert.ok(Math.abs(back[i] - rgb[i]) <= 2, `byte ${i}: ${back[i]} vs ${rgb[i]}`);
  }
  // decoding to another size resizes; a flat image stays flat
  const small = decodeImage(jpeg, 4, 8);
  assert.equal(small.length, 4 * 8 * 3);
  for (let i = 0; i < small.length; i++) assert.ok(Math.abs(small[i] - rgb[i % 3]) <= 2);
});

Deno.test("a CMYK JPEG decodes to the RGB that PIL gives (tests/fixtures/data/make_cmyk.py)", () => {
  const dir = new URL("../fixtures/data/", import.meta.url);
  const jpeg = Deno.readFileSync(new URL("cmyk.jpg", dir));
  assert.deepEqual(imageInfo(jpeg), { width: 40, height: 32, channels: 3 });
  const want = Deno.readFileSync(new URL("cmyk_pil.rgb", dir));
  const got = decodeImage(jpeg);
  const at = got.findIndex((v, i) => v !== want[i]);
  assert.equal(at, -1, `byte ${at}: ${got[at]}, PIL ${want[at]}`);
});

Deno.test("bilinear resize uses pixel centres (OpenCV INTER_LINEAR values)", () => {
  const src = new Uint8Array(grey([0, 255]));
  assert.deepEqual([...resizeImage(src, 2, 1, 4, 1)], grey([0, 64, 191, 255]));
  // crop the right pixel of a 3x1 image and scale it up: constant
  const src3 = new Uint8Array(grey([10, 20, 30]));
  assert.deepEqual(
    [...resizeImage(src3, 3, 1, 2, 2, { x: 2, y: 0, width: 1, height: 1 })],
    grey([30, 30, 30, 30]),
  );
  // downscale by 2 averages pairs: (0+100)/2, (200+250)/2
  assert.deepEqual([...resizeImage(new Uint8Array(grey([0, 100, 200, 250])), 4, 1, 2, 1)], grey([50, 225]));
});

Deno.test("bad images fail with a clear error", () => {
  assert.throws(
    () => decodeImage(ascii("GIF89a....")),
    (e: AfcError) => /unknown image format/.test(e.message),
  );
  assert.throws(
    () => decodeImage(new Uint8Array([...ascii("P5 4 4 255\n"), 1, 2, 3])),
    (e: AfcError) => /truncated P5 image: 4x4 needs 16 pixel bytes, 3 present/.test(e.message),
  );
  const jpeg = encodeJpeg(new Uint8Array(32 * 32 * 3).fill(90), 32, 32, 90);
  assert.throws(() => decodeImage(jpeg.slice(0, jpeg.length / 2)), (e: AfcError) => /JPEG/.test(e.message));
  assert.throws(() => resizeImage(new Uint8Array(3), 1, 1, 0, 1), RangeError);
});

Deno.test("a JPEG whose header fails to parse does not spoil the next image on the same thread", async () => {
  const set = await readBin(new URL("../../data/orl_val.bin", import.meta.url).pathname);
  const good = set.images[0] as Uint8Array<ArrayBuffer>;
  assert.deepEqual(imageInfo(good), { width: 112, height: 112, channels: 3 });
  // Cut inside the entropy tables: TurboJPEG reports an invalid header.
  assert.throws(() => imageInfo(good.slice(0, 600)), /corrupt JPEG header \(600 bytes\)/);
  assert.deepEqual(imageInfo(good), { width: 112, height: 112, channels: 3 });
  assert.equal(decodeImage(good).length, 112 * 112 * 3);
});
