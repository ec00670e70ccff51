// The CPU layers one by one: known values (cases C31 PReLU axes, C33 batch norm frozen and
// training) and finite-difference gradient checks of convolution (plain and depthwise),
// batch norm, PReLU, the fully connected layer, BatchNorm1d and a whole IBasicBlock.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "core/error.h"
#include "cpu/layers.h"

using namespace afc::cpu;
using tag = dnnl::memory::format_tag;

namespace {

struct Env {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream s{eng};
};

std::vector<float> randn(size_t n, unsigned seed, float scale = 1.0f) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto &x : v) x = d(g);
  return v;
}

double dot(const std::vector<float> &a, const std::vector<float> &b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); i++) s += (double)a[i] * b[i];
  return s;
}

// Central differences of L(p) = <f(p), r> at a few indices of p, with step h, against the
// analytic grad.
void expect_fd(std::vector<float> &p, const std::vector<float> &grad, const std::function<double()> &loss,
               const char *what, double tol = 2e-2, float h = 1e-2f) {
  for (size_t k = 0; k < 6; k++) {
    const size_t i = (k * 7919) % p.size();
    const float keep = p[i];
    p[i] = keep + h;
    const double up = loss();
    p[i] = keep - h;
    const double down = loss();
    p[i] = keep;
    const double fd = (up - down) / (2 * h);
    EXPECT_NEAR(grad[i], fd, tol * std::max(1.0, std::fabs(fd))) << what << " index " << i;
  }
}

struct Bn {
  Env &e;
  BatchNorm bn;
  std::vector<float> x, y, dx, dy, tmp, g, b, rm, rv, dg, db, sm, sv, dparam, scratch;
  Bn(Env &env, int64_t n, int64_t c, int64_t h, int64_t w, bool frozen) : e(env) {
    bn.init(e.eng, act_md(n, c, h, w, tag::nchw), 1e-5f, frozen);
    const size_t f = n * c * h * w;
    x.assign(f, 0), y.assign(f, 0), dx.assign(f, 0), dy.assign(f, 0), tmp.assign(f, 0);
    g.assign(c, 1), b.assign(c, 0), rm.assign(c, 0), rv.assign(c, 1), dg.assign(c, 0), db.assign(c, 0);
    sm.assign(c, 0), sv.assign(c, 0), dparam.assign(2 * c, 0), scratch.assign(bn.scratch_bytes() / 4 + 16, 0);
    ActBufs a{x.data(), y.data(), dx.data(), dy.data(), tmp.data()};
    bn.bind(e.eng, a, g.data(), b.data(), rm.data(), rv.data(), dg.data(), db.data(), sm.data(), sv.data(),
            dparam.data(), scratch.data());
  }
};

}  // namespace

TEST(BatchNorm, FrozenStatistics) {  // C33 (a)
  Env e;
  Bn t(e, 1, 1, 2, 2, true);
  t.x = {1, 2, 3, 4};
  t.g = {2}, t.rm = {2}, t.rv = {4};
  t.dy = {1, 0, 0, 0};
  t.bn.forward(e.s, true);
  t.bn.backward(e.s, false, true, false);
  e.s.wait();
  const float want_y[4] = {-1, 0, 1, 2};
  for (int i = 0; i < 4; i++) EXPECT_NEAR(t.y[i], want_y[i], 1e-5f);
  EXPECT_NEAR(t.dx[0], 0.99999875f, 1e-5f);
  for (int i = 1; i < 4; i++) EXPECT_NEAR(t.dx[i], 0.0f, 1e-6f);
  EXPECT_NEAR(t.dg[0], -0.49999938f, 1e-5f);
  EXPECT_NEAR(t.db[0], 1.0f, 1e-6f);
  EXPECT_FLOAT_EQ(t.rm[0], 2.0f);
  EXPECT_FLOAT_EQ(t.rv[0], 4.0f);
}

TEST(BatchNorm, TrainingModeAndRunningVariance) {  // C33 (b)
  Env e;
  Bn t(e, 1, 1, 2, 2, false);
  t.x = {1, 2, 3, 4};
  t.g = {2};
  t.dy = {1, 0, 0, 0};
  t.bn.forward(e.s, true, 0.1f);
  t.bn.backward(e.s, false, true, false);
  e.s.wait();
  const float want_dx[4] = {0.53666061f, -0.71553674f, -0.17888687f, 0.35776301f};
  for (int i = 0; i < 4; i++) EXPECT_NEAR(t.dx[i], want_dx[i], 1e-5f);
  EXPECT_NEAR(t.dg[0], -1.3416354f, 1e-5f);
  EXPECT_NEAR(t.db[0], 1.0f, 1e-6f);
  EXPECT_NEAR(t.rm[0], 0.25f, 1e-6f);
  EXPECT_NEAR(t.rv[0], 1.0666667f, 1e-5f);  // unbiased batch variance 1.6667, as PyTorch
}

