// Bucketed all-reduce of many buffers: small gradients are packed into one staging bucket
// so that a model with hundreds of parameters costs a handful of collectives.
#include <algorithm>
#include <cstring>
#include <vector>

#include "dist/comm.h"

namespace afc {

void all_reduce_buffers(Comm &comm, float *const *buffers, const int64_t *counts, int64_t num_buffers,
                        int64_t bucket_elems, float scale) {
  if (bucket_elems <= 0) bucket_elems = int64_t(1) << 22;
  std::vector<float> bucket;
  std::vector<int64_t> members;  // buffers packed in the current bucket
  int64_t used = 0;
  auto flush = [&] {
    if (members.empty()) return;
    comm.all_reduce(bucket.data(), used, ReduceOp::Sum);
    int64_t off = 0;
    for (int64_t b : members) {
      for (int64_t i = 0; i < counts[b]; i++) buffers[b][i] = bucket[off + i] * scale;
      off += counts[b];
    }
    members.clear();
    used = 0;
  };
  for (int64_t b = 0; b < num_buffers; b++) {
    int64_t n = counts[b];
    if (n == 0) continue;
    if (n >= bucket_elems) {
      // A large buffer is reduced in place, no copy.
      comm.all_reduce(buffers[b], n, ReduceOp::Sum);
      if (scale != 1.0f)
        for (int64_t i = 0; i < n; i++) buffers[b][i] *= scale;
      continue;
    }
    if (used + n > bucket_elems) flush();
    if (static_cast<int64_t>(bucket.size()) < used + n) bucket.resize(std::max(bucket_elems, used + n));
    std::memcpy(bucket.data() + used, buffers[b], sizeof(float) * n);
    members.push_back(b);
    used += n;
  }
  flush();
}

}  // namespace afc
