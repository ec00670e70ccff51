// Image decoding (libjpeg-turbo, libpng, PGM/PPM) and bilinear resizing.
#include "data/image.h"

#include <png.h>
#include <turbojpeg.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"

namespace afc {

namespace {

enum class Kind { JPEG, PNG, PNM, UNKNOWN };

Kind sniff(const uint8_t *b, int64_t n) {
  if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return Kind::JPEG;
  if (n >= 8 && memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0) return Kind::PNG;
  if (n >= 2 && b[0] == 'P' && b[1] >= '2' && b[1] <= '6' && b[1] != '4') return Kind::PNM;
  return Kind::UNKNOWN;
}

[[noreturn]] void unknown_format(const uint8_t *b, int64_t n) {
  unsigned v[4] = {0, 0, 0, 0};
  for (int i = 0; i < 4 && i < n; i++) v[i] = b[i];
  AFC_FAIL(AFC_ERR_FORMAT,
           "unknown image format (first bytes %02x %02x %02x %02x, %lld bytes): expected JPEG, PNG or PGM/PPM",
           v[0], v[1], v[2], v[3], (long long)n);
}

// One turbojpeg handle per thread and direction: creating them per image costs time.
struct TjHandles {
  tjhandle dec = nullptr, enc = nullptr;
  ~TjHandles() {
    if (dec) tjDestroy(dec);
    if (enc) tjDestroy(enc);
  }
};
thread_local TjHandles tj;

tjhandle tj_dec() {
  if (!tj.dec) tj.dec = tjInitDecompress();
  AFC_CHECK(tj.dec, AFC_ERR_BACKEND, "cannot create a JPEG decoder: %s", tjGetErrorStr());
  return tj.dec;
}

// A TurboJPEG handle that failed mid-header keeps state that makes the next, valid image
// read as having no frame; every failure therefore drops the thread's handle.
[[noreturn]] void jpeg_fail(const char *what, int64_t n, const char *detail) {
  const std::string text = detail;
  tjDestroy(tj.dec);
  tj.dec = nullptr;
  AFC_FAIL(AFC_ERR_FORMAT, "%s (%lld bytes): %s", what, (long long)n, text.c_str());
}

// Returns the colour space (TJCS_*).
int jpeg_header(const uint8_t *b, int64_t n, int *w, int *h) {
  int subsamp = 0, cs = 0;
  *w = *h = 0;
  if (tjDecompressHeader3(tj_dec(), b, (unsigned long)n, w, h, &subsamp, &cs) != 0)
    jpeg_fail("corrupt JPEG header", n, tjGetErrorStr2(tj.dec));
  // A header cut short can "succeed" without a frame: no size means no image.
  if (!(*w > 0 && *h > 0 && *w <= 65535 && *h <= 65535))
    jpeg_fail("corrupt JPEG", n, "no frame header (truncated file?)");
  return cs;
}

// CMYK as JPEG files store it (inverted, the Adobe convention that Photoshop and PIL follow)
// to RGB with PIL's formula: R = (255 − C)·(255 − K) / 255, rounded as PIL rounds.
void cmyk_to_rgb(const uint8_t *cmyk, int64_t pixels, uint8_t *rgb) {
  for (int64_t i = 0; i < pixels; i++) {
    const int nk = cmyk[4 * i + 3];  // 255 − K
    for (int k = 0; k < 3; k++) {
      const int t = (255 - cmyk[4 * i + k]) * nk + 128;
      rgb[3 * i + k] = (uint8_t)(nk - (((t >> 8) + t) >> 8));
    }
  }
}

// PNM header: magic, width, height, maxval, with '#' comments; returns the data offset.
struct PnmHeader {
  int type = 0;  // 2, 3, 5, 6
  int64_t w = 0, h = 0, maxval = 0, data = 0;
};

PnmHeader pnm_header(const uint8_t *b, int64_t n) {
  PnmHeader p;
  p.type = b[1] - '0';
  int64_t i = 2;
  int64_t vals[3];
  for (int k = 0; k < 3; k++) {
    for (;;) {  // skip whitespace and comments
      while (i < n && isspace(b[i])) i++;
      if (i < n && b[i] == '#') {
        while (i < n && b[i] != '\n') i++;
      } else {
        break;
      }
    }
    AFC_CHECK(i < n && isdigit(b[i]), AFC_ERR_FORMAT, "malformed P%d header: expected a number at byte %lld",
              p.type, (long long)i);
    int64_t v = 0;
    while (i < n && isdigit(b[i]) && v < (1 << 24)) v = v * 10 + (b[i++] - '0');
    vals[k] = v;
  }
  AFC_CHECK(i < n && isspace(b[i]), AFC_ERR_FORMAT, "malformed P%d header: no whitespace after maxval", p.type);
  p.w = vals[0], p.h = vals[1], p.maxval = vals[2], p.data = i + 1;
  AFC_CHECK(p.w > 0 && p.h > 0 && p.w <= 65535 && p.h <= 65535, AFC_ERR_FORMAT,
            "P%d image size %lldx%lld is out of range 1..65535", p.type, (long long)p.w, (long long)p.h);
  AFC_CHECK(p.maxval > 0 && p.maxval <= 65535, AFC_ERR_FORMAT, "P%d maxval %lld is out of range 1..65535",
            p.type, (long long)p.maxval);
  return p;
}

void pnm_decode(const uint8_t *b, int64_t n, Image &out) {
  PnmHeader p = pnm_header(b, n);
  int c = (p.type == 3 || p.type == 6) ? 3 : 1;
  int64_t count = p.w * p.h * c;
  out.width = (int32_t)p.w, out.height = (int32_t)p.h, out.channels = c;
  out.pixels.resize(count);
  uint8_t *dst = out.pixels.data();
  auto scale = [&](int64_t v) -> uint8_t {
    AFC_CHECK(v <= p.maxval, AFC_ERR_FORMAT, "P%d sample %lld exceeds maxval %lld", p.type, (long long)v,
              (long long)p.maxval);
    return p.maxval == 255 ? (uint8_t)v : (uint8_t)((v * 255 + p.maxval / 2) / p.maxval);
  };
  if (p.type == 5 || p.type == 6) {
    int bps = p.maxval < 256 ? 1 : 2;
    AFC_CHECK(n - p.data >= count * bps, AFC_ERR_FORMAT,
              "truncated P%d image: %lldx%lld needs %lld pixel bytes, %lld present", p.type, (long long)p.w,
              (long long)p.h, (long long)(count * bps), (long long)(n - p.data));
    const uint8_t *s = b + p.data;
    if (bps == 1 && p.maxval == 255) {
      memcpy(dst, s, count);
    } else {
      for (int64_t k = 0; k < count; k++) dst[k] = scale(bps == 1 ? s[k] : (s[2 * k] << 8 | s[2 * k + 1]));
    }
  } else {
    int64_t i = p.data;
    for (int64_t k = 0; k < count; k++) {
      while (i < n && isspace(b[i])) i++;
      AFC_CHECK(i < n && isdigit(b[i]), AFC_ERR_FORMAT, "truncated P%d image: sample %lld of %lld missing",
                p.type, (long long)k, (long long)count);
      int64_t v = 0;
      while (i < n && isdigit(b[i]) && v <= 65535) v = v * 10 + (b[i++] - '0');
      dst[k] = scale(v);
    }
  }
}

void png_decode(const uint8_t *b, int64_t n, Image &out, bool want_rgb) {
  png_image img;
  memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&img, b, (size_t)n))
    AFC_FAIL(AFC_ERR_FORMAT, "corrupt PNG (%lld bytes): %s", (long long)n, img.message);
  bool grey = !(img.format & PNG_FORMAT_FLAG_COLOR) && !want_rgb;
  img.format = grey ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;  // alpha is composited over black
  out.width = (int32_t)img.width, out.height = (int32_t)img.height, out.channels = grey ? 1 : 3;
  out.pixels.resize(PNG_IMAGE_SIZE(img));
  if (!png_image_finish_read(&img, nullptr, out.pixels.data(), 0, nullptr)) {
    std::string msg = img.message;
    png_image_free(&img);
    AFC_FAIL(AFC_ERR_FORMAT, "corrupt PNG (%lld bytes): %s", (long long)n, msg.c_str());
  }
}

