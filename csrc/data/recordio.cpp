// RecordIO reader (mmap) and writer; see recordio.h for the format.
#include "data/recordio.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace afc {

namespace {
uint32_t load_u32(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}
}  // namespace

RecordReader::RecordReader(const std::string &rec_path, const std::string &idx_path, bool verify)
    : rec_path_(rec_path), idx_path_(idx_path) {
  FILE *f = fopen(idx_path.c_str(), "rb");
  AFC_CHECK(f, errno == ENOENT ? AFC_ERR_NOT_FOUND : AFC_ERR_IO, "cannot open index \"%s\": %s",
            idx_path.c_str(), strerror(errno));
  fd_ = ::open(rec_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) {
    int err = errno;
    fclose(f);
    AFC_FAIL(err == ENOENT ? AFC_ERR_NOT_FOUND : AFC_ERR_IO, "cannot open \"%s\": %s", rec_path.c_str(),
             strerror(err));
  }
  struct stat st;
  fstat(fd_, &st);
  size_ = st.st_size;
  // Parse "key offset" lines; offsets as unsigned 64-bit so that any written value is seen.
  char line[256];
  int64_t lineno = 0;
  std::string problem;
  while (fgets(line, sizeof line, f)) {
    lineno++;
    char *s = line, *end;
    while (*s == ' ' || *s == '\t') s++;
    if (*s == '\n' || *s == '\r' || *s == 0) continue;
    errno = 0;
    long long key = strtoll(s, &end, 10);
    bool ok = end != s && errno == 0 && key >= 0;
    s = end;
    errno = 0;
    unsigned long long off = ok ? strtoull(s, &end, 10) : 0;
    ok = ok && end != s && errno == 0 && !strchr(s, '-');
    while (ok && (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')) end++;
    ok = ok && *end == 0;
    char buf[512];
    if (!ok) {
      snprintf(buf, sizeof buf, "line %lld is not \"key<TAB>offset\" with non-negative 64-bit integers",
               (long long)lineno);
    } else if (off > (unsigned long long)size_ || (unsigned long long)size_ - off < 8) {
      snprintf(buf, sizeof buf, "key %lld: offset %llu is past the end of \"%s\" (%lld bytes)", key, off,
               rec_path.c_str(), (long long)size_);
    } else if (off % 4 != 0) {
      snprintf(buf, sizeof buf, "key %lld: offset %llu is not a multiple of 4 (\"%s\" holds %lld bytes)", key,
               off, rec_path.c_str(), (long long)size_);
    } else if (pos_.count(key)) {
      snprintf(buf, sizeof buf, "key %lld is listed twice (lines %lld and %lld)", key,
               (long long)pos_[key] + 1, (long long)lineno);
    } else {
      pos_[key] = (int64_t)keys_.size();
      keys_.push_back(key);
      offsets_.push_back((int64_t)off);
      continue;
    }
    fclose(f);
    ::close(fd_);
    fd_ = -1;
    AFC_FAIL(AFC_ERR_FORMAT, "bad index \"%s\": %s", idx_path.c_str(), buf);
  }
  fclose(f);
  if (size_ > 0) {
    void *m = mmap(nullptr, (size_t)size_, PROT_READ, MAP_SHARED, fd_, 0);
    if (m == MAP_FAILED) {
      int err = errno;
      ::close(fd_);
      fd_ = -1;
      AFC_FAIL(AFC_ERR_IO, "cannot map \"%s\" (%lld bytes): %s", rec_path.c_str(), (long long)size_,
               strerror(err));
    }
    map_ = (const uint8_t *)m;
    madvise(m, (size_t)size_, MADV_RANDOM);
  }
  if (!verify) return;
  for (size_t i = 0; i < keys_.size(); i++) {
    const int64_t off = offsets_[i];
    const uint32_t magic = load_u32(map_ + off), word = load_u32(map_ + off + 4);
    const uint32_t cflag = word >> 29, len = word & ((1u << 29) - 1);
    const char *why = nullptr;
    char buf[160];
    if (magic != kRecordMagic) {
      snprintf(buf, sizeof buf, "holds 0x%08x, not the record magic 0xced7230a (an offset inside a record?)",
               magic);
      why = buf;
    } else if (cflag != 0 && cflag != 1) {
      snprintf(buf, sizeof buf, "is a continuation part (cflag %u), not the start of a record", cflag);
      why = buf;
    } else if ((uint64_t)off + 8 + len > (uint64_t)size_) {
      snprintf(buf, sizeof buf, "starts a record of %u bytes ending at %lld (truncated file?)", len,
               (long long)(off + 8 + len));
      why = buf;
    }
    if (why) {
      ::munmap((void *)map_, (size_t)size_);
      ::close(fd_);
      map_ = nullptr, fd_ = -1;
      AFC_FAIL(AFC_ERR_FORMAT, "bad index \"%s\": key %lld: offset %lld of \"%s\" (%lld bytes) %s",
               idx_path.c_str(), (long long)keys_[i], (long long)off, rec_path.c_str(), (long long)size_, why);
    }
  }
}

RecordReader::~RecordReader() {
  if (map_) munmap((void *)map_, (size_t)size_);
  if (fd_ >= 0) ::close(fd_);
}

int64_t RecordReader::find(int64_t key) const {
  auto it = pos_.find(key);
  return it == pos_.end() ? -1 : it->second;
}

void RecordReader::read(int64_t i, std::vector<uint8_t> &out, int64_t limit) const {
  const int64_t key = keys_[i], start = offsets_[i];
  out.clear();
  int64_t pos = start;
  for (int part = 0;; part++) {
    AFC_CHECK(pos <= size_ - 8, AFC_ERR_FORMAT,
              "cannot read record key %lld at offset %lld of \"%s\": part %d header at %lld needs 8 bytes, the "
              "file holds %lld bytes (truncated file?)",
              (long long)key, (long long)start, rec_path_.c_str(), part, (long long)pos, (long long)size_);
    const uint32_t magic = load_u32(map_ + pos), word = load_u32(map_ + pos + 4);
    const uint32_t cflag = word >> 29, len = word & ((1u << 29) - 1);
    AFC_CHECK(magic == kRecordMagic, AFC_ERR_FORMAT,
              "cannot read record key %lld at offset %lld of \"%s\": found 0x%08x at %lld, not the record "
              "magic 0xced7230a",
              (long long)key, (long long)start, rec_path_.c_str(), magic, (long long)pos);
    AFC_CHECK(part == 0 ? (cflag == 0 || cflag == 1) : (cflag == 2 || cflag == 3), AFC_ERR_FORMAT,
              "cannot read record key %lld at offset %lld of \"%s\": part %d has cflag %u", (long long)key,
              (long long)start, rec_path_.c_str(), part, cflag);
    AFC_CHECK(pos + 8 + (int64_t)len <= size_, AFC_ERR_FORMAT,
              "cannot read record key %lld at offset %lld of \"%s\": %u bytes at %lld end at %lld, the file "
              "holds %lld bytes (truncated file?)",
              (long long)key, (long long)start, rec_path_.c_str(), len, (long long)pos + 8,
              (long long)(pos + 8 + len), (long long)size_);
    if (part > 0) {
      const uint32_t m = kRecordMagic;
      out.insert(out.end(), (const uint8_t *)&m, (const uint8_t *)&m + 4);
    }
    out.insert(out.end(), map_ + pos + 8, map_ + pos + 8 + len);
    if (cflag == 0 || cflag == 3) break;
    if (limit >= 0 && (int64_t)out.size() >= limit) break;
    pos += 8 + ((len + 3) & ~3u);
  }
  if (limit >= 0 && (int64_t)out.size() > limit) out.resize(limit);
}

RecordWriter::RecordWriter(const std::string &rec_path, const std::string &idx_path)
    : rec_path_(rec_path), idx_path_(idx_path) {
  rec_ = fopen((rec_path + ".tmp").c_str(), "wb");
  AFC_CHECK(rec_, AFC_ERR_IO, "cannot create \"%s.tmp\": %s", rec_path.c_str(), strerror(errno));
  idx_ = fopen((idx_path + ".tmp").c_str(), "wb");
  if (!idx_) {
    int err = errno;
    fclose(rec_);
    remove((rec_path + ".tmp").c_str());
    AFC_FAIL(AFC_ERR_IO, "cannot create \"%s.tmp\": %s", idx_path.c_str(), strerror(err));
  }
}

RecordWriter::~RecordWriter() {
  if (rec_) fclose(rec_);
  if (idx_) fclose(idx_);
  if (!done_) {
    remove((rec_path_ + ".tmp").c_str());
    remove((idx_path_ + ".tmp").c_str());
  }
}

void RecordWriter::write(int64_t key, const uint8_t *data, int64_t size) {
  AFC_CHECK(!done_, AFC_ERR_STATE, "the writer of \"%s\" is finished", rec_path_.c_str());
  AFC_CHECK(size >= 0 && size < (1 << 29), AFC_ERR_INVALID_ARGUMENT,
            "record key %lld has %lld bytes: RecordIO records hold at most 2^29 - 1", (long long)key,
            (long long)size);
  const int64_t start = pos_;
  bool ok = true;
  auto put = [&](const void *p, size_t n) {
    if (n && fwrite(p, 1, n, rec_) != n) ok = false;
    pos_ += (int64_t)n;
  };
  auto head = [&](uint32_t cflag, uint32_t len) {
    uint32_t h[2] = {kRecordMagic, cflag << 29 | len};
    put(h, 8);
  };
  // Split at every 4-aligned copy of the magic, exactly as dmlc-core's writer does.
  int64_t from = 0;
  for (int64_t i = 0; i + 4 <= size; i += 4) {
    if (load_u32(data + i) != kRecordMagic) continue;
    head(from == 0 ? 1 : 2, (uint32_t)(i - from));
    put(data + from, (size_t)(i - from));
    from = i + 4;
  }
  head(from == 0 ? 0 : 3, (uint32_t)(size - from));
  put(data + from, (size_t)(size - from));
  const uint32_t zero = 0;
  put(&zero, (size_t)((4 - (size - from) % 4) % 4));
  if (fprintf(idx_, "%lld\t%lld\n", (long long)key, (long long)start) < 0) ok = false;
  AFC_CHECK(ok, AFC_ERR_IO, "cannot write record key %lld to \"%s.tmp\": %s", (long long)key,
            rec_path_.c_str(), strerror(errno));
}

void RecordWriter::finish() {
  AFC_CHECK(!done_, AFC_ERR_STATE, "the writer of \"%s\" is already finished", rec_path_.c_str());
  bool ok = fflush(rec_) == 0 && fsync(fileno(rec_)) == 0 && fflush(idx_) == 0 && fsync(fileno(idx_)) == 0;
  ok = (fclose(rec_) == 0) && ok;
  ok = (fclose(idx_) == 0) && ok;
  rec_ = idx_ = nullptr;
  AFC_CHECK(ok, AFC_ERR_IO, "cannot write \"%s.tmp\": %s", rec_path_.c_str(), strerror(errno));
  // The .rec goes into place first: a crash in between leaves a new .rec with the old
  // .idx at worst, which the index checks at open report.
  AFC_CHECK(rename((rec_path_ + ".tmp").c_str(), rec_path_.c_str()) == 0, AFC_ERR_IO,
            "cannot rename \"%s.tmp\": %s", rec_path_.c_str(), strerror(errno));
  AFC_CHECK(rename((idx_path_ + ".tmp").c_str(), idx_path_.c_str()) == 0, AFC_ERR_IO,
            "cannot rename \"%s.tmp\": %s", idx_path_.c_str(), strerror(errno));
  done_ = true;
}

RecordHeader parse_header(const uint8_t *p, int64_t n, const char *what) {
  RecordHeader h;
  AFC_CHECK(n >= 24, AFC_ERR_FORMAT, "%s: %lld bytes, shorter than the 24-byte image header", what,
            (long long)n);
  memcpy(&h.flag, p, 4);
  float scalar;
  memcpy(&scalar, p + 4, 4);
  memcpy(&h.id, p + 8, 8);
  memcpy(&h.id2, p + 16, 8);
  if (h.flag == 0) {
    h.labels.assign(1, scalar);
    h.image_offset = 24;
  } else {
    AFC_CHECK(h.flag <= (1u << 24) && 24 + 4 * (int64_t)h.flag <= n, AFC_ERR_FORMAT,
              "%s: flag %u announces %u float labels, but the record holds %lld bytes", what, h.flag, h.flag,
              (long long)n);
    h.labels.resize(h.flag);
    memcpy(h.labels.data(), p + 24, 4 * (size_t)h.flag);
    h.image_offset = 24 + 4 * (int64_t)h.flag;
  }
  return h;
}

}  // namespace afc