TEST(BatchNorm, OneValuePerChannelIsAnError) {
  Env e;
  Bn t(e, 1, 2, 1, 1, false);
  try {
    t.bn.forward(e.s, true);
    FAIL() << "expected an error";
  } catch (const afc::Error &err) {
    EXPECT_EQ(err.status, AFC_ERR_SHAPE);
    EXPECT_NE(err.message.find("more than one value per channel"), std::string::npos);
  }
}

TEST(BatchNorm, FiniteDifferences) {
  Env e;
  Bn t(e, 2, 3, 4, 4, false);
  // Copy into the bound buffer: assigning a new vector would move another buffer in.
  const auto x0 = randn(t.x.size(), 1);
  std::copy(x0.begin(), x0.end(), t.x.begin());
  t.g = {0.5f, 1.5f, -1.0f}, t.b = {0.1f, -0.2f, 0.3f};
  const auto r = randn(t.x.size(), 2);
  auto loss = [&] {
    t.bn.forward(e.s, true);
    e.s.wait();
    return dot(t.y, r);
  };
  loss();
  t.dy = r;
  t.bn.backward(e.s, false, true, false);
  e.s.wait();
  const auto dx = t.dx, dg = t.dg, db = t.db;
  expect_fd(t.x, dx, loss, "bn dx");
  expect_fd(t.g, dg, loss, "bn dgamma");
  expect_fd(t.b, db, loss, "bn dbeta");
}

TEST(PReLU, SlopeFollowsTheChannelAxis) {  // C31
  Env e;
  PReLU p;
  p.init(act_md(1, 2, 2, 2, tag::nchw));
  std::vector<float> x = {-1, 2, -3, 4, -5, -6, 7, -8}, y(8), dx(8), dy(8, 1.0f), tmp(8), w = {0.1f, 0.5f},
                     dw(2);
  p.bind({x.data(), y.data(), dx.data(), dy.data(), tmp.data()}, w.data(), dw.data());
  p.forward();
  p.backward(false, true, false);
  const float want_y[8] = {-0.1f, 2, -0.3f, 4, -2.5f, -3, 7, -4};
  const float want_dx[8] = {0.1f, 1, 0.1f, 1, 0.5f, 0.5f, 1, 0.5f};
  for (int i = 0; i < 8; i++) {
    EXPECT_NEAR(y[i], want_y[i], 1e-6f) << i;
    EXPECT_NEAR(dx[i], want_dx[i], 1e-6f) << i;
  }
  EXPECT_NEAR(dw[0], -4.0f, 1e-5f);
  EXPECT_NEAR(dw[1], -19.0f, 1e-5f);
}

TEST(PReLU, FiniteDifferences) {
  Env e;
  PReLU p;
  p.init(act_md(2, 3, 3, 3, tag::nchw));
  const size_t f = 2 * 3 * 3 * 3;
  std::vector<float> x = randn(f, 3), y(f), dx(f), dy = randn(f, 4), tmp(f), w = {0.2f, 0.3f, -0.1f}, dw(3);
  for (auto &v : x) v += v > 0 ? 0.1f : -0.1f;  // keep away from the kink
  p.bind({x.data(), y.data(), dx.data(), dy.data(), tmp.data()}, w.data(), dw.data());
  const auto r = dy;
  auto loss = [&] {
    p.forward();
    return dot(y, r);
  };
  loss();
  p.backward(false, true, false);
  const auto gx = dx, gw = dw;
  expect_fd(w, gw, loss, "prelu dw");
  expect_fd(x, gx, loss, "prelu dx");
}