void jpeg_decode(const uint8_t *b, int64_t n, Image &out, bool want_rgb) {
  int w, h;
  const int cs = jpeg_header(b, n, &w, &h);
  // libjpeg converts CMYK to nothing else: it comes out as CMYK and is converted here.
  const bool cmyk = cs == TJCS_CMYK || cs == TJCS_YCCK;
  const int c = (cs == TJCS_GRAY && !want_rgb) ? 1 : 3;
  out.width = w, out.height = h, out.channels = c;
  out.pixels.resize((size_t)w * h * c);
  std::vector<uint8_t> ink(cmyk ? (size_t)w * h * 4 : 0);
  if (tjDecompress2(tj.dec, b, (unsigned long)n, cmyk ? ink.data() : out.pixels.data(), w, 0, h,
                    cmyk ? TJPF_CMYK : c == 1 ? TJPF_GRAY : TJPF_RGB, TJFLAG_ACCURATEDCT) != 0 &&
      // Warnings are tolerated (real datasets hold many slightly odd files), a truncated
      // file is not: libjpeg reports it as the warning "Premature end of JPEG file".
      (tjGetErrorCode(tj.dec) == TJERR_FATAL || strstr(tjGetErrorStr2(tj.dec), "Premature end")))
    jpeg_fail("corrupt JPEG", n, tjGetErrorStr2(tj.dec));
  if (cmyk) cmyk_to_rgb(ink.data(), (int64_t)w * h, out.pixels.data());
}

}  // namespace

