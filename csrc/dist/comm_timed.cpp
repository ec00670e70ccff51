// A Comm that times the one it wraps: every collective adds its wall time (waiting for the
// slower ranks included) to a counter that afc_comm_seconds() reports. It is the front
// through which every caller but the overlapped gradient all-reduce reaches the
// communicator, so it also refuses collectives while that all-reduce runs.
#include <chrono>

#include "core/error.h"
#include "dist/comm.h"

namespace afc {

namespace {

class TimedComm final : public Comm {
 public:
  TimedComm(std::unique_ptr<Comm> inner, std::atomic<int64_t> *nanoseconds, const std::atomic<bool> *reducing)
      : in_(std::move(inner)), ns_(nanoseconds), reducing_(reducing) {}
  int rank() const override { return in_->rank(); }
  int world_size() const override { return in_->world_size(); }
  void all_reduce(float *data, int64_t count, ReduceOp op) override {
    timed([&] { in_->all_reduce(data, count, op); });
  }
  void all_gather(const float *in, int64_t count, float *out) override {
    timed([&] { in_->all_gather(in, count, out); });
  }
  void all_gather(const int64_t *in, int64_t count, int64_t *out) override {
    timed([&] { in_->all_gather(in, count, out); });
  }
  void all_gather_v(const float *in, const int64_t *counts, float *out) override {
    timed([&] { in_->all_gather_v(in, counts, out); });
  }
  void broadcast(float *data, int64_t count, int root) override {
    timed([&] { in_->broadcast(data, count, root); });
  }
  void barrier() override {
    timed([&] { in_->barrier(); });
  }
  void all_reduce(int64_t *data, int64_t count, ReduceOp op) override {
    timed([&] { in_->all_reduce(data, count, op); });
  }
  void all_gather_v(const int64_t *in, const int64_t *counts, int64_t *out) override {
    timed([&] { in_->all_gather_v(in, counts, out); });
  }
  void broadcast(int64_t *data, int64_t count, int root) override {
    timed([&] { in_->broadcast(data, count, root); });
  }

 private:
  template <class F>
  void timed(F &&f) {
    // Gloo runs one collective at a time on a context: a second one would corrupt both.
    AFC_CHECK(!*reducing_, AFC_ERR_STATE,
              "a gradient all-reduce is running on this communicator with a backward pass: wait for "
              "the backward pass to finish first");
    const auto start = std::chrono::steady_clock::now();
    struct Add {  // also on failure: a timeout is time spent waiting
      std::atomic<int64_t> *ns;
      std::chrono::steady_clock::time_point start;
      ~Add() { *ns += (std::chrono::steady_clock::now() - start) / std::chrono::nanoseconds(1); }
    } add{ns_, start};
    f();
  }
  std::unique_ptr<Comm> in_;
  std::atomic<int64_t> *ns_;
  const std::atomic<bool> *reducing_;
};

}  // namespace

std::unique_ptr<Comm> make_timed_comm(std::unique_ptr<Comm> inner, std::atomic<int64_t> *nanoseconds,
                                      const std::atomic<bool> *reducing) {
  return std::make_unique<TimedComm>(std::move(inner), nanoseconds, reducing);
}

}  // namespace afc