// Convolution of 2×cin×6×6 (stride 1 or 2, groups 1 or depthwise) against finite differences.
// A blocked `layout` with channels that fill whole blocks is a permutation of the same values,
// so the same loss and finite differences apply.
void conv_fd(int64_t cin, int64_t cout, int k, int stride, int pad, int groups, tag layout = tag::nchw,
             bool expect_direct = false) {
  Env e;
  const int64_t n = 2, h = 6, oh = (h + 2 * pad - k) / stride + 1;
  Conv c;
  c.init(e.eng, act_md(n, cin, h, h, layout), act_md(n, cout, oh, oh, layout), cin, cout, k, stride, pad, groups);
  EXPECT_EQ(c.direct, expect_direct);
  std::vector<float> x = randn(n * cin * h * h, 5), y(n * cout * oh * oh), dx(x.size()), dy = randn(y.size(), 6),
                     tmp(x.size()), w = randn(cout * (cin / groups) * k * k, 7, 0.3f), gw(w.size()),
                     wf(c.weights_bytes() / 4 + 16), wb(c.weights_bytes() / 4 + 16), gblk(c.dweights_bytes() / 4 + 16),
                     scratch(c.scratch_bytes() / 4 + 16);
  c.bind(e.eng, {x.data(), y.data(), dx.data(), dy.data(), tmp.data()}, w.data(), gw.data(), wf.data(), wb.data(),
         gblk.data(), scratch.data());
  const auto r = dy;
  auto loss = [&] {
    c.prepare(e.s);
    c.forward(e.s);
    e.s.wait();
    return dot(y, r);
  };
  loss();
  c.backward(e.s, false, true, false);
  e.s.wait();
  const auto gx = dx, gww = gw;
  expect_fd(x, gx, loss, "conv dx");
  expect_fd(w, gww, loss, "conv dw");
  // Accumulation adds to the existing gradient.
  c.backward(e.s, true, false, false);
  e.s.wait();
  for (size_t i = 0; i < gw.size(); i++) EXPECT_NEAR(gw[i], 2 * gww[i], 1e-4f * (1 + std::fabs(gww[i])));
}

TEST(Conv, FiniteDifferences3x3) { conv_fd(3, 4, 3, 1, 1, 1); }
TEST(Conv, FiniteDifferencesStride2) { conv_fd(4, 8, 3, 2, 1, 1); }
TEST(Conv, FiniteDifferences1x1) { conv_fd(4, 6, 1, 1, 0, 1); }
TEST(Conv, FiniteDifferencesDepthwise) { conv_fd(4, 4, 3, 1, 1, 4); }
// MobileFaceNet's 2-channels-per-group convolution on our own loops, both block sizes.
TEST(Conv, FiniteDifferencesGroupedBlocked16) { conv_fd(32, 32, 3, 1, 1, 16, tag::nChw16c, true); }
TEST(Conv, FiniteDifferencesGroupedBlocked8Stride2) { conv_fd(16, 16, 3, 2, 1, 4, tag::nChw8c, true); }

// The direct grouped convolution gives oneDNN's values (its reference code on plain nchw),
// for every element of the output and both gradients.
TEST(Conv, GroupedBlockedMatchesOneDnn) {
  Env e;
  for (const int stride : {1, 2}) {
    const int64_t n = 2, c = 32, h = 7, oh = (h + 2 - 3) / stride + 1, groups = 16;
    Conv ref, dir;
    const md px = act_md(n, c, h, h, tag::nchw), py = act_md(n, c, oh, oh, tag::nchw);
    const md bx = act_md(n, c, h, h, tag::nChw16c), by = act_md(n, c, oh, oh, tag::nChw16c);
    ref.init(e.eng, px, py, c, c, 3, stride, 1, groups);
    dir.init(e.eng, bx, by, c, c, 3, stride, 1, groups);
    ASSERT_FALSE(ref.direct);
    ASSERT_TRUE(dir.direct);
    const size_t fx = n * c * h * h, fy = n * c * oh * oh;
    std::vector<float> x = randn(fx, 21), dy = randn(fy, 22), w = randn(c * 2 * 9, 23, 0.3f);
    struct Run {
      std::vector<float> x, y, dx, dy, tmp, gw, wf, wb, gblk, scratch;
    };
    auto run = [&](Conv &cv, const md &mx, const md &my) {
      Run r{std::vector<float>(fx), std::vector<float>(fy), std::vector<float>(fx), std::vector<float>(fy),
            std::vector<float>(fx), std::vector<float>(w.size()), std::vector<float>(cv.weights_bytes() / 4 + 16),
            std::vector<float>(cv.weights_bytes() / 4 + 16), std::vector<float>(cv.dweights_bytes() / 4 + 16),
            std::vector<float>(cv.scratch_bytes() / 4 + 16)};
      dnnl::memory ux(px, e.eng, x.data()), udy(py, e.eng, dy.data()), mx_(mx, e.eng, r.x.data()),
          mdy(my, e.eng, r.dy.data());
      dnnl::reorder(ux, mx_).execute(e.s, ux, mx_);
      dnnl::reorder(udy, mdy).execute(e.s, udy, mdy);
      cv.bind(e.eng, {r.x.data(), r.y.data(), r.dx.data(), r.dy.data(), r.tmp.data()}, w.data(), r.gw.data(),
              r.wf.data(), r.wb.data(), r.gblk.data(), r.scratch.data());
      cv.prepare(e.s);
      cv.forward(e.s);
      cv.backward(e.s, false, true, false);
      // Back to plain nchw for the comparison.
      std::vector<float> y(fy), dx(fx);
      dnnl::memory my_(my, e.eng, r.y.data()), mdx(mx, e.eng, r.dx.data()), uy(py, e.eng, y.data()),
          udx(px, e.eng, dx.data());
      dnnl::reorder(my_, uy).execute(e.s, my_, uy);
      dnnl::reorder(mdx, udx).execute(e.s, mdx, udx);
      e.s.wait();
      r.y = y, r.dx = dx;
      return r;
    };
    const Run a = run(ref, px, py), b = run(dir, bx, by);
    for (size_t i = 0; i < fy; i++) ASSERT_NEAR(b.y[i], a.y[i], 1e-4f) << "y " << i << " stride " << stride;
    for (size_t i = 0; i < fx; i++) ASSERT_NEAR(b.dx[i], a.dx[i], 1e-4f) << "dx " << i << " stride " << stride;
    for (size_t i = 0; i < w.size(); i++) ASSERT_NEAR(b.gw[i], a.gw[i], 1e-3f) << "gw " << i << " stride " << stride;
  }
}

