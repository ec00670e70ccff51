#include "cpu/layers.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "cpu/gemm.h"

namespace afc::cpu {

using dnnl::algorithm;
using dnnl::prop_kind;
using tag = memory::format_tag;
using dt = memory::data_type;

namespace {

dnnl::primitive_attr user_scratch() {
  dnnl::primitive_attr a;
  a.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return a;
}

size_t floats_of(const md &m) { return m.get_size() / sizeof(float); }

}  // namespace

memory::format_tag act_tag() {
  const auto isa = dnnl::get_effective_cpu_isa();
  const bool avx512 = isa == dnnl::cpu_isa::avx512_core || isa == dnnl::cpu_isa::avx512_core_vnni ||
                      isa == dnnl::cpu_isa::avx512_core_bf16 || isa == dnnl::cpu_isa::avx512_core_amx ||
                      isa == dnnl::cpu_isa::avx512_mic || isa == dnnl::cpu_isa::avx512_mic_4ops;
  return avx512 ? tag::nChw16c : tag::nChw8c;
}

md act_md(int64_t n, int64_t c, int64_t h, int64_t w, memory::format_tag t) {
  return md({n, c, h, w}, dt::f32, t);
}

BlockedShape blocked_shape(const md &m) {
  const auto d = m.dims();
  const auto &b = m.data.format_desc.blocking;
  return {d[0], d[1], d[2], d[3], b.inner_nblks == 1 ? b.inner_blks[0] : 1};
}

void add_into(float *dst, const float *src, int64_t count) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < count; i++) dst[i] += src[i];
}

// ---------------------------------------------------------------------------------------
// Convolution

void Conv::init(const dnnl::engine &eng, const md &src_md, const md &dst_md, int64_t ic, int64_t oc, int k,
                int stride, int pad, int groups) {
  src_floats = floats_of(src_md);
  const int64_t cpg = ic / groups;
  const BlockedShape S = blocked_shape(src_md), D = blocked_shape(dst_md);
  if (groups > 1 && ic == oc && cpg > 1 && S.block == D.block && S.block % cpg == 0 && S.block / cpg > 1) {
    direct = true;
    gs = {S, D, cpg, k, stride, pad};
    return;
  }
  const md w_any = groups > 1 ? md({groups, oc / groups, ic / groups, k, k}, dt::f32, tag::any)
                              : md({oc, ic, k, k}, dt::f32, tag::any);
  w_plain_md = groups > 1 ? md({groups, oc / groups, ic / groups, k, k}, dt::f32, tag::goihw)
                          : md({oc, ic, k, k}, dt::f32, tag::oihw);
  strides = {stride, stride}, pads = {pad, pad};
  const auto attr = user_scratch();
  fwd_pd = dnnl::convolution_forward::primitive_desc(
      {prop_kind::forward_training, algorithm::convolution_direct, src_md, w_any, dst_md, strides, pads, pads},
      attr, eng);
  bwd_d_pd = dnnl::convolution_backward_data::primitive_desc(
      {algorithm::convolution_direct, src_md, w_any, dst_md, strides, pads, pads}, attr, eng, fwd_pd);
  bwd_w_pd = dnnl::convolution_backward_weights::primitive_desc(
      {algorithm::convolution_direct, src_md, w_any, dst_md, strides, pads, pads}, attr, eng, fwd_pd);
}

bool Conv::fold(const dnnl::engine &eng, bool winograd) {
  if (direct) return false;
  const auto dims = fwd_pd.weights_desc().dims();
  const md bias_md({dims[0]}, dt::f32, tag::x);
  auto make = [&](algorithm alg, const md &w) {
    fold_pd = dnnl::convolution_forward::primitive_desc(
        {prop_kind::forward_inference, alg, fwd_pd.src_desc(), w, bias_md, fwd_pd.dst_desc(), strides, pads, pads},
        user_scratch(), eng);
  };
  // Winograd where asked and oneDNN has it (AVX-512), on weights of its own layout.
  if (winograd && dims[2] == 3 && strides[0] == 1) try {
      make(algorithm::convolution_winograd, md(dims, dt::f32, tag::any));
      return folded = true;
    } catch (const dnnl::error &) {
    }
  try {
    make(algorithm::convolution_direct, fwd_pd.weights_desc());
  } catch (const dnnl::error &) {
    return false;
  }
  return folded = true;
}

