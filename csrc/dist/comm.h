// The internal collectives interface. Gloo implements it for the CPU (comm_gloo.cpp), NCCL
// will for the GPU; a single process uses the trivial local implementation. Partial FC and
// the data-parallel gradient all-reduce only ever talk to this interface.
#pragma once

#include <cstdint>
#include <memory>

namespace afc {

enum class ReduceOp { Sum, Max };

class Comm {
 public:
  virtual ~Comm() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  // In place over `count` floats.
  virtual void all_reduce(float *data, int64_t count, ReduceOp op) = 0;
  // Every rank contributes `count` values; `out` holds world_size·count, rank-major.
  virtual void all_gather(const float *in, int64_t count, float *out) = 0;
  virtual void all_gather(const int64_t *in, int64_t count, int64_t *out) = 0;
  // Rank r contributes counts[r] values; `out` holds their concatenation in rank order.
  virtual void all_gather_v(const float *in, const int64_t *counts, float *out) = 0;
  virtual void broadcast(float *data, int64_t count, int root) = 0;
  virtual void barrier() = 0;
};

// The world of one process: every collective is a copy (or nothing).
std::unique_ptr<Comm> make_local_comm();

}  // namespace afc

// The public opaque handle wraps one Comm.
struct afc_comm {
  std::unique_ptr<afc::Comm> impl;
};
