// Partial FC across ranks through the afc::Comm interface only: W threads joined by an
// in-process communicator must give the single-process loss, gradients and class rows.
// Also: a communicator busy with a backward pass's gradient all-reduce refuses other work.
#include <gtest/gtest.h>

#include <cmath>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "arcface.h"
#include "dist/comm.h"

namespace {

// Shared state of W in-process ranks: a generation barrier and one slot per rank.
struct World {
  int size;
  std::mutex mu;
  std::condition_variable cv;
  int arrived = 0;
  long generation = 0;
  std::vector<std::vector<char>> slots;
  explicit World(int w) : size(w), slots(w) {}
  void barrier() {
    std::unique_lock<std::mutex> lock(mu);
    const long gen = generation;
    if (++arrived == size) {
      arrived = 0;
      generation++;
      cv.notify_all();
    } else {
      cv.wait(lock, [&] { return generation != gen; });
    }
  }
};

class ThreadComm final : public afc::Comm {
 public:
  ThreadComm(World &w, int rank) : w_(w), rank_(rank) {}
  int rank() const override { return rank_; }
  int world_size() const override { return w_.size; }
  void all_reduce(float *data, int64_t count, afc::ReduceOp op) override {
    publish(data, count * sizeof(float));
    std::vector<float> out(count);
    for (int64_t i = 0; i < count; i++) {
      float acc = slot<float>(0)[i];
      for (int r = 1; r < w_.size; r++)
        acc = op == afc::ReduceOp::Sum ? acc + slot<float>(r)[i] : std::max(acc, slot<float>(r)[i]);
      out[i] = acc;
    }
    w_.barrier();
    std::memcpy(data, out.data(), count * sizeof(float));
  }
  void all_gather(const float *in, int64_t count, float *out) override { gather(in, count, out); }
  void all_gather(const int64_t *in, int64_t count, int64_t *out) override { gather(in, count, out); }
  void all_gather_v(const float *in, const int64_t *counts, float *out) override {
    publish(in, counts[rank_] * sizeof(float));
    for (int r = 0; r < w_.size; r++) {
      std::memcpy(out, slot<float>(r), counts[r] * sizeof(float));
      out += counts[r];
    }
    w_.barrier();
  }
  void broadcast(float *data, int64_t count, int root) override {
    publish(data, count * sizeof(float));
    std::vector<float> v(slot<float>(root), slot<float>(root) + count);
    w_.barrier();
    std::memcpy(data, v.data(), count * sizeof(float));
  }
  void barrier() override { w_.barrier(); }

