#include "dist/grad_reduce.h"

#include <algorithm>

#include "core/error.h"

namespace afc {

namespace {

void reduce_bucket(Comm &comm, float *grads, int64_t count, int64_t bucket, int64_t index, float scale) {
  float *data = grads + index * bucket;
  const int64_t n = std::min(bucket, count - index * bucket);
  comm.all_reduce(data, n, ReduceOp::Sum);
  if (scale != 1.0f)
    for (int64_t i = 0; i < n; i++) data[i] *= scale;
}

int64_t bucket_count(int64_t count, int64_t bucket) { return (count + bucket - 1) / bucket; }

// Ranks that cut their gradients differently would sum unrelated values, or wait for each
// other until the timeout: one small all-reduce first checks that they all cut the same.
void check_same_buckets(Comm &comm, int64_t count, int64_t bucket) {
  int64_t v[4] = {count, bucket, -count, -bucket};
  comm.all_reduce(v, 4, ReduceOp::Max);
  AFC_CHECK(v[0] == -v[2] && v[1] == -v[3], AFC_ERR_INVALID_ARGUMENT,
            "the ranks' gradients differ: this rank sums %lld values in buckets of %lld, the ranks hold %lld to "
            "%lld values in buckets of %lld to %lld (every rank must train the same network with the same "
            "bucket size)",
            (long long)count, (long long)bucket, (long long)-v[2], (long long)v[0], (long long)-v[3],
            (long long)v[1]);
}

}  // namespace

void all_reduce_grads(Comm &comm, float *grads, int64_t count, int64_t bucket_elems, float scale) {
  if (bucket_elems <= 0) bucket_elems = kDefaultGradBucket;
  check_same_buckets(comm, count, bucket_elems);
  for (int64_t i = bucket_count(count, bucket_elems); i-- > 0;)
    reduce_bucket(comm, grads, count, bucket_elems, i, scale);
}

OverlappedGradReduce::OverlappedGradReduce(Comm &comm, float *grads, int64_t count, int64_t bucket_elems,
                                           float scale)
    : comm_(comm),
      grads_(grads),
      count_(count),
      bucket_(bucket_elems > 0 ? bucket_elems : kDefaultGradBucket),
      scale_(scale),
      final_from_(count) {
  check_same_buckets(comm, count_, bucket_);
  thread_ = std::thread([this] { run(); });
}

OverlappedGradReduce::~OverlappedGradReduce() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_one();
  thread_.join();
}

void OverlappedGradReduce::done_from(int64_t offset) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (offset >= final_from_) return;
    final_from_ = offset;
  }
  cv_.notify_one();
}

void OverlappedGradReduce::finish() {
  done_from(0);
  thread_.join();
  if (failure_) std::rethrow_exception(failure_);
}

void OverlappedGradReduce::run() {
  try {
    for (int64_t i = bucket_count(count_, bucket_); i-- > 0;) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || final_from_ <= i * bucket_; });
        if (stop_) return;
      }
      reduce_bucket(comm_, grads_, count_, bucket_, i, scale_);
    }
  } catch (...) {
    failure_ = std::current_exception();
  }
}

}  // namespace afc
