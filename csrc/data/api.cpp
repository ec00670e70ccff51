// The exported RecordIO and dataset functions: argument checks over recordio.h / dataset.h.
#include <cstring>
#include <string>

#include "core/error.h"
#include "data/dataset.h"

struct afc_recordio {
  std::unique_ptr<afc::RecordReader> r;
};
struct afc_recordio_writer {
  std::unique_ptr<afc::RecordWriter> w;
};

extern "C" {

AFC_API afc_status afc_recordio_create(const char *rec_path, const char *idx_path, int32_t verify,
                                       afc_recordio_t **out) {
  return AFC_GUARD({
    AFC_CHECK(rec_path && idx_path && out, AFC_ERR_INVALID_ARGUMENT, "rec_path, idx_path or out is NULL");
    auto h = std::make_unique<afc_recordio>();
    h->r = std::make_unique<afc::RecordReader>(rec_path, idx_path, verify != 0);
    *out = h.release();
  });
}

AFC_API void afc_recordio_destroy(afc_recordio_t *rec) { delete rec; }

AFC_API afc_status afc_recordio_count(const afc_recordio_t *rec, int64_t *count, int64_t *file_size) {
  return AFC_GUARD({
    AFC_CHECK(rec, AFC_ERR_INVALID_ARGUMENT, "rec is NULL");
    if (count) *count = rec->r->count();
    if (file_size) *file_size = rec->r->file_size();
  });
}

AFC_API afc_status afc_recordio_keys(const afc_recordio_t *rec, int64_t *keys, int64_t *offsets, int64_t count) {
  return AFC_GUARD({
    AFC_CHECK(rec, AFC_ERR_INVALID_ARGUMENT, "rec is NULL");
    AFC_CHECK(count == rec->r->count(), AFC_ERR_SHAPE, "count %lld differs from the %lld indexed records",
              (long long)count, (long long)rec->r->count());
    for (int64_t i = 0; i < count; i++) {
      if (keys) keys[i] = rec->r->key(i);
      if (offsets) offsets[i] = rec->r->offset(i);
    }
  });
}

AFC_API afc_status afc_recordio_read(const afc_recordio_t *rec, int64_t key, uint8_t *buf, int64_t capacity,
                                     int64_t *size) {
  return AFC_GUARD({
    AFC_CHECK(rec && size, AFC_ERR_INVALID_ARGUMENT, "rec or size is NULL");
    const int64_t p = rec->r->find(key);
    AFC_CHECK(p >= 0, AFC_ERR_NOT_FOUND, "key %lld is not in the index of \"%s\"", (long long)key,
              rec->r->path().c_str());
    std::vector<uint8_t> data;
    rec->r->read(p, data);
    if (!(buf == nullptr && capacity == 0)) {
      AFC_CHECK(buf && capacity >= (int64_t)data.size(), AFC_ERR_SHAPE,
                "record key %lld has %zu bytes, buf holds %lld", (long long)key, data.size(), (long long)capacity);
      memcpy(buf, data.data(), data.size());
    }
    *size = (int64_t)data.size();
  });
}

AFC_API afc_status afc_recordio_writer_create(const char *rec_path, const char *idx_path,
                                              afc_recordio_writer_t **out) {
  return AFC_GUARD({
    AFC_CHECK(rec_path && idx_path && out, AFC_ERR_INVALID_ARGUMENT, "rec_path, idx_path or out is NULL");
    auto h = std::make_unique<afc_recordio_writer>();
    h->w = std::make_unique<afc::RecordWriter>(rec_path, idx_path);
    *out = h.release();
  });
}

AFC_API void afc_recordio_writer_destroy(afc_recordio_writer_t *writer) { delete writer; }

AFC_API afc_status afc_recordio_writer_write(afc_recordio_writer_t *writer, int64_t key, const uint8_t *data,
                                             int64_t size) {
  return AFC_GUARD({
    AFC_CHECK(writer, AFC_ERR_INVALID_ARGUMENT, "writer is NULL");
    AFC_CHECK(key >= 0, AFC_ERR_INVALID_ARGUMENT, "key %lld is negative", (long long)key);
    AFC_CHECK(size >= 0 && (data || size == 0), AFC_ERR_INVALID_ARGUMENT, "data is NULL with size %lld",
              (long long)size);
    writer->w->write(key, data, size);
  });
}

AFC_API afc_status afc_recordio_writer_finish(afc_recordio_writer_t *writer) {
  return AFC_GUARD({
    AFC_CHECK(writer, AFC_ERR_INVALID_ARGUMENT, "writer is NULL");
    writer->w->finish();
  });
}

AFC_API afc_status afc_dataset_create(int32_t kind, const char *path, int64_t synthetic_size, int32_t flags,
                                      afc_dataset_t **out) {
  return AFC_GUARD({
    AFC_CHECK(out && (path || kind == AFC_DATASET_SYNTHETIC), AFC_ERR_INVALID_ARGUMENT, "path or out is NULL");
    *out = afc::dataset_open(kind, path ? path : "", synthetic_size, flags);
  });
}

AFC_API void afc_dataset_destroy(afc_dataset_t *dataset) { delete dataset; }

AFC_API afc_status afc_dataset_describe(const afc_dataset_t *dataset, char *buf, int64_t capacity,
                                        int64_t *needed) {
  return AFC_GUARD({
    AFC_CHECK(dataset && needed, AFC_ERR_INVALID_ARGUMENT, "dataset or needed is NULL");
    const std::string s = dataset->describe();
    if (buf && capacity > 0) {
      const size_t n = std::min<size_t>(s.size(), (size_t)capacity - 1);
      memcpy(buf, s.data(), n);
      buf[n] = 0;
    }
    *needed = (int64_t)s.size() + 1;
  });
}

AFC_API afc_status afc_dataset_labels(const afc_dataset_t *dataset, int64_t *labels, int64_t count) {
  return AFC_GUARD({
    AFC_CHECK(dataset && labels, AFC_ERR_INVALID_ARGUMENT, "dataset or labels is NULL");
    AFC_CHECK(count == dataset->size(), AFC_ERR_SHAPE, "count %lld differs from the %lld images",
              (long long)count, (long long)dataset->size());
    for (int64_t i = 0; i < count; i++) labels[i] = dataset->label(i);
  });
}

AFC_API afc_status afc_dataset_image(const afc_dataset_t *dataset, int64_t index, int32_t width, int32_t height,
                                     uint8_t *rgb, int64_t rgb_size, int64_t *label) {
  return AFC_GUARD({
    AFC_CHECK(dataset, AFC_ERR_INVALID_ARGUMENT, "dataset is NULL");
    AFC_CHECK(index >= 0 && index < dataset->size(), AFC_ERR_INVALID_ARGUMENT,
              "index %lld is not in 0..%lld", (long long)index, (long long)dataset->size() - 1);
    AFC_CHECK(width > 0 && height > 0 && rgb && rgb_size == (int64_t)width * height * 3, AFC_ERR_SHAPE,
              "rgb holds %lld bytes: expected %dx%dx3", (long long)rgb_size, height, width);
    std::vector<uint8_t> buf;
    afc::Image img;
    dataset->load(index, width, height, rgb, buf, img);
    if (label) *label = dataset->label(index);
  });
}

}  // extern "C"