 private:
  template <typename T>
  const T *slot(int r) { return reinterpret_cast<const T *>(w_.slots[r].data()); }
  void publish(const void *p, size_t bytes) {
    w_.slots[rank_].assign(static_cast<const char *>(p), static_cast<const char *>(p) + bytes);
    w_.barrier();
  }
  template <typename T>
  void gather(const T *in, int64_t count, T *out) {
    publish(in, count * sizeof(T));
    for (int r = 0; r < w_.size; r++) std::memcpy(out + r * count, slot<T>(r), count * sizeof(T));
    w_.barrier();
  }
  World &w_;
  int rank_;
};

struct Result {
  float loss = 0;
  std::vector<float> d_emb, grad, weight;
  int64_t start = 0, local = 0;
};

// One step of every rank on its slice of the global batch.
std::vector<Result> run(int W, int64_t classes, const std::vector<float> &emb,
                        const std::vector<int64_t> &lab, int32_t D) {
  const int64_t n = (int64_t)lab.size() / W;
  World world(W);
  std::vector<Result> res(W);
  std::vector<std::thread> threads;
  for (int r = 0; r < W; r++) {
    threads.emplace_back([&, r] {
      afc_context_t *ctx = nullptr;
      afc_margin_t *margin = nullptr;
      afc_pfc_t *pfc = nullptr;
      afc_optim_t *opt = nullptr;
      afc_comm comm;
      comm.impl = std::make_unique<ThreadComm>(world, r);
      ASSERT_EQ(afc_context_create(AFC_BACKEND_CPU, 1, &ctx), AFC_OK);
      ASSERT_EQ(afc_margin_create(16, 1, 0.5f, 0, 0, 0, &margin), AFC_OK);
      ASSERT_EQ(afc_pfc_create(ctx, &comm, margin, classes, D, 1.0f, n, 7, &pfc), AFC_OK);
      ASSERT_EQ(afc_optim_create(AFC_OPTIM_SGD, 0.9, 0, 0, 0, 5e-4, &opt), AFC_OK);
      Result &out = res[r];
      ASSERT_EQ(afc_pfc_shard(pfc, &out.start, &out.local), AFC_OK);
      out.d_emb.resize(n * D);
      ASSERT_EQ(afc_pfc_forward_backward(pfc, emb.data() + r * n * D, lab.data() + r * n, n, 0,
                                         &out.loss, out.d_emb.data()), AFC_OK);
      out.grad.resize(out.local * D);
      out.weight.resize(out.local * D);
      ASSERT_EQ(afc_pfc_grad_read(pfc, 0, out.local, out.grad.data(), out.local * D), AFC_OK);
      ASSERT_EQ(afc_pfc_step(pfc, opt, 0.1, 1.0f), AFC_OK);
      ASSERT_EQ(afc_pfc_weight_read(pfc, 0, out.local, out.weight.data(), out.local * D), AFC_OK);
      afc_optim_destroy(opt);
      afc_pfc_destroy(pfc);
      afc_margin_destroy(margin);
      afc_context_destroy(ctx);
    });
  }
  for (auto &t : threads) t.join();
  return res;
}

void compare(int W, int64_t classes, std::vector<int64_t> shard_sizes) {
  const int32_t D = 5;
  const int64_t B = 6;
  std::mt19937 gen(11);
  std::normal_distribution<float> nd(0, 1);
  std::vector<float> emb(B * D);
  for (auto &x : emb) x = nd(gen);
  std::vector<int64_t> lab(B);
  for (int64_t i = 0; i < B; i++) lab[i] = (i * 7 + 3) % classes;
  const Result one = run(1, classes, emb, lab, D)[0];
  const auto many = run(W, classes, emb, lab, D);
  const int64_t n = B / W;
  for (int r = 0; r < W; r++) {
    const Result &x = many[r];
    EXPECT_EQ(x.local, shard_sizes[r]) << "rank " << r;
    EXPECT_NEAR(x.loss, one.loss, 1e-6) << "rank " << r;
    for (int64_t k = 0; k < n * D; k++)  // each rank returns W × the true gradient
      EXPECT_NEAR(x.d_emb[k] / W, one.d_emb[r * n * D + k], 1e-6 + 1e-5 * std::fabs(one.d_emb[r * n * D + k]))
          << "rank " << r << " element " << k;
    for (int64_t k = 0; k < x.local * D; k++) {
      const float g = one.grad[x.start * D + k];
      EXPECT_NEAR(x.grad[k], g, 1e-6 + 1e-5 * std::fabs(g)) << "rank " << r;
      EXPECT_NEAR(x.weight[k], one.weight[x.start * D + k], 1e-5) << "rank " << r;
    }
  }
}

TEST(PartialFCDistributed, TenClassesOnThreeRanksMatchOneRank) { compare(3, 10, {4, 3, 3}); }

TEST(PartialFCDistributed, RankWithNoClassesStillWorks) { compare(3, 2, {1, 1, 0}); }

TEST(PartialFCDistributed, TwoRanksMatchOneRank) { compare(2, 7, {4, 3}); }

// While a backward pass sums its gradients on a communicator, any other collective on it
// (or a second such pass) is refused: Gloo would interleave the two transfers.
TEST(GradAllReduce, OtherCollectivesWaitForTheOverlappedOne) {
  afc_context_t *ctx = nullptr;
  afc_comm_t *comm = nullptr;
  afc_model_t *a = nullptr, *b = nullptr;
  ASSERT_EQ(afc_context_create(AFC_BACKEND_CPU, 1, &ctx), AFC_OK);
  ASSERT_EQ(afc_comm_create(nullptr, nullptr, 0, 1, 1000, nullptr, &comm), AFC_OK);
  ASSERT_EQ(afc_model_create(ctx, "r18", 512, 0.0f, 2, 0, &a), AFC_OK);
  ASSERT_EQ(afc_model_create(ctx, "mbf", 512, 0.0f, 2, 0, &b), AFC_OK);
  std::vector<float> input(2 * 3 * 112 * 112, 0.5f), emb(2 * 512), demb(2 * 512, 1e-3f);
  for (size_t i = 0; i < input.size(); i++) input[i] = std::sin(0.37f * i);
  ASSERT_EQ(afc_model_forward(a, input.data(), 2, 1, emb.data()), AFC_OK);
  ASSERT_EQ(afc_model_forward(b, input.data(), 2, 1, emb.data()), AFC_OK);
  afc_status status = AFC_ERR_INTERNAL;
  std::thread pass([&] { status = afc_model_backward_all_reduce(a, demb.data(), 2, nullptr, 0, comm, 0, 1.0f); });
  while (!comm->reducing) std::this_thread::yield();  // r18's backward takes far longer than this
  float x = 1;
  EXPECT_EQ(afc_comm_all_reduce(comm, AFC_DTYPE_F32, &x, 1, AFC_REDUCE_SUM), AFC_ERR_STATE);
  EXPECT_NE(std::string(afc_last_error()).find("wait for the backward pass to finish first"), std::string::npos)
      << afc_last_error();
  EXPECT_EQ(afc_model_backward_all_reduce(b, demb.data(), 2, nullptr, 0, comm, 0, 1.0f), AFC_ERR_STATE);
  pass.join();
  EXPECT_EQ(status, AFC_OK);
  EXPECT_EQ(afc_comm_all_reduce(comm, AFC_DTYPE_F32, &x, 1, AFC_REDUCE_SUM), AFC_OK);
  afc_model_destroy(a);
  afc_model_destroy(b);
  afc_comm_destroy(comm);
  afc_context_destroy(ctx);
}

}  // namespace