size_t Conv::fold_weights_bytes() const {
  return folded && fold_pd.weights_desc() != fwd_pd.weights_desc() ? fold_pd.weights_desc().get_size() : 0;
}

size_t Conv::scratch_bytes() const {
  if (direct) return 0;
  return std::max({fwd_pd.scratchpad_desc().get_size(), bwd_d_pd.scratchpad_desc().get_size(),
                   bwd_w_pd.scratchpad_desc().get_size(),
                   folded ? fold_pd.scratchpad_desc().get_size() : size_t{0}});
}
size_t Conv::weights_bytes() const {
  if (direct) return gs.packed_floats() * sizeof(float);
  return std::max(fwd_pd.weights_desc().get_size(), bwd_d_pd.weights_desc().get_size());
}
bool Conv::bwd_weights_differ() const { return direct || fwd_pd.weights_desc() != bwd_d_pd.weights_desc(); }
size_t Conv::dweights_bytes() const {
  return direct ? gs.packed_floats() * sizeof(float) : bwd_w_pd.diff_weights_desc().get_size(); }
const char *Conv::impl() const { return direct ? "afc:group_direct" : fwd_pd.impl_info_str(); }

void Conv::bind(const dnnl::engine &eng, const ActBufs &a, float *w, float *gw, float *w_fwd, float *w_bwd,
                float *gw_blk, void *scratch) {
  bufs = a;
  w_torch = w;
  if (direct) {
    gw_torch = gw, wf = w_fwd, wb = w_bwd, gwpack = gw_blk;
    return;
  }
  m_src = memory(fwd_pd.src_desc(), eng, a.src);
  m_dst = memory(fwd_pd.dst_desc(), eng, a.dst);
  m_ddst = memory(bwd_w_pd.diff_dst_desc(), eng, a.ddst);
  m_dsrc = memory(bwd_d_pd.diff_src_desc(), eng, a.dsrc);
  m_dsrc_tmp = memory(bwd_d_pd.diff_src_desc(), eng, a.dsrc_tmp);
  m_w = memory(w_plain_md, eng, w);
  m_gw = memory(w_plain_md, eng, gw);
  m_wfwd = memory(fwd_pd.weights_desc(), eng, w_fwd);
  m_wbwd = bwd_weights_differ() ? memory(bwd_d_pd.weights_desc(), eng, w_bwd) : m_wfwd;
  m_gwblk = memory(bwd_w_pd.diff_weights_desc(), eng, gw_blk);
  m_scr_f = memory(fwd_pd.scratchpad_desc(), eng, scratch);
  m_scr_d = memory(bwd_d_pd.scratchpad_desc(), eng, scratch);
  m_scr_w = memory(bwd_w_pd.scratchpad_desc(), eng, scratch);
  fwd = dnnl::convolution_forward(fwd_pd);
  bwd_d = dnnl::convolution_backward_data(bwd_d_pd);
  bwd_w = dnnl::convolution_backward_weights(bwd_w_pd);
  r_wfwd = dnnl::reorder(m_w, m_wfwd);
  if (bwd_weights_differ()) r_wbwd = dnnl::reorder(m_w, m_wbwd);
  r_gw = dnnl::reorder(m_gwblk, m_gw);
  dnnl::post_ops po;
  po.append_sum(1.0f);
  dnnl::primitive_attr acc;
  acc.set_post_ops(po);
  r_gw_acc = dnnl::reorder(dnnl::reorder::primitive_desc(m_gwblk, m_gw, acc));
}