// PReLU on a blocked layout whose last block is half padding gives the plain layout's values.
TEST(PReLU, BlockedWithPaddedChannels) {
  Env e;
  const int64_t n = 2, c = 20, h = 3;
  const md plain = act_md(n, c, h, h, tag::nchw), blk = act_md(n, c, h, h, tag::nChw16c);
  const size_t fp = n * c * h * h, fb = blk.get_size() / 4;
  std::vector<float> x = randn(fp, 31), dy = randn(fp, 32), w = randn(c, 33, 0.3f);
  PReLU p;
  p.init(plain);
  std::vector<float> y(fp), dx(fp), tmp(fp), dw(c);
  p.bind({x.data(), y.data(), dx.data(), dy.data(), tmp.data()}, w.data(), dw.data());
  p.forward();
  p.backward(false, true, false);

  std::vector<float> bx(fb), bdy(fb), by(fb), bdx(fb), btmp(fb), bdw(c);
  dnnl::memory ux(plain, e.eng, x.data()), udy(plain, e.eng, dy.data()), mx(blk, e.eng, bx.data()),
      mdy(blk, e.eng, bdy.data());
  dnnl::reorder(ux, mx).execute(e.s, ux, mx);
  dnnl::reorder(udy, mdy).execute(e.s, udy, mdy);
  e.s.wait();
  PReLU q;
  q.init(blk);
  q.bind({bx.data(), by.data(), bdx.data(), bdy.data(), btmp.data()}, w.data(), bdw.data());
  q.forward();
  q.backward(false, true, false);
  std::vector<float> y2(fp), dx2(fp);
  dnnl::memory my(blk, e.eng, by.data()), mdx(blk, e.eng, bdx.data()), uy(plain, e.eng, y2.data()),
      udx(plain, e.eng, dx2.data());
  dnnl::reorder(my, uy).execute(e.s, my, uy);
  dnnl::reorder(mdx, udx).execute(e.s, mdx, udx);
  e.s.wait();
  for (size_t i = 0; i < fp; i++) {
    ASSERT_FLOAT_EQ(y2[i], y[i]) << i;
    ASSERT_FLOAT_EQ(dx2[i], dx[i]) << i;
  }
  for (int64_t i = 0; i < c; i++) EXPECT_NEAR(bdw[i], dw[i], 1e-4f) << i;
}

