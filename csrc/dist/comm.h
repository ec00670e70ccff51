// The internal collectives interface. Gloo implements it for the CPU (comm_gloo.cpp), NCCL
// will for the GPU; a single process uses the trivial local implementation. Partial FC and
// the data-parallel gradient all-reduce only ever talk to this interface.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

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
  // 64-bit integer variants (counters, label sets). Not pure, so that existing
  // implementations keep compiling; the default refuses with AFC_ERR_UNSUPPORTED.
  virtual void all_reduce(int64_t *data, int64_t count, ReduceOp op);
  virtual void all_gather_v(const int64_t *in, const int64_t *counts, int64_t *out);
  virtual void broadcast(int64_t *data, int64_t count, int root);
};

// Joins a multi-process world through the store at `store` ("redis://host:port", or a
// directory, optionally "file://" + path), under the namespace `run_id`. `address` is the
// host name, IP or network interface this rank listens on (NULL or "" = 127.0.0.1). Fails
// with AFC_ERR_TIMEOUT, naming the missing ranks, when the world is not complete within
// `timeout_ms`; the same timeout bounds every later collective.
std::unique_ptr<Comm> make_gloo_comm(const char *store, const char *run_id, int rank, int world_size,
                                     int64_t timeout_ms, const char *address);

// The world of one process: every collective is a copy (or nothing).
std::unique_ptr<Comm> make_local_comm();

// `inner`, with the wall time of every collective added to *nanoseconds; while *reducing is
// set, every collective fails with AFC_ERR_STATE.
std::unique_ptr<Comm> make_timed_comm(std::unique_ptr<Comm> inner, std::atomic<int64_t> *nanoseconds,
                                      const std::atomic<bool> *reducing);

}  // namespace afc

// The public opaque handle wraps one Comm.
struct afc_comm {
  std::unique_ptr<afc::Comm> impl;
  // Detail of the last failed call on this handle: collectives run on FFI worker threads,
  // where the thread-local afc_last_error() is out of the caller's reach.
  std::string last_error;
  std::atomic<int64_t> nanoseconds{0};  // callers' time in collectives (impl is timed)
  // impl without the timing: the gradient all-reduce overlapped with the backward pass runs
  // on it and counts only the time the pass waits for it. `reducing` is set meanwhile.
  afc::Comm *untimed = nullptr;
  std::atomic<bool> reducing{false};
};
