// Margin known values, Partial FC gradients against finite differences, the sampling rule,
// optimizer arithmetic and gradient accumulation (case C29).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <set>
#include <vector>

#include "arcface.h"

namespace {

struct Ctx {
  afc_context_t *ctx = nullptr;
  Ctx() { EXPECT_EQ(afc_context_create(AFC_BACKEND_CPU, 1, &ctx), AFC_OK); }
  ~Ctx() { afc_context_destroy(ctx); }
};

// Target logit and ∂logit/∂cos for one row [c, 0.1] with label 0.
void target(float s, float m1, float m2, float m3, int st, float c, float *logit, float *deriv) {
  afc_margin_t *m = nullptr;
  ASSERT_EQ(afc_margin_create(s, m1, m2, m3, 0.0f, st, &m), AFC_OK);
  float cos[2] = {c, 0.1f}, z[2], up[2] = {1.0f, 0.0f}, dc[2];
  int64_t lab = 0;
  ASSERT_EQ(afc_margin_forward(m, cos, &lab, 1, 2, z), AFC_OK);
  ASSERT_EQ(afc_margin_backward(m, cos, &lab, 1, 2, up, dc), AFC_OK);
  EXPECT_FLOAT_EQ(z[1], s * 0.1f);
  *logit = z[0];
  *deriv = dc[0];
  afc_margin_destroy(m);
}

TEST(Margin, KnownValues) {
  float z, d;
  target(64, 1.0f, 0.5f, 0.0f, 0, 0.5f, &z, &d);
  EXPECT_NEAR(z, 1.5102f, 1e-3f);
  EXPECT_NEAR(d, 73.880f, 1e-2f);
  target(64, 1.0f, 0.5f, 0.0f, 1, 0.5f, &z, &d);
  EXPECT_NEAR(z, 1.5102f, 1e-3f);
  EXPECT_FLOAT_EQ(d, 64.0f);
  target(64, 1.0f, 0.3f, 0.2f, 0, 0.5f, &z, &d);
  EXPECT_NEAR(z / 64, 0.0217f, 1e-4f);
  target(64, 1.35f, 0.0f, 0.0f, 0, 0.5f, &z, &d);
  EXPECT_NEAR(z / 64, 0.1564f, 1e-4f);
  target(64, 1.0f, 0.0f, 0.4f, 0, 0.5f, &z, &d);
  EXPECT_NEAR(z / 64, 0.1f, 1e-6f);
  EXPECT_NEAR(d, 64.0f, 1e-4f);
}

TEST(Margin, FallbackPastPi) {
  // θ + 0.5 > π: ArcFace uses c − m·sin m (arcface_torch), derivative s.
  float z, d;
  target(64, 1.0f, 0.5f, 0.0f, 0, -0.95f, &z, &d);
  EXPECT_NEAR(z / 64, -0.95 - 0.5 * std::sin(0.5), 1e-5);
  EXPECT_NEAR(d, 64.0f, 1e-4f);
  // m1 = 1.35: continuous extension past θ* = π/1.35.
  const double limit = M_PI / 1.35;
  target(64, 1.35f, 0.0f, 0.0f, 0, -0.9f, &z, &d);
  EXPECT_NEAR(z / 64, -0.9 - std::cos(limit) - 1.0, 1e-5);
  float zl, dl;
  target(64, 1.35f, 0.0f, 0.0f, 0, (float)std::cos(limit) + 1e-4f, &zl, &dl);
  EXPECT_NEAR(zl / 64, -1.0, 1e-3);  // continuous at θ*
}

TEST(Margin, FiniteAtTheEnds) {
  for (float c : {1.0f, -1.0f, 1.0000001f, -1.0000001f, 0.9999999f}) {
    for (int st : {0, 1}) {
      float z, d;
      target(64, 1.0f, 0.5f, 0.0f, st, c, &z, &d);
      EXPECT_TRUE(std::isfinite(z) && std::isfinite(d)) << c;
      target(64, 1.35f, 0.2f, 0.1f, st, c, &z, &d);
      EXPECT_TRUE(std::isfinite(z) && std::isfinite(d)) << c;
    }
  }
}

TEST(Margin, InterclassFiltering) {
  afc_margin_t *m = nullptr;
  ASSERT_EQ(afc_margin_create(10, 1, 0, 0.4f, 0.3f, 0, &m), AFC_OK);
  float cos[4] = {0.9f, 0.5f, 0.2f, 0.31f}, z[4], up[4] = {1, 1, 1, 1}, dc[4];
  int64_t lab = 0;
  ASSERT_EQ(afc_margin_forward(m, cos, &lab, 1, 4, z), AFC_OK);
  ASSERT_EQ(afc_margin_backward(m, cos, &lab, 1, 4, up, dc), AFC_OK);
  EXPECT_NEAR(z[0], 5.0f, 1e-5f);  // the target is never filtered
  EXPECT_EQ(z[1], 0.0f);
  EXPECT_NEAR(z[2], 2.0f, 1e-6f);
  EXPECT_EQ(z[3], 0.0f);
  EXPECT_EQ(dc[1], 0.0f);
  EXPECT_EQ(dc[3], 0.0f);
  EXPECT_NEAR(dc[2], 10.0f, 1e-6f);
  afc_margin_destroy(m);
}

TEST(Margin, RejectsBadValues) {
  afc_margin_t *m = nullptr;
  EXPECT_EQ(afc_margin_create(0, 1, 0.5f, 0, 0, 0, &m), AFC_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(afc_margin_create(64, 1, 4.0f, 0, 0, 0, &m), AFC_ERR_INVALID_ARGUMENT);
  EXPECT_NE(afc_last_error(), nullptr);
  EXPECT_EQ(m, nullptr);
}

struct Pfc {
  Ctx c;
  afc_margin_t *margin = nullptr;
  afc_pfc_t *pfc = nullptr;
  Pfc(int64_t classes, int32_t dim, float rate, int64_t batch, float m2 = 0.5f, float m3 = 0.0f,
      float s = 64.0f) {
    EXPECT_EQ(afc_margin_create(s, 1.0f, m2, m3, 0.0f, 0, &margin), AFC_OK);
    EXPECT_EQ(afc_pfc_create(c.ctx, nullptr, margin, classes, dim, rate, batch, 42, &pfc), AFC_OK);
  }
  ~Pfc() {
    afc_pfc_destroy(pfc);
    afc_margin_destroy(margin);
  }
  float loss(const std::vector<float> &e, const std::vector<int64_t> &l, std::vector<float> *de) {
    float v = 0;
    std::vector<float> tmp(e.size());
    EXPECT_EQ(afc_pfc_forward_backward(pfc, e.data(), l.data(), (int64_t)l.size(), 0, &v,
                                       de ? de->data() : tmp.data()), AFC_OK);
    return v;
  }
};

TEST(PartialFC, GradientsMatchFiniteDifferences) {
  const int64_t C = 7, B = 5;
  const int32_t D = 6;
  Pfc p(C, D, 1.0f, B, 0.5f, 0.0f, 8.0f);  // s = 8 keeps the loss smooth enough for FD in float
  std::mt19937 gen(3);
  std::normal_distribution<float> nd(0, 1);
  std::vector<float> e(B * D), w(C * D);
  for (auto &x : e) x = nd(gen);
  for (auto &x : w) x = nd(gen);
  ASSERT_EQ(afc_pfc_weight_write(p.pfc, 0, C, w.data(), C * D), AFC_OK);
  std::vector<int64_t> lab = {0, 3, 3, 6, 1};
  std::vector<float> de(B * D), dw(C * D);
  p.loss(e, lab, &de);
  ASSERT_EQ(afc_pfc_grad_read(p.pfc, 0, C, dw.data(), C * D), AFC_OK);
  const float h = 1e-2f;
  for (int64_t k = 0; k < B * D; k++) {
    auto ep = e, em = e;
    ep[k] += h;
    em[k] -= h;
    const double fd = (p.loss(ep, lab, nullptr) - p.loss(em, lab, nullptr)) / (2 * h);
    EXPECT_NEAR(de[k], fd, 2e-3 + 2e-2 * std::fabs(fd)) << "embedding element " << k;
  }
  for (int64_t k = 0; k < C * D; k++) {
    auto wp = w, wm = w;
    wp[k] += h;
    wm[k] -= h;
    ASSERT_EQ(afc_pfc_weight_write(p.pfc, 0, C, wp.data(), C * D), AFC_OK);
    const double lp = p.loss(e, lab, nullptr);
    ASSERT_EQ(afc_pfc_weight_write(p.pfc, 0, C, wm.data(), C * D), AFC_OK);
    const double lm = p.loss(e, lab, nullptr);
    EXPECT_NEAR(dw[k], (lp - lm) / (2 * h), 2e-3 + 2e-2 * std::fabs((lp - lm) / (2 * h)))
        << "weight element " << k;
  }
}

TEST(PartialFC, SamplingKeepsPositivesAndRemapsLabels) {
  const int64_t C = 100, B = 8;
  const int32_t D = 4;
  Pfc p(C, D, 0.1f, B);  // num_sample = 10
  std::vector<float> e(B * D, 0.5f);
  std::vector<int64_t> lab = {5, 17, 5, 99, 0, 42, 17, 63};
  std::vector<float> de(B * D);
  std::set<std::vector<int64_t>> seen;
  for (int step = 0; step < 5; step++) {
    p.loss(e, lab, &de);
    int64_t n = 0;
    ASSERT_EQ(afc_pfc_sample_read(p.pfc, nullptr, 0, &n), AFC_OK);
    ASSERT_EQ(n, 10);
    std::vector<int64_t> idx(n);
    ASSERT_EQ(afc_pfc_sample_read(p.pfc, idx.data(), n, &n), AFC_OK);
    EXPECT_TRUE(std::is_sorted(idx.begin(), idx.end()));
    EXPECT_EQ(std::set<int64_t>(idx.begin(), idx.end()).size(), (size_t)n);
    for (int64_t l : lab) EXPECT_TRUE(std::binary_search(idx.begin(), idx.end(), l)) << l;
    seen.insert(idx);
    // Unsampled rows get zero gradient; sampled negatives usually do not.
    std::vector<float> g(C * D);
    ASSERT_EQ(afc_pfc_grad_read(p.pfc, 0, C, g.data(), C * D), AFC_OK);
    for (int64_t c = 0; c < C; c++) {
      const bool used = std::binary_search(idx.begin(), idx.end(), c);
      float mx = 0;
      for (int k = 0; k < D; k++) mx = std::max(mx, std::fabs(g[c * D + k]));
      if (!used) {
        EXPECT_EQ(mx, 0.0f) << c;
      }
    }
  }
  EXPECT_GT(seen.size(), 1u);  // negatives change from step to step
}

TEST(PartialFC, SamplingWithMorePositivesThanSamples) {
  Pfc p(20, 4, 0.1f, 6);  // num_sample = 2 < 5 positives: all positives, nothing else
  std::vector<float> e(24, 0.3f), de(24);
  std::vector<int64_t> lab = {1, 2, 3, 4, 5, 5};
  p.loss(e, lab, &de);
  int64_t n = 0;
  std::vector<int64_t> idx(20);
  ASSERT_EQ(afc_pfc_sample_read(p.pfc, idx.data(), 20, &n), AFC_OK);
  ASSERT_EQ(n, 5);
  EXPECT_EQ(std::vector<int64_t>(idx.begin(), idx.begin() + 5), (std::vector<int64_t>{1, 2, 3, 4, 5}));
  Pfc q(10, 4, 0.05f, 6);  // num_sample = 0: only positives
  q.loss(e, lab, &de);
  ASSERT_EQ(afc_pfc_sample_read(q.pfc, idx.data(), 20, &n), AFC_OK);
  EXPECT_EQ(n, 5);
}

TEST(PartialFC, SampledTargetMatchesFullTarget) {
  // With every other centre far away the loss comes from the positives: sampled and full
  // computations agree on the positive rows' gradients' direction and on W_sampled[new]==W[old].
  Pfc p(50, 4, 0.2f, 3);
  std::vector<float> e = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0}, de(12);
  std::vector<int64_t> lab = {7, 30, 49};
  p.loss(e, lab, &de);
  int64_t n = 0;
  std::vector<int64_t> idx(50);
  ASSERT_EQ(afc_pfc_sample_read(p.pfc, idx.data(), 50, &n), AFC_OK);
  EXPECT_EQ(n, 10);
  for (int64_t l : lab) {
    const auto pos = std::lower_bound(idx.begin(), idx.begin() + n, l) - idx.begin();
    EXPECT_EQ(idx[pos], l);  // the remapped label points at the same centre
  }
}

TEST(PartialFC, RejectsBadInput) {
  Pfc p(10, 4, 1.0f, 2);
  std::vector<float> e(8, 1.0f), de(8);
  float loss;
  std::vector<int64_t> bad = {3, 10};
  EXPECT_EQ(afc_pfc_forward_backward(p.pfc, e.data(), bad.data(), 2, 0, &loss, de.data()),
            AFC_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(afc_last_error()).find("label 10"), std::string::npos);
  std::vector<int64_t> ok = {1, 2, 3};
  EXPECT_EQ(afc_pfc_forward_backward(p.pfc, e.data(), ok.data(), 3, 0, &loss, de.data()), AFC_ERR_SHAPE);
}

TEST(PartialFC, CosineOfOneIsFinite) {
  Pfc p(3, 2, 1.0f, 2);
  std::vector<float> w = {1, 0, 0, 1, -1, 0};
  ASSERT_EQ(afc_pfc_weight_write(p.pfc, 0, 3, w.data(), 6), AFC_OK);
  std::vector<float> e = {2, 0, -3, 0}, de(4);  // cos exactly +1 and −1 with the targets
  std::vector<int64_t> lab = {0, 0};
  const float l = p.loss(e, lab, &de);
  EXPECT_TRUE(std::isfinite(l));
  std::vector<float> g(6);
  ASSERT_EQ(afc_pfc_grad_read(p.pfc, 0, 3, g.data(), 6), AFC_OK);
  for (float v : de) EXPECT_TRUE(std::isfinite(v));
  for (float v : g) EXPECT_TRUE(std::isfinite(v));
}

TEST(PartialFC, InitIsDeterministicAndSmall) {
  Pfc a(5, 3, 1.0f, 1), b(5, 3, 1.0f, 1);
  std::vector<float> wa(15), wb(15);
  ASSERT_EQ(afc_pfc_weight_read(a.pfc, 0, 5, wa.data(), 15), AFC_OK);
  ASSERT_EQ(afc_pfc_weight_read(b.pfc, 0, 5, wb.data(), 15), AFC_OK);
  EXPECT_EQ(wa, wb);
  double ss = 0;
  for (float v : wa) ss += v * v;
  EXPECT_GT(ss, 0.0);
  EXPECT_LT(std::sqrt(ss / 15), 0.03);  // N(0, 0.01)
}

TEST(Optimizer, AccumulationAverages_C29) {
  // w = 0, loss ½(w·x − y)², micro-batches A (y = −1, −1) and B (y = −3, −3), k = 2, lr 0.1.
  afc_optim_t *opt = nullptr;
  ASSERT_EQ(afc_optim_create(AFC_OPTIM_SGD, 0.0f, 0, 0, 0, 0.0f, &opt), AFC_OK);
  int64_t slot;
  ASSERT_EQ(afc_optim_add(opt, 1, &slot), AFC_OK);
  float w = 0.0f, grad = 0.0f;
  double loss_sum = 0.0;
  for (float y : {-1.0f, -3.0f}) {
    float g = 0, l = 0;  // mean over the micro-batch's two samples with x = 1
    for (int i = 0; i < 2; i++) {
      g += (w - y) / 2;
      l += 0.5f * (w - y) * (w - y) / 2;
    }
    grad += g;  // micro-gradients 1 and 3 summed ...
    loss_sum += l;
  }
  ASSERT_EQ(afc_optim_step(opt, slot, &w, &grad, 1, 0.1f, 0.5f), AFC_OK);  // ... and averaged
  EXPECT_FLOAT_EQ(w, -0.2f);
  EXPECT_DOUBLE_EQ(loss_sum / 2, 2.5);
  afc_optim_destroy(opt);
}

TEST(Optimizer, ClipCoefficient) {
  const float g[3] = {3, 4, 0};
  double ss;
  ASSERT_EQ(afc_optim_sum_squares(g, 3, &ss), AFC_OK);
  EXPECT_DOUBLE_EQ(ss, 25.0);
  float coef;
  ASSERT_EQ(afc_optim_clip_coef(ss, 1.0f, 5.0f, &coef), AFC_OK);
  EXPECT_NEAR(coef, 5.0 / (5.0 + 1e-6), 1e-7);
  ASSERT_EQ(afc_optim_clip_coef(ss, 2.0f, 5.0f, &coef), AFC_OK);  // norm 10 after scaling
  EXPECT_NEAR(coef, 0.5f, 1e-6);
  ASSERT_EQ(afc_optim_clip_coef(ss, 0.1f, 5.0f, &coef), AFC_OK);
  EXPECT_EQ(coef, 1.0f);
}

TEST(Optimizer, PfcStepKeepsUnsampledRowsMovingByDecayAndMomentum) {
  Pfc p(40, 4, 0.1f, 2);
  afc_optim_t *opt = nullptr;
  ASSERT_EQ(afc_optim_create(AFC_OPTIM_SGD, 0.9f, 0, 0, 0, 5e-4f, &opt), AFC_OK);
  std::vector<float> w0(160), w1(160), e = {1, 2, 3, 4, -1, 0, 1, 0}, de(8);
  std::vector<int64_t> lab = {3, 9};
  ASSERT_EQ(afc_pfc_weight_read(p.pfc, 0, 40, w0.data(), 160), AFC_OK);
  p.loss(e, lab, &de);
  ASSERT_EQ(afc_pfc_step(p.pfc, opt, 0.1f, 1.0f), AFC_OK);
  ASSERT_EQ(afc_pfc_weight_read(p.pfc, 0, 40, w1.data(), 160), AFC_OK);
  std::vector<int64_t> idx(40);
  int64_t n;
  ASSERT_EQ(afc_pfc_sample_read(p.pfc, idx.data(), 40, &n), AFC_OK);
  for (int64_t c = 0; c < 40; c++) {
    if (std::binary_search(idx.begin(), idx.begin() + n, c)) continue;
    for (int k = 0; k < 4; k++)
      EXPECT_FLOAT_EQ(w1[c * 4 + k], w0[c * 4 + k] - 0.1f * (5e-4f * w0[c * 4 + k]));
  }
  std::vector<float> mom(160);
  ASSERT_EQ(afc_pfc_state_read(p.pfc, 0, 0, 40, mom.data(), 160), AFC_OK);
  EXPECT_FLOAT_EQ(mom[3 * 4], (w0[12] - w1[12]) / 0.1f);
  uint64_t rng;
  int64_t steps;
  ASSERT_EQ(afc_pfc_counters_read(p.pfc, &rng, &steps), AFC_OK);
  EXPECT_EQ(steps, 1);
  afc_optim_destroy(opt);
}

}  // namespace