void Conv::bind_fold(const dnnl::engine &eng, const float *gamma, const float *beta, const float *mean,
                     const float *var, float eps, float *bias, float *w_tmp, float *w_fold) {
  bn_gamma = gamma, bn_beta = beta, bn_mean = mean, bn_var = var, bn_eps = eps;
  fold_bias = bias, fold_w = w_tmp;
  m_bias = memory(fold_pd.bias_desc(), eng, bias);
  m_wfold = memory(w_plain_md, eng, w_tmp);
  m_wfold_blk = fold_weights_bytes() ? memory(fold_pd.weights_desc(), eng, w_fold) : m_wfwd;
  m_scr_fold = memory(fold_pd.scratchpad_desc(), eng, m_scr_f.get_data_handle());
  r_fold = dnnl::reorder(m_wfold, m_wfold_blk);
  fold_fwd = dnnl::convolution_forward(fold_pd);
}

void Conv::prepare(dnnl::stream &s) {
  if (direct) return group_conv_pack(gs, w_torch, wf, wb);
  if (folded) {
    const auto dims = w_plain_md.dims();
    const int64_t oc = dims[0], per_oc = w_plain_md.get_size() / sizeof(float) / oc;
#pragma omp parallel for schedule(static)
    for (int64_t o = 0; o < oc; o++) {
      const float scale = bn_gamma[o] / std::sqrt(bn_var[o] + bn_eps);
      for (int64_t i = 0; i < per_oc; i++) fold_w[o * per_oc + i] = w_torch[o * per_oc + i] * scale;
      fold_bias[o] = bn_beta[o] - bn_mean[o] * scale;
    }
    return r_fold.execute(s, m_wfold, m_wfold_blk);
  }
  r_wfwd.execute(s, m_w, m_wfwd);
  if (bwd_weights_differ()) r_wbwd.execute(s, m_w, m_wbwd);
}

void Conv::forward(dnnl::stream &s) {
  if (direct) return group_conv_forward(gs, bufs.src, wf, bufs.dst);
  if (folded)
    return fold_fwd.execute(s, {{DNNL_ARG_SRC, m_src}, {DNNL_ARG_WEIGHTS, m_wfold_blk}, {DNNL_ARG_BIAS, m_bias},
                                {DNNL_ARG_DST, m_dst}, {DNNL_ARG_SCRATCHPAD, m_scr_fold}});
  fwd.execute(s, {{DNNL_ARG_SRC, m_src}, {DNNL_ARG_WEIGHTS, m_wfwd}, {DNNL_ARG_DST, m_dst},
                  {DNNL_ARG_SCRATCHPAD, m_scr_f}});
}

void Conv::backward(dnnl::stream &s, bool accumulate_w, bool need_dsrc, bool accumulate_dsrc) {
  if (direct) {
    group_conv_backward_weights(gs, bufs.src, bufs.ddst, gwpack, gw_torch, accumulate_w);
    if (need_dsrc) {
      group_conv_backward_data(gs, bufs.ddst, wb, accumulate_dsrc ? bufs.dsrc_tmp : bufs.dsrc);
      if (accumulate_dsrc) add_into(bufs.dsrc, bufs.dsrc_tmp, src_floats);
    }
    return;
  }
  bwd_w.execute(s, {{DNNL_ARG_SRC, m_src}, {DNNL_ARG_DIFF_DST, m_ddst}, {DNNL_ARG_DIFF_WEIGHTS, m_gwblk},
                    {DNNL_ARG_SCRATCHPAD, m_scr_w}});
  (accumulate_w ? r_gw_acc : r_gw).execute(s, m_gwblk, m_gw);
  if (need_dsrc) {
    bwd_d.execute(s, {{DNNL_ARG_DIFF_DST, m_ddst}, {DNNL_ARG_WEIGHTS, m_wbwd},
                      {DNNL_ARG_DIFF_SRC, accumulate_dsrc ? m_dsrc_tmp : m_dsrc}, {DNNL_ARG_SCRATCHPAD, m_scr_d}});
    if (accumulate_dsrc) add_into(bufs.dsrc, bufs.dsrc_tmp, src_floats);
  }
}

