// Datasets: an indexed collection of labelled images from RecordIO, an image folder, or a
// synthetic source. The loader threads call load() concurrently; it only reads shared state.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "arcface.h"
#include "data/image.h"
#include "data/recordio.h"

struct afc_dataset {
  int32_t kind = AFC_DATASET_RECORDIO;
  int32_t flags = 0;
  std::string path;
  std::unique_ptr<afc::RecordReader> rec;
  std::vector<int64_t> rec_pos;      // RecordIO: reader position of each image
  std::vector<std::string> files;    // folder: file of each image
  std::vector<int64_t> labels;       // every kind
  int64_t synthetic_size = 0;
  int64_t num_classes = 0, min_label = 0, max_label = -1, identity_records = 0;
  bool has_meta = false;
  std::vector<std::string> warnings;

  int64_t size() const { return kind == AFC_DATASET_SYNTHETIC ? synthetic_size : (int64_t)labels.size(); }
  int64_t label(int64_t i) const { return kind == AFC_DATASET_SYNTHETIC ? 1 : labels[i]; }
  // Decodes image i to RGB w×h into `rgb`; returns true when it was resized. `buf` and
  // `img` are the caller's scratch. Throws AFC_ERR_FORMAT naming the file, key and offset.
  bool load(int64_t i, int32_t w, int32_t h, uint8_t *rgb, std::vector<uint8_t> &buf, afc::Image &img) const;
  std::string describe() const;
};

namespace afc {
afc_dataset *dataset_open(int32_t kind, const std::string &path, int64_t synthetic_size, int32_t flags);
}
