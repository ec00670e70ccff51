// The single-process world: rank 0 of 1, so every collective leaves data as it is.
#include <cstring>

#include "core/error.h"
#include "dist/comm.h"

namespace afc {
namespace {

class LocalComm final : public Comm {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  void all_reduce(float *, int64_t, ReduceOp) override {}
  void all_gather(const float *in, int64_t count, float *out) override { copy(in, count, out); }
  void all_gather(const int64_t *in, int64_t count, int64_t *out) override { copy(in, count, out); }
  void all_gather_v(const float *in, const int64_t *counts, float *out) override {
    copy(in, counts[0], out);
  }
  void broadcast(float *, int64_t, int) override {}
  void barrier() override {}
  void all_reduce(int64_t *, int64_t, ReduceOp) override {}
  void all_gather_v(const int64_t *in, const int64_t *counts, int64_t *out) override {
    copy(in, counts[0], out);
  }
  void broadcast(int64_t *, int64_t, int) override {}

 private:
  template <typename T>
  static void copy(const T *in, int64_t count, T *out) {
    if (count > 0 && in != out) std::memcpy(out, in, sizeof(T) * count);
  }
};

}  // namespace

void Comm::all_reduce(int64_t *, int64_t, ReduceOp) {
  AFC_FAIL(AFC_ERR_UNSUPPORTED, "int64 all-reduce is not implemented by this communicator");
}
void Comm::all_gather_v(const int64_t *, const int64_t *, int64_t *) {
  AFC_FAIL(AFC_ERR_UNSUPPORTED, "int64 all-gather-v is not implemented by this communicator");
}
void Comm::broadcast(int64_t *, int64_t, int) {
  AFC_FAIL(AFC_ERR_UNSUPPORTED, "int64 broadcast is not implemented by this communicator");
}

std::unique_ptr<Comm> make_local_comm() { return std::make_unique<LocalComm>(); }

}  // namespace afc