// ---------------------------------------------------------------------------------------
// 2-D batch norm

void BatchNorm::init(const dnnl::engine &eng, const md &data_md, float eps, bool frozen_) {
  frozen = frozen_;
  const auto dims = data_md.dims();
  c = dims[1];
  count = dims[0] * dims[2] * dims[3];
  floats = floats_of(data_md);
  const auto attr = user_scratch();
  const auto ss = dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift;
  const auto gs = ss | dnnl::normalization_flags::use_global_stats;
  train_pd = dnnl::batch_normalization_forward::primitive_desc({prop_kind::forward_training, data_md, eps, ss},
                                                                attr, eng);
  infer_pd = dnnl::batch_normalization_forward::primitive_desc({prop_kind::forward_inference, data_md, eps, gs},
                                                                attr, eng);
  if (frozen) {
    const auto hint = dnnl::batch_normalization_forward::primitive_desc(
        {prop_kind::forward_training, data_md, eps, gs}, attr, eng);
    bwd_pd = dnnl::batch_normalization_backward::primitive_desc({prop_kind::backward, data_md, data_md, eps, gs},
                                                                attr, eng, hint);
  } else {
    bwd_pd = dnnl::batch_normalization_backward::primitive_desc({prop_kind::backward, data_md, data_md, eps, ss},
                                                                attr, eng, train_pd);
  }
}

size_t BatchNorm::scratch_bytes() const {
  return std::max({train_pd.scratchpad_desc().get_size(), infer_pd.scratchpad_desc().get_size(),
                   bwd_pd.scratchpad_desc().get_size()});
}

void BatchNorm::bind(const dnnl::engine &eng, const ActBufs &a, float *g, float *b, float *rm, float *rv,
                     float *dg, float *db, float *sm, float *sv, float *dparam_tmp, void *scratch) {
  bufs = a;
  gamma = g, beta = b, rmean = rm, rvar = rv, dgamma = dg, dbeta = db, smean = sm, svar = sv, dtmp = dparam_tmp;
  const md data = train_pd.src_desc(), vec({c}, dt::f32, tag::x);
  m_src = memory(data, eng, a.src);
  m_dst = memory(data, eng, a.dst);
  m_dsrc = memory(data, eng, a.dsrc);
  m_ddst = memory(data, eng, a.ddst);
  m_dsrc_tmp = memory(data, eng, a.dsrc_tmp);
  m_gamma = memory(vec, eng, g);
  m_beta = memory(vec, eng, b);
  m_rmean = memory(vec, eng, rm);
  m_rvar = memory(vec, eng, rv);
  m_smean = memory(vec, eng, sm);
  m_svar = memory(vec, eng, sv);
  m_dg = memory(vec, eng, dparam_tmp);
  m_db = memory(vec, eng, dparam_tmp + c);
  m_scr_t = memory(train_pd.scratchpad_desc(), eng, scratch);
  m_scr_i = memory(infer_pd.scratchpad_desc(), eng, scratch);
  m_scr_b = memory(bwd_pd.scratchpad_desc(), eng, scratch);
  train = dnnl::batch_normalization_forward(train_pd);
  infer = dnnl::batch_normalization_forward(infer_pd);
  bwd = dnnl::batch_normalization_backward(bwd_pd);
}