void image_info(const uint8_t *b, int64_t n, int32_t *width, int32_t *height, int32_t *channels) {
  switch (sniff(b, n)) {
    case Kind::JPEG: {
      int w, h;
      const int cs = jpeg_header(b, n, &w, &h);
      *width = w, *height = h, *channels = cs == TJCS_GRAY ? 1 : 3;
      return;
    }
    case Kind::PNG: {
      png_image img;
      memset(&img, 0, sizeof img);
      img.version = PNG_IMAGE_VERSION;
      if (!png_image_begin_read_from_memory(&img, b, (size_t)n))
        AFC_FAIL(AFC_ERR_FORMAT, "corrupt PNG (%lld bytes): %s", (long long)n, img.message);
      *width = (int32_t)img.width, *height = (int32_t)img.height;
      *channels = (img.format & PNG_FORMAT_FLAG_COLOR) ? 3 : 1;
      png_image_free(&img);
      return;
    }
    case Kind::PNM: {
      PnmHeader p = pnm_header(b, n);
      *width = (int32_t)p.w, *height = (int32_t)p.h, *channels = (p.type == 3 || p.type == 6) ? 3 : 1;
      return;
    }
    default: unknown_format(b, n);
  }
}

void image_decode(const uint8_t *b, int64_t n, Image &out, bool want_rgb) {
  switch (sniff(b, n)) {
    case Kind::JPEG: jpeg_decode(b, n, out, want_rgb); return;
    case Kind::PNG: png_decode(b, n, out, want_rgb); return;
    case Kind::PNM: pnm_decode(b, n, out); return;
    default: unknown_format(b, n);
  }
}

