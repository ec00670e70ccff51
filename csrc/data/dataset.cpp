// Dataset opening (RecordIO layouts, image folders, synthetic) and per-image loading.
#include "data/dataset.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace afc {

namespace {

std::string json_str(const std::string &s) {
  std::string o = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      o += '\\';
      o += (char)c;
    } else if (c < 0x20) {
      char b[8];
      snprintf(b, sizeof b, "\\u%04x", c);
      o += b;
    } else {
      o += (char)c;
    }
  }
  return o + "\"";
}

// The class of a float label: a non-negative integer value (tolerating float rounding).
int64_t label_class(float v, const char *what) {
  const double r = std::nearbyint((double)v);
  AFC_CHECK(std::isfinite(v) && std::fabs((double)v - r) <= 1e-3 && r >= 0 && r < 9.0e15, AFC_ERR_FORMAT,
            "%s: label %.7g is not a non-negative integer class", what, (double)v);
  return (int64_t)r;
}

void open_recordio(afc_dataset &d) {
  std::string idx = d.path;
  const size_t dot = idx.rfind('.'), slash = idx.rfind('/');
  if (dot != std::string::npos && (slash == std::string::npos || dot > slash)) idx.resize(dot);
  idx += ".idx";
  d.rec = std::make_unique<RecordReader>(d.path, idx, (d.flags & AFC_DATASET_VERIFY_INDEX) != 0);
  const RecordReader &r = *d.rec;
  std::vector<uint8_t> buf;
  char what[512];
  auto name = [&](int64_t pos) {
    snprintf(what, sizeof what, "record key %lld at offset %lld of \"%s\"", (long long)r.key(pos),
             (long long)r.offset(pos), d.path.c_str());
    return what;
  };
  // Candidate image positions: from the meta record when there is one, else every key.
  std::vector<int64_t> cand;
  bool skip_empty = false;
  const int64_t p0 = r.find(0);
  if (p0 >= 0) {
    r.read(p0, buf);
    RecordHeader h = parse_header(buf.data(), (int64_t)buf.size(), name(p0));
    if (h.flag > 0 && h.labels.size() >= 2) {
      d.has_meta = true;
      const int64_t first = (int64_t)h.labels[0], end = (int64_t)h.labels[1];
      for (int64_t k = first; k < end; k++) d.identity_records += r.find(k) >= 0;
      if (first > 1) {
        for (int64_t k = 1; k < first; k++) {
          const int64_t p = r.find(k);
          AFC_CHECK(p >= 0, AFC_ERR_FORMAT,
                    "cannot open \"%s\": its meta record says images are keys 1..%lld, but key %lld is not in "
                    "the index",
                    d.path.c_str(), (long long)(first - 1), (long long)k);
          cand.push_back(p);
        }
      } else {
        char w[512];
        snprintf(w, sizeof w,
                 "the meta record of \"%s\" claims %lld images (labels [%lld, %lld]) but the index lists %lld "
                 "other keys: using the index keys",
                 d.path.c_str(), (long long)std::max<int64_t>(first - 1, 0), (long long)first, (long long)end,
                 (long long)(r.count() - 1));
        d.warnings.push_back(w);
        for (int64_t p = 0; p < r.count(); p++)
          if (p != p0) cand.push_back(p);
        skip_empty = true;
      }
    }
  }
  if (!d.has_meta) {
    for (int64_t p = 0; p < r.count(); p++) cand.push_back(p);
  }
  // Labels from each image header: only the header bytes are read.
  for (int64_t p : cand) {
    r.read(p, buf, 24);
    uint32_t flag = 0;
    if (buf.size() >= 4) memcpy(&flag, buf.data(), 4);
    if (flag > 0 && flag <= (1u << 24)) r.read(p, buf, 24 + 4 * (int64_t)flag + 1);
    RecordHeader h = parse_header(buf.data(), (int64_t)buf.size(), name(p));
    if (skip_empty && h.flag > 0 && h.image_offset >= (int64_t)buf.size()) continue;  // an identity record
    AFC_CHECK(!h.labels.empty(), AFC_ERR_FORMAT, "%s: flag %u gives no label", name(p), h.flag);
    d.rec_pos.push_back(p);
    d.labels.push_back(label_class(h.labels[0], name(p)));
  }
  AFC_CHECK(!d.labels.empty(), AFC_ERR_FORMAT, "cannot open \"%s\": it holds no image records (%lld keys indexed)",
            d.path.c_str(), (long long)r.count());
}

bool is_image(const std::filesystem::path &p) {
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), ::tolower);
  return e == ".jpg" || e == ".jpeg" || e == ".png" || e == ".pgm" || e == ".ppm" || e == ".pnm";
}