void BatchNorm::forward(dnnl::stream &s, bool is_train, float momentum) {
  if (!is_train || frozen) {
    infer.execute(s, {{DNNL_ARG_SRC, m_src}, {DNNL_ARG_DST, m_dst}, {DNNL_ARG_MEAN, m_rmean},
                      {DNNL_ARG_VARIANCE, m_rvar}, {DNNL_ARG_SCALE, m_gamma}, {DNNL_ARG_SHIFT, m_beta},
                      {DNNL_ARG_SCRATCHPAD, m_scr_i}});
    return;
  }
  AFC_CHECK(count > 1, AFC_ERR_SHAPE,
            "batch norm in training mode needs more than one value per channel, got %lld (batch × height × "
            "width): use a batch of at least 2 or eval mode",
            (long long)count);
  train.execute(s, {{DNNL_ARG_SRC, m_src}, {DNNL_ARG_DST, m_dst}, {DNNL_ARG_MEAN, m_smean},
                    {DNNL_ARG_VARIANCE, m_svar}, {DNNL_ARG_SCALE, m_gamma}, {DNNL_ARG_SHIFT, m_beta},
                    {DNNL_ARG_SCRATCHPAD, m_scr_t}});
  const float unbias = (float)count / (float)(count - 1);
  for (int64_t i = 0; i < c; i++) {
    rmean[i] = (1 - momentum) * rmean[i] + momentum * smean[i];
    rvar[i] = (1 - momentum) * rvar[i] + momentum * svar[i] * unbias;
  }
}

void BatchNorm::backward(dnnl::stream &s, bool accumulate_w, bool need_dsrc, bool accumulate_dsrc) {
  // oneDNN always computes diff_src: when it is not wanted it lands in the temporary. Its
  // backward pass with use_shift also asks for the shift, though the result does not use it.
  const bool to_tmp = accumulate_dsrc || !need_dsrc;
  bwd.execute(s, {{DNNL_ARG_SRC, m_src}, {DNNL_ARG_MEAN, frozen ? m_rmean : m_smean},
                  {DNNL_ARG_VARIANCE, frozen ? m_rvar : m_svar}, {DNNL_ARG_DIFF_DST, m_ddst},
                  {DNNL_ARG_SCALE, m_gamma}, {DNNL_ARG_SHIFT, m_beta},
                  {DNNL_ARG_DIFF_SRC, to_tmp ? m_dsrc_tmp : m_dsrc},
                  {DNNL_ARG_DIFF_SCALE, m_dg}, {DNNL_ARG_DIFF_SHIFT, m_db}, {DNNL_ARG_SCRATCHPAD, m_scr_b}});
  if (need_dsrc && accumulate_dsrc) add_into(bufs.dsrc, bufs.dsrc_tmp, floats);
  for (int64_t i = 0; i < c; i++) {
    dgamma[i] = (accumulate_w ? dgamma[i] : 0.0f) + dtmp[i];
    dbeta[i] = (accumulate_w ? dbeta[i] : 0.0f) + dtmp[c + i];
  }
}

// ---------------------------------------------------------------------------------------
// PReLU

void PReLU::init(const md &data_md) { shape = blocked_shape(data_md); }

void PReLU::bind(const ActBufs &a, float *w_, float *dw_) {
  bufs = a;
  w = w_, dw = dw_;
}

void PReLU::forward() { prelu_forward_blocked(shape, bufs.src, w, bufs.dst); }

void PReLU::backward(bool accumulate_w, bool need_dsrc, bool accumulate_dsrc) {
  float *dx = !need_dsrc ? nullptr : accumulate_dsrc ? bufs.dsrc_tmp : bufs.dsrc;
  prelu_backward_blocked(shape, bufs.src, w, bufs.ddst, dx, dw, accumulate_w);
  if (dx && accumulate_dsrc) add_into(bufs.dsrc, bufs.dsrc_tmp, shape.floats());
}

// ---------------------------------------------------------------------------------------
// Head: fully connected, BatchNorm1d, dropout

void fc_forward(const float *x, const float *w, const float *b, float *y, int64_t n, int64_t in, int64_t out) {
  if (n == 0) return;
  sgemm(false, true, n, out, in, 1.0f, x, in, w, in, 0.0f, y, out);
  if (b)
    for (int64_t i = 0; i < n; i++)
      for (int64_t j = 0; j < out; j++) y[i * out + j] += b[j];
}

