/**
 * Image decoding and encoding through libarcface: JPEG (libjpeg-turbo), PNG (libpng) and
 * PGM/PPM (P2, P3, P5, P6). Pixels are row-major HWC `Uint8Array`s.
 *
 * @example
 * ```ts
 * import { decodeImage } from "./image.ts";
 * const rgb = decodeImage(await Deno.readFile("tests/fixtures/data/orl_s1_1.pgm"), 112, 112);
 * console.log(rgb.length); // 112·112·3 bytes, the grey image in three channels
 * ```
 *
 * @module
 */
import { check, lib } from "../ffi/mod.ts";

/** Stored size of an encoded image. */
export interface ImageInfo {
  width: number;
  height: number;
  /** 1 for greyscale, 3 for colour. */
  channels: 1 | 3;
}

function checkSize(width: number, height: number, what: string): void {
  for (const [name, v] of [["width", width], ["height", height]] as const) {
    if (!Number.isInteger(v) || v < 1 || v > 65535) {
      throw new RangeError(`Invalid ${what} ${name} ${v}: expected an integer in 1..65535`);
    }
  }
}

/** Reads the stored width, height and channel count of an encoded JPEG, PNG or PGM/PPM. */
export function imageInfo(bytes: Uint8Array<ArrayBuffer>): ImageInfo {
  const out = new Int32Array(3);
  check(
    lib().afc_image_info(
      bytes,
      BigInt(bytes.length),
      out.subarray(0, 1),
      out.subarray(1, 2),
      out.subarray(2, 3),
    ),
    "Cannot read image header",
  );
  return { width: out[0], height: out[1], channels: out[2] as 1 | 3 };
}

/**
 * Decodes an encoded image to RGB (greyscale repeated into 3 channels). When `width` and
 * `height` are given and differ from the stored size, the image is resized bilinearly.
 */
export function decodeImage(
  bytes: Uint8Array<ArrayBuffer>,
  width?: number,
  height?: number,
): Uint8Array<ArrayBuffer> {
  if (width === undefined || height === undefined) {
    const info = imageInfo(bytes);
    width ??= info.width;
    height ??= info.height;
  }
  checkSize(width, height, "output");
  const rgb = new Uint8Array(width * height * 3);
  check(
    lib().afc_image_decode(bytes, BigInt(bytes.length), width, height, rgb, BigInt(rgb.length)),
    "Cannot decode image",
  );
  return rgb;
}

/** A crop box in source pixels. */
export interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** Resizes RGB pixels bilinearly to `dstWidth`×`dstHeight`, after cropping to `crop` (default: all). */
export function resizeImage(
  rgb: Uint8Array<ArrayBuffer>,
  width: number,
  height: number,
  dstWidth: number,
  dstHeight: number,
  crop: Box = { x: 0, y: 0, width, height },
): Uint8Array<ArrayBuffer> {
  checkSize(width, height, "source");
  checkSize(dstWidth, dstHeight, "destination");
  if (rgb.length !== width * height * 3) {
    throw new RangeError(
      `Cannot resize image: ${rgb.length} bytes given, expected ${width}x${height}x3 = ${width * height * 3}`,
    );
  }
  const dst = new Uint8Array(dstWidth * dstHeight * 3);
  check(
    lib().afc_image_resize(
      rgb,
      width,
      height,
      crop.x,
      crop.y,
      crop.width,
      crop.height,
      dst,
      dstWidth,
      dstHeight,
    ),
    "Cannot resize image",
  );
  return dst;
}

/** Encodes RGB pixels as a JPEG (4:2:0 chroma) of the given quality (1..100). */
export function encodeJpeg(
  rgb: Uint8Array<ArrayBuffer>,
  width: number,
  height: number,
  quality = 95,
): Uint8Array<ArrayBuffer> {
  checkSize(width, height, "image");
  if (rgb.length !== width * height * 3) {
    throw new RangeError(
      `Cannot encode JPEG: ${rgb.length} bytes given, expected ${width}x${height}x3 = ${width * height * 3}`,
    );
  }
  if (!Number.isInteger(quality) || quality < 1 || quality > 100) {
    throw new RangeError(`Invalid JPEG quality ${quality}: expected an integer in 1..100`);
  }
  const written = new BigInt64Array(1);
  const l = lib();
  check(l.afc_image_encode_jpeg(rgb, width, height, quality, null, 0n, written), "Cannot encode JPEG");
  const out = new Uint8Array(Number(written[0]));
  check(
    l.afc_image_encode_jpeg(rgb, width, height, quality, out, BigInt(out.length), written),
    "Cannot encode JPEG",
  );
  return out.slice(0, Number(written[0]));
}