void image_resize(const uint8_t *src, int32_t sw, int32_t sh, int32_t c, int32_t cx, int32_t cy, int32_t cw,
                  int32_t ch, uint8_t *dst, int32_t dw, int32_t dh) {
  // Source coordinate of a destination pixel centre: (d + 0.5) * scale - 0.5, clamped.
  const float sx = (float)cw / dw, sy = (float)ch / dh;
  std::vector<int32_t> x0(dw), x1(dw);
  std::vector<float> fx(dw);
  for (int32_t x = 0; x < dw; x++) {
    float f = std::max(0.0f, (x + 0.5f) * sx - 0.5f);
    int32_t i = std::min((int32_t)f, cw - 1);
    fx[x] = std::min(f - i, 1.0f);
    x0[x] = cx + i, x1[x] = cx + std::min(i + 1, cw - 1);
  }
  for (int32_t y = 0; y < dh; y++) {
    float f = std::max(0.0f, (y + 0.5f) * sy - 0.5f);
    int32_t i = std::min((int32_t)f, ch - 1);
    float wy = std::min(f - i, 1.0f);
    const uint8_t *r0 = src + (int64_t)(cy + i) * sw * c;
    const uint8_t *r1 = src + (int64_t)(cy + std::min(i + 1, ch - 1)) * sw * c;
    uint8_t *d = dst + (int64_t)y * dw * c;
    for (int32_t x = 0; x < dw; x++) {
      for (int32_t k = 0; k < c; k++) {
        float top = r0[x0[x] * c + k] + fx[x] * (r0[x1[x] * c + k] - r0[x0[x] * c + k]);
        float bot = r1[x0[x] * c + k] + fx[x] * (r1[x1[x] * c + k] - r1[x0[x] * c + k]);
        d[x * c + k] = (uint8_t)std::lround(top + wy * (bot - top));
      }
    }
  }
}

bool image_decode_rgb(const uint8_t *b, int64_t n, int32_t out_w, int32_t out_h, uint8_t *rgb, Image &img) {
  image_decode(b, n, img, true);
  const int64_t plane = (int64_t)out_w * out_h;
  if (img.width == out_w && img.height == out_h) {
    if (img.channels == 3) {
      memcpy(rgb, img.pixels.data(), plane * 3);
    } else {
      for (int64_t i = 0; i < plane; i++) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = img.pixels[i];
    }
    return false;
  }
  if (img.channels == 3) {
    image_resize(img.pixels.data(), img.width, img.height, 3, 0, 0, img.width, img.height, rgb, out_w, out_h);
  } else {
    std::vector<uint8_t> grey(plane);
    image_resize(img.pixels.data(), img.width, img.height, 1, 0, 0, img.width, img.height, grey.data(), out_w,
                 out_h);
    for (int64_t i = 0; i < plane; i++) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = grey[i];
  }
  return true;
}

}  // namespace afc