void fc_backward(const float *x, const float *w, const float *dy, float *dx, float *dw, float *db, int64_t n,
                 int64_t in, int64_t out, bool accumulate) {
  const float beta = accumulate ? 1.0f : 0.0f;
  if (n == 0) {
    if (!accumulate) {
      std::memset(dw, 0, sizeof(float) * in * out);
      if (db) std::memset(db, 0, sizeof(float) * out);
    }
    return;
  }
  sgemm(true, false, out, in, n, 1.0f, dy, out, x, in, beta, dw, in);
  if (dx)
    sgemm(false, false, n, in, out, 1.0f, dy, out, w, in, 0.0f, dx, in);
  if (db)
    for (int64_t j = 0; j < out; j++) {
      float s = 0;
      for (int64_t i = 0; i < n; i++) s += dy[i * out + j];
      db[j] = (accumulate ? db[j] : 0.0f) + s;
    }
}

void bn1d_forward(const float *x, float *y, const float *gamma, const float *beta, float *running_mean,
                  float *running_var, float *mean, float *invstd, int64_t n, int64_t c, float eps, bool train,
                  float momentum) {
  if (train) {
    AFC_CHECK(n > 1, AFC_ERR_SHAPE,
              "BatchNorm1d in training mode needs more than one value per channel, got batch %lld: use a batch "
              "of at least 2 or eval mode",
              (long long)n);
    for (int64_t j = 0; j < c; j++) {
      double s = 0, ss = 0;
      for (int64_t i = 0; i < n; i++) s += x[i * c + j];
      const double m = s / n;
      for (int64_t i = 0; i < n; i++) {
        const double d = x[i * c + j] - m;
        ss += d * d;
      }
      const double var = ss / n;
      mean[j] = (float)m;
      invstd[j] = (float)(1.0 / std::sqrt(var + eps));
      running_mean[j] = (1 - momentum) * running_mean[j] + momentum * (float)m;
      running_var[j] = (1 - momentum) * running_var[j] + momentum * (float)(ss / (n - 1));
    }
  } else {
    for (int64_t j = 0; j < c; j++) {
      mean[j] = running_mean[j];
      invstd[j] = 1.0f / std::sqrt(running_var[j] + eps);
    }
  }
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = 0; j < c; j++) y[i * c + j] = (x[i * c + j] - mean[j]) * invstd[j] * gamma[j] + beta[j];
}

void bn1d_backward(const float *x, const float *dy, const float *gamma, const float *mean, const float *invstd,
                   float *dx, float *dgamma, float *dbeta, int64_t n, int64_t c, bool accumulate) {
  for (int64_t j = 0; j < c; j++) {
    double sdy = 0, sdyx = 0;
    for (int64_t i = 0; i < n; i++) {
      sdy += dy[i * c + j];
      sdyx += dy[i * c + j] * (x[i * c + j] - mean[j]) * invstd[j];
    }
    if (dgamma) dgamma[j] = (accumulate ? dgamma[j] : 0.0f) + (float)sdyx;
    dbeta[j] = (accumulate ? dbeta[j] : 0.0f) + (float)sdy;
    if (dx) {
      const double k = gamma[j] * invstd[j] / n;
      for (int64_t i = 0; i < n; i++) {
        const double xh = (x[i * c + j] - mean[j]) * invstd[j];
        dx[i * c + j] = (float)(k * (n * dy[i * c + j] - sdy - xh * sdyx));
      }
    }
  }
}

namespace {
uint64_t splitmix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
}  // namespace

void dropout_forward(float *x, uint8_t *mask, int64_t count, float p, uint64_t seed, uint64_t counter) {
  const float keep = 1.0f / (1.0f - p);
  const uint64_t base = splitmix64(seed ^ splitmix64(counter));
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < count; i++) {
    const double u = (splitmix64(base + (uint64_t)i) >> 11) * (1.0 / 9007199254740992.0);
    mask[i] = u >= p;
    x[i] = mask[i] ? x[i] * keep : 0.0f;
  }
}

void dropout_backward(float *dx, const uint8_t *mask, int64_t count, float p) {
  const float keep = 1.0f / (1.0f - p);
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < count; i++) dx[i] = mask[i] ? dx[i] * keep : 0.0f;
}

}  // namespace afc::cpu
