// Data parallelism: the parameter gradients, one flat buffer, summed over the ranks in
// fixed buckets [0, b), [b, 2b), … Bucket boundaries depend only on the buffer's length and
// the bucket size, so every rank cuts the same buckets and a bucket's sum is the same
// whether it is reduced after the backward pass or during it.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>

#include "dist/comm.h"

namespace afc {

// 4 Mi values (16 MiB) when a caller passes 0.
constexpr int64_t kDefaultGradBucket = int64_t(1) << 22;

// Sums `count` values over the ranks of `comm`, in place, bucket by bucket, and multiplies
// the sums by `scale` (1/W gives the average). Fails on every rank, naming the values, when
// the ranks' counts or bucket sizes differ (as does the overlapped form below).
void all_reduce_grads(Comm &comm, float *grads, int64_t count, int64_t bucket_elems, float scale);

// The same sums, on a thread of their own, overlapped with a backward pass. The pass
// finishes the gradients from the end of the buffer towards its start and reports its
// progress with done_from(); each bucket is reduced as soon as it lies entirely in the
// finished part, the last bucket first.
class OverlappedGradReduce {
 public:
  OverlappedGradReduce(Comm &comm, float *grads, int64_t count, int64_t bucket_elems, float scale);
  // Without finish() (the backward pass failed): stops after the bucket in flight.
  ~OverlappedGradReduce();
  // Every gradient at index `offset` or above is final.
  void done_from(int64_t offset);
  // Marks everything final and waits for the last bucket; rethrows the thread's failure.
  void finish();

 private:
  void run();
  Comm &comm_;
  float *grads_;
  int64_t count_, bucket_;
  float scale_;
  std::mutex mu_;
  std::condition_variable cv_;
  int64_t final_from_;  // guarded by mu_
  bool stop_ = false;   // guarded by mu_
  std::exception_ptr failure_;
  std::thread thread_;
};

}  // namespace afc
