// Internal image helpers: decode JPEG / PNG / PGM-PPM to 8-bit pixels, bilinear resize.
// The public afc_image_* functions and the loader are thin layers over these.
#pragma once

#include <cstdint>
#include <vector>

namespace afc {

// A decoded image: row-major HWC uint8, channels 1 (grey) or 3 (RGB).
struct Image {
  int32_t width = 0, height = 0, channels = 0;
  std::vector<uint8_t> pixels;
};

// Stored size and channel count (1 or 3) of an encoded image; throws AFC_ERR_FORMAT.
void image_info(const uint8_t *bytes, int64_t size, int32_t *width, int32_t *height, int32_t *channels);

// Decodes to the stored size; `want_rgb` asks JPEG/PNG for 3 channels directly.
void image_decode(const uint8_t *bytes, int64_t size, Image &out, bool want_rgb);

// Decodes to RGB out_w×out_h (greyscale repeated, bilinear resize when sizes differ).
// `scratch` is reused between calls; returns true when a resize happened.
bool image_decode_rgb(const uint8_t *bytes, int64_t size, int32_t out_w, int32_t out_h, uint8_t *rgb,
                      Image &scratch);

// Bilinear resize (pixel centres aligned, like OpenCV INTER_LINEAR without antialiasing) of
// the crop box (cx, cy, cw, ch) of `src` (sw×sh, `c` channels) to dst (dw×dh, `c` channels).
void image_resize(const uint8_t *src, int32_t sw, int32_t sh, int32_t c, int32_t cx, int32_t cy, int32_t cw,
                  int32_t ch, uint8_t *dst, int32_t dw, int32_t dh);

}  // namespace afc