TEST(FullyConnected, FiniteDifferences) {
  const int64_t n = 3, in = 5, out = 4;
  std::vector<float> x = randn(n * in, 8), w = randn(out * in, 9), b = randn(out, 10), y(n * out),
                     r = randn(n * out, 11), dx(n * in), dw(out * in), db(out);
  auto loss = [&] {
    fc_forward(x.data(), w.data(), b.data(), y.data(), n, in, out);
    return dot(y, r);
  };
  fc_backward(x.data(), w.data(), r.data(), dx.data(), dw.data(), db.data(), n, in, out, false);
  expect_fd(x, dx, loss, "fc dx", 1e-3);
  expect_fd(w, dw, loss, "fc dw", 1e-3);
  expect_fd(b, db, loss, "fc db", 1e-3);
}

TEST(BatchNorm1d, FiniteDifferences) {
  const int64_t n = 4, c = 3;
  std::vector<float> x = randn(n * c, 12), y(n * c), g = {0.7f, 1.2f, -0.5f}, b = {0.1f, 0.0f, -0.3f},
                     rm(c, 0), rv(c, 1), mean(c), invstd(c), r = randn(n * c, 13), dx(n * c), dg(c), db(c);
  auto loss = [&] {
    bn1d_forward(x.data(), y.data(), g.data(), b.data(), rm.data(), rv.data(), mean.data(), invstd.data(), n, c,
                 1e-5f, true, 0.1f);
    return dot(y, r);
  };
  loss();
  bn1d_backward(x.data(), r.data(), g.data(), mean.data(), invstd.data(), dx.data(), dg.data(), db.data(), n, c,
                false);
  expect_fd(x, dx, loss, "bn1d dx");
  expect_fd(g, dg, loss, "bn1d dgamma");
  expect_fd(b, db, loss, "bn1d dbeta");
}

