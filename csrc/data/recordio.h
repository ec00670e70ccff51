// insightface / MXNet RecordIO: a memory-mapped reader over train.rec + train.idx and a
// writer producing the same format.
//
// A record on disk: uint32 magic 0xced7230a, uint32 (cflag << 29 | length), `length` bytes,
// zero padding to a multiple of 4. A payload that contains the magic at a 4-aligned position
// is split there by the writer (the magic itself is dropped; cflag 1 = first part, 2 = middle,
// 3 = last, 0 = whole record) and the reader puts the magic back between the parts.
// train.idx is text, one "key<TAB>offset" line per record; offsets are 64-bit.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <unordered_map>
#include <vector>

namespace afc {

constexpr uint32_t kRecordMagic = 0xced7230a;

class RecordReader {
 public:
  // Opens and checks the index: every offset 4-aligned and inside the file; with `verify`
  // also each record's magic and length (one read per record).
  RecordReader(const std::string &rec_path, const std::string &idx_path, bool verify);
  ~RecordReader();
  RecordReader(const RecordReader &) = delete;
  RecordReader &operator=(const RecordReader &) = delete;

  int64_t count() const { return (int64_t)keys_.size(); }
  int64_t key(int64_t i) const { return keys_[i]; }
  int64_t offset(int64_t i) const { return offsets_[i]; }
  int64_t file_size() const { return size_; }
  const std::string &path() const { return rec_path_; }
  // Position of `key` in the index, or -1.
  int64_t find(int64_t key) const;
  // Joined payload of the i-th indexed record; with `limit` >= 0 stops after that many bytes.
  void read(int64_t i, std::vector<uint8_t> &out, int64_t limit = -1) const;

 private:
  std::string rec_path_, idx_path_;
  int fd_ = -1;
  const uint8_t *map_ = nullptr;
  int64_t size_ = 0;
  std::vector<int64_t> keys_, offsets_;
  std::unordered_map<int64_t, int64_t> pos_;
};

class RecordWriter {
 public:
  // Writes to "<path>.tmp" files; finish() renames them into place, the destructor of an
  // unfinished writer removes them, so an interrupted write never leaves a half file.
  RecordWriter(const std::string &rec_path, const std::string &idx_path);
  ~RecordWriter();
  void write(int64_t key, const uint8_t *data, int64_t size);
  void finish();

 private:
  std::string rec_path_, idx_path_;
  FILE *rec_ = nullptr, *idx_ = nullptr;
  int64_t pos_ = 0;
  bool done_ = false;
};

// The 24-byte image header of insightface records (mx.recordio.IRHeader).
struct RecordHeader {
  uint32_t flag = 0;  // 0: one scalar label; k > 0: k float labels follow the header
  std::vector<float> labels;
  uint64_t id = 0, id2 = 0;
  int64_t image_offset = 0;  // where the encoded image starts in the payload
};
// Parses the header of a payload; `what` names the record in errors.
RecordHeader parse_header(const uint8_t *p, int64_t n, const char *what);

}  // namespace afc