extern "C" {

AFC_API afc_status afc_image_info(const uint8_t *bytes, int64_t size, int32_t *width, int32_t *height,
                                  int32_t *channels) {
  return AFC_GUARD({
    AFC_CHECK(width && height && channels, AFC_ERR_INVALID_ARGUMENT, "width, height or channels is NULL");
    AFC_CHECK(size >= 0 && (bytes || size == 0), AFC_ERR_INVALID_ARGUMENT, "bytes is NULL with size %lld",
              (long long)size);
    int32_t w, h, c;
    afc::image_info(bytes, size, &w, &h, &c);
    *width = w, *height = h, *channels = c;
  });
}

AFC_API afc_status afc_image_decode(const uint8_t *bytes, int64_t size, int32_t out_width, int32_t out_height,
                                    uint8_t *rgb, int64_t rgb_size) {
  return AFC_GUARD({
    AFC_CHECK(size >= 0 && (bytes || size == 0), AFC_ERR_INVALID_ARGUMENT, "bytes is NULL with size %lld",
              (long long)size);
    AFC_CHECK(out_width > 0 && out_height > 0, AFC_ERR_INVALID_ARGUMENT,
              "output size %dx%d is not positive", out_width, out_height);
    AFC_CHECK(rgb && rgb_size == (int64_t)out_width * out_height * 3, AFC_ERR_SHAPE,
              "rgb holds %lld bytes: expected %dx%dx3 = %lld", (long long)rgb_size, out_height, out_width,
              (long long)out_width * out_height * 3);
    afc::Image scratch;
    afc::image_decode_rgb(bytes, size, out_width, out_height, rgb, scratch);
  });
}

AFC_API afc_status afc_image_resize(const uint8_t *src, int32_t src_width, int32_t src_height, int32_t crop_x,
                                    int32_t crop_y, int32_t crop_width, int32_t crop_height, uint8_t *dst,
                                    int32_t dst_width, int32_t dst_height) {
  return AFC_GUARD({
    AFC_CHECK(src && dst, AFC_ERR_INVALID_ARGUMENT, "src or dst is NULL");
    AFC_CHECK(src_width > 0 && src_height > 0 && dst_width > 0 && dst_height > 0, AFC_ERR_INVALID_ARGUMENT,
              "sizes %dx%d -> %dx%d must be positive", src_width, src_height, dst_width, dst_height);
    AFC_CHECK(crop_x >= 0 && crop_y >= 0 && crop_width > 0 && crop_height > 0 &&
                  (int64_t)crop_x + crop_width <= src_width && (int64_t)crop_y + crop_height <= src_height,
              AFC_ERR_INVALID_ARGUMENT, "crop box (%d, %d, %d, %d) does not fit in the %dx%d source", crop_x,
              crop_y, crop_width, crop_height, src_width, src_height);
    afc::image_resize(src, src_width, src_height, 3, crop_x, crop_y, crop_width, crop_height, dst, dst_width,
                      dst_height);
  });
}

AFC_API afc_status afc_image_encode_jpeg(const uint8_t *rgb, int32_t width, int32_t height, int32_t quality,
                                         uint8_t *out, int64_t capacity, int64_t *written) {
  return AFC_GUARD({
    AFC_CHECK(written, AFC_ERR_INVALID_ARGUMENT, "written is NULL");
    AFC_CHECK(width > 0 && height > 0 && width <= 65535 && height <= 65535, AFC_ERR_INVALID_ARGUMENT,
              "image size %dx%d is out of range 1..65535", width, height);
    AFC_CHECK(quality >= 1 && quality <= 100, AFC_ERR_INVALID_ARGUMENT, "quality %d is out of range 1..100",
              quality);
    const int64_t bound = (int64_t)tjBufSize(width, height, TJSAMP_420);
    if (out == nullptr && capacity == 0) {
      *written = bound;
      return;
    }
    AFC_CHECK(rgb && out && capacity >= 0, AFC_ERR_INVALID_ARGUMENT, "rgb or out is NULL");
    if (!afc::tj.enc) afc::tj.enc = tjInitCompress();
    AFC_CHECK(afc::tj.enc, AFC_ERR_BACKEND, "cannot create a JPEG encoder: %s", tjGetErrorStr());
    unsigned char *buf = nullptr;
    unsigned long len = 0;
    if (tjCompress2(afc::tj.enc, rgb, width, 0, height, TJPF_RGB, &buf, &len, TJSAMP_420, quality,
                    TJFLAG_ACCURATEDCT) != 0) {
      std::string msg = tjGetErrorStr2(afc::tj.enc);
      tjFree(buf);
      AFC_FAIL(AFC_ERR_BACKEND, "JPEG encoding failed: %s", msg.c_str());
    }
    if ((int64_t)len > capacity) {
      tjFree(buf);
      AFC_FAIL(AFC_ERR_SHAPE, "JPEG needs %lld bytes, out holds %lld (size it with (NULL, 0))", (long long)len,
               (long long)capacity);
    }
    memcpy(out, buf, len);
    tjFree(buf);
    *written = (int64_t)len;
  });
}

}  // extern "C"