void open_folder(afc_dataset &d) {
  namespace fs = std::filesystem;
  std::error_code ec;
  AFC_CHECK(fs::is_directory(d.path, ec), AFC_ERR_NOT_FOUND, "cannot open image folder \"%s\": not a directory",
            d.path.c_str());
  std::vector<fs::path> classes;
  for (const auto &e : fs::directory_iterator(d.path, ec))
    if (e.is_directory()) classes.push_back(e.path());
  std::sort(classes.begin(), classes.end());
  for (size_t c = 0; c < classes.size(); c++) {
    std::vector<std::string> files;
    for (const auto &e : fs::directory_iterator(classes[c], ec))
      if (e.is_regular_file() && is_image(e.path())) files.push_back(e.path().string());
    std::sort(files.begin(), files.end());
    for (auto &f : files) {
      d.files.push_back(f);
      d.labels.push_back((int64_t)c);
    }
  }
  AFC_CHECK(!d.files.empty(), AFC_ERR_FORMAT,
            "cannot open image folder \"%s\": no .jpg/.png/.pgm/.ppm images in its %zu sub-folders", d.path.c_str(),
            classes.size());
}

uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

afc_dataset *dataset_open(int32_t kind, const std::string &path, int64_t synthetic_size, int32_t flags) {
  auto d = std::make_unique<afc_dataset>();
  d->kind = kind, d->path = path, d->flags = flags;
  switch (kind) {
    case AFC_DATASET_RECORDIO: open_recordio(*d); break;
    case AFC_DATASET_FOLDER: open_folder(*d); break;
    case AFC_DATASET_SYNTHETIC:
      AFC_CHECK(synthetic_size > 0, AFC_ERR_INVALID_ARGUMENT, "synthetic_size %lld must be positive",
                (long long)synthetic_size);
      d->synthetic_size = synthetic_size;
      d->min_label = d->max_label = 1;
      d->num_classes = 2;
      return d.release();
    default:
      AFC_FAIL(AFC_ERR_INVALID_ARGUMENT, "dataset kind %d is unknown: expected 0 (RecordIO), 1 (folder), 2 (synthetic)",
               kind);
  }
  d->min_label = *std::min_element(d->labels.begin(), d->labels.end());
  d->max_label = *std::max_element(d->labels.begin(), d->labels.end());
  d->num_classes = d->max_label + 1;
  return d.release();
}

}  // namespace afc

bool afc_dataset::load(int64_t i, int32_t w, int32_t h, uint8_t *rgb, std::vector<uint8_t> &buf,
                       afc::Image &img) const {
  if (kind == AFC_DATASET_SYNTHETIC) {
    // One fixed random image, as arcface_torch's SyntheticDataLoader uses.
    for (int64_t k = 0; k < (int64_t)w * h * 3; k++) rgb[k] = (uint8_t)(afc::mix((uint64_t)k) % 255);
    return false;
  }
  if (kind == AFC_DATASET_FOLDER) {
    const std::string &f = files[i];
    std::ifstream in(f, std::ios::binary);
    AFC_CHECK(in, AFC_ERR_IO, "cannot read image \"%s\"", f.c_str());
    buf.assign(std::istreambuf_iterator<char>(in), {});
    try {
      return afc::image_decode_rgb(buf.data(), (int64_t)buf.size(), w, h, rgb, img);
    } catch (const afc::Error &e) {
      AFC_FAIL(e.status, "cannot decode image \"%s\": %s", f.c_str(), e.message.c_str());
    }
  }
  const int64_t p = rec_pos[i];
  rec->read(p, buf);
  char what[512];
  snprintf(what, sizeof what, "record key %lld at offset %lld of \"%s\"", (long long)rec->key(p),
           (long long)rec->offset(p), path.c_str());
  afc::RecordHeader hd = afc::parse_header(buf.data(), (int64_t)buf.size(), what);
  try {
    return afc::image_decode_rgb(buf.data() + hd.image_offset, (int64_t)buf.size() - hd.image_offset, w, h, rgb,
                                 img);
  } catch (const afc::Error &e) {
    AFC_FAIL(e.status, "cannot decode %s: %s", what, e.message.c_str());
  }
}

std::string afc_dataset::describe() const {
  static const char *kinds[] = {"recordio", "folder", "synthetic"};
  std::string ws = "[";
  for (size_t i = 0; i < warnings.size(); i++) ws += (i ? "," : "") + afc::json_str(warnings[i]);
  ws += "]";
  char buf[512];
  snprintf(buf, sizeof buf,
           "\"num_images\":%lld,\"num_classes\":%lld,\"min_label\":%lld,\"max_label\":%lld,\"has_meta\":%s,"
           "\"identity_records\":%lld,",
           (long long)size(), (long long)num_classes, (long long)min_label, (long long)max_label,
           has_meta ? "true" : "false", (long long)identity_records);
  return std::string("{\"kind\":\"") + kinds[kind] + "\",\"path\":" + afc::json_str(path) + "," + buf +
         "\"warnings\":" + ws + "}";
}