// A whole IBasicBlock with a downsample, wired as the model wires it, on the blocked
// layout: bn1 → conv3×3 → bn2 → PReLU → conv3×3 stride 2 → bn3, plus 1×1 stride-2 conv →
// BN on the shortcut, summed. The input feeds two layers, so its gradient is accumulated.
TEST(IBasicBlock, FiniteDifferences) {
  Env e;
  const tag t = act_tag();
  const int64_t n = 2, ci = 16, co = 32, h = 8, oh = 4;
  const dnnl::memory::desc in = act_md(n, ci, h, h, t), mid = act_md(n, co, h, h, t), out = act_md(n, co, oh, oh, t);
  auto floats = [](const dnnl::memory::desc &m) { return m.get_size() / 4; };
  // Activations (index: x, a1 bn1, a2 conv1, a3 bn2, a4 prelu, y conv2, y2 bn3, d1 ds conv, d2 ds bn)
  std::vector<std::vector<float>> act(9), grad(9);
  const dnnl::memory::desc mds[9] = {in, in, mid, mid, mid, out, out, out, out};
  for (int i = 0; i < 9; i++) act[i].assign(floats(mds[i]), 0), grad[i].assign(floats(mds[i]), 0);
  std::vector<float> tmp(floats(mid)), scratch(1 << 20);
  auto bufs = [&](int src, int dst) {
    return ActBufs{act[src].data(), act[dst].data(), grad[src].data(), grad[dst].data(), tmp.data()};
  };
  // Blocked random input: padded channels stay zero with 16 and 32 channels.
  const auto x0 = randn(act[0].size(), 11);
  std::copy(x0.begin(), x0.end(), act[0].begin());

  struct BnParams {
    std::vector<float> g, b, rm, rv, dg, db, sm, sv, dp;
  };
  auto bn_params = [](int64_t c, unsigned seed) {
    BnParams p;
    p.g = randn(c, seed, 0.3f);
    for (auto &v : p.g) v += 1.0f;
    p.b = randn(c, seed + 1, 0.1f);
    p.rm.assign(c, 0), p.rv.assign(c, 1), p.dg.assign(c, 0), p.db.assign(c, 0), p.sm.assign(c, 0), p.sv.assign(c, 0),
        p.dp.assign(2 * c, 0);
    return p;
  };
  BnParams pb1 = bn_params(ci, 20), pb2 = bn_params(co, 22), pb3 = bn_params(co, 24), pbd = bn_params(co, 26);
  BatchNorm bn1, bn2, bn3, bnd;
  auto bind_bn = [&](BatchNorm &b, const dnnl::memory::desc &m, BnParams &p, int src, int dst) {
    b.init(e.eng, m, 1e-5f);
    ASSERT_LE(b.scratch_bytes(), scratch.size() * 4);
    b.bind(e.eng, bufs(src, dst), p.g.data(), p.b.data(), p.rm.data(), p.rv.data(), p.dg.data(), p.db.data(),
           p.sm.data(), p.sv.data(), p.dp.data(), scratch.data());
  };
  bind_bn(bn1, in, pb1, 0, 1);
  bind_bn(bn2, mid, pb2, 2, 3);
  bind_bn(bn3, out, pb3, 5, 6);
  bind_bn(bnd, out, pbd, 7, 8);

  struct ConvParams {
    std::vector<float> w, gw, wf, wb, gblk;
  };
  Conv c1, c2, cd;
  ConvParams p1, p2, pd;
  auto bind_conv = [&](Conv &c, ConvParams &p, const dnnl::memory::desc &s, const dnnl::memory::desc &d, int64_t i,
                       int64_t o, int k, int stride, int pad, int src, int dst, unsigned seed) {
    c.init(e.eng, s, d, i, o, k, stride, pad, 1);
    ASSERT_LE(c.scratch_bytes(), scratch.size() * 4);
    p.w = randn(o * i * k * k, seed, 1.0f / std::sqrt((float)(i * k * k)));
    p.gw.assign(p.w.size(), 0), p.wf.assign(c.weights_bytes() / 4, 0), p.wb.assign(c.weights_bytes() / 4, 0);
    p.gblk.assign(c.dweights_bytes() / 4, 0);
    c.bind(e.eng, bufs(src, dst), p.w.data(), p.gw.data(), p.wf.data(), p.wb.data(), p.gblk.data(), scratch.data());
  };
  bind_conv(c1, p1, in, mid, ci, co, 3, 1, 1, 1, 2, 30);
  bind_conv(c2, p2, mid, out, co, co, 3, 2, 1, 4, 5, 31);
  bind_conv(cd, pd, in, out, ci, co, 1, 2, 0, 0, 7, 32);
  PReLU pr;
  std::vector<float> slope = randn(co, 40, 0.1f), dslope(co);
  for (auto &v : slope) v += 0.25f;
  pr.init(mid);
  pr.bind(bufs(3, 4), slope.data(), dslope.data());

  const auto r = randn(act[6].size(), 50);
  // Weights of scale 1/√(fan_in) ≈ 0.08 through three batch norms: a step of 1e-2 leaves
  // second-order error of a few percent, 1e-3 stays well above float32 rounding.
  const float kStep = 1e-3f;
  auto loss = [&] {
    for (Conv *c : {&c1, &c2, &cd}) c->prepare(e.s);
    bn1.forward(e.s, true);
    c1.forward(e.s);
    bn2.forward(e.s, true);
    e.s.wait();
    pr.forward();
    c2.forward(e.s);
    bn3.forward(e.s, true);
    cd.forward(e.s);
    bnd.forward(e.s, true);
    e.s.wait();
    add_into(act[6].data(), act[8].data(), (int64_t)act[6].size());
    return dot(act[6], r);
  };
  loss();
  grad[6] = r;  // copies into the bound buffer's storage (same size: no reallocation)
  grad[8] = r;  // the sum passes the gradient to both branches
  bn3.backward(e.s, false, true, false);
  c2.backward(e.s, false, true, false);
  e.s.wait();
  pr.backward(false, true, false);
  bn2.backward(e.s, false, true, false);
  c1.backward(e.s, false, true, false);
  bn1.backward(e.s, false, true, false);  // first writer of dx
  bnd.backward(e.s, false, true, false);
  cd.backward(e.s, false, true, true);    // adds its part of dx
  e.s.wait();
  const auto dx = grad[0], dw1 = p1.gw, dw2 = p2.gw, dwd = pd.gw, dslope0 = dslope, dg1 = pb1.dg, db3 = pb3.db,
             dgd = pbd.dg;
  expect_fd(act[0], dx, loss, "block dx", 2e-2, kStep);
  expect_fd(p1.w, dw1, loss, "conv1 dw", 2e-2, kStep);
  expect_fd(p2.w, dw2, loss, "conv2 dw", 2e-2, kStep);
  expect_fd(pd.w, dwd, loss, "downsample dw", 2e-2, kStep);
  expect_fd(slope, dslope0, loss, "prelu dslope", 2e-2, kStep);
  expect_fd(pb1.g, dg1, loss, "bn1 dgamma", 2e-2, kStep);
  expect_fd(pb3.b, db3, loss, "bn3 dbeta", 2e-2, kStep);
  expect_fd(pbd.g, dgd, loss, "downsample bn dgamma", 2e-2, kStep);
}
