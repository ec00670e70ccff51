// CPU layers on oneDNN: convolution, 2-D batch norm and PReLU, forward and backward, plus
// the plain loops of the head (fully connected via OpenBLAS, BatchNorm1d, dropout).
//
// A layer is set up in two steps so that all memory can be sized before it is allocated:
// init() creates the primitive descriptors for one batch size and activation layout and
// reports the workspace it needs; bind() attaches buffers (activations, parameters in
// PyTorch layout, gradients, workspace) and creates the primitives. forward()/backward()
// then run without allocating. Parameters and gradients stay in PyTorch's layout; a
// convolution reorders its weights into the layout its primitives want (prepare()).
#pragma once

#include <cstdint>

#include <dnnl.hpp>

#include "cpu/blocked.h"

namespace afc::cpu {

using dnnl::memory;
using md = dnnl::memory::desc;

// The activation layout kept through the network: nChw16c where AVX-512 is available,
// nChw8c otherwise (decided by oneDNN's effective ISA).
memory::format_tag act_tag();
// A f32 activation descriptor n×c×h×w in `tag`.
md act_md(int64_t n, int64_t c, int64_t h, int64_t w, memory::format_tag tag);
// The shape of an activation descriptor (plain nchw or nChw{B}c).
BlockedShape blocked_shape(const md &m);

// dst[i] += src[i] over `count` floats (OpenMP).
void add_into(float *dst, const float *src, int64_t count);

// Activation buffers a layer reads and writes. dsrc_tmp receives the input gradient when it
// must be added to an existing one (an activation read by two layers).
struct ActBufs {
  float *src = nullptr, *dst = nullptr, *dsrc = nullptr, *ddst = nullptr, *dsrc_tmp = nullptr;
};

struct Conv {
  // src_md/dst_md fixed (the network layout); weights in whatever layout oneDNN prefers.
  void init(const dnnl::engine &eng, const md &src_md, const md &dst_md, int64_t ic, int64_t oc, int k,
            int stride, int pad, int groups);
  size_t scratch_bytes() const;
  size_t weights_bytes() const;   // one reordered copy (forward; a second when backward differs)
  bool bwd_weights_differ() const;
  size_t dweights_bytes() const;  // blocked weight gradient before its reorder to PyTorch layout
  // w/gw: PyTorch layout; w_fwd/w_bwd: weights_bytes() each (w_bwd unused unless they differ);
  // gw_blk: dweights_bytes(); scratch: scratch_bytes().
  void bind(const dnnl::engine &eng, const ActBufs &a, float *w, float *gw, float *w_fwd, float *w_bwd,
            float *gw_blk, void *scratch);
  void prepare(dnnl::stream &s);  // weights from PyTorch layout into the primitives' layout
  void forward(dnnl::stream &s);

  // Eval only: the batch norm that follows folded in, as one inference convolution with
  // weights w·γ/σ and bias β − μ·γ/σ (σ = √(var + eps)). fold() comes after init() and
  // returns false where oneDNN has no such primitive. The folded weights take the forward
  // weights' place, or fold_weights_bytes() of their own (Winograd). bind_fold() comes after
  // bind(): bias holds C floats, w_tmp the plain weights. prepare() and forward() then run
  // the folded layer.
  bool fold(const dnnl::engine &eng, bool winograd);
  size_t fold_weights_bytes() const;
  void bind_fold(const dnnl::engine &eng, const float *gamma, const float *beta, const float *mean,
                 const float *var, float eps, float *bias, float *w_tmp, float *w_fold);
  void backward(dnnl::stream &s, bool accumulate_w, bool need_dsrc, bool accumulate_dsrc);
  const char *impl() const;

  // Grouped convolutions with 2…B/2 channels per group run on our own loops (blocked.h):
  // oneDNN 2.6 has only reference code for them.
  bool direct = false;
  GroupConvShape gs;
  float *w_torch = nullptr, *gw_torch = nullptr, *wf = nullptr, *wb = nullptr, *gwpack = nullptr;

  bool folded = false;
  const float *bn_gamma = nullptr, *bn_beta = nullptr, *bn_mean = nullptr, *bn_var = nullptr;
  float bn_eps = 0;
  float *fold_bias = nullptr, *fold_w = nullptr;

  dnnl::convolution_forward::primitive_desc fwd_pd, fold_pd;
  dnnl::convolution_backward_data::primitive_desc bwd_d_pd;
  dnnl::convolution_backward_weights::primitive_desc bwd_w_pd;
  md w_plain_md;
  memory::dims strides, pads;
  int64_t src_floats = 0;
  ActBufs bufs;
  dnnl::primitive fwd, bwd_d, bwd_w, fold_fwd;
  dnnl::reorder r_wfwd, r_wbwd, r_gw, r_gw_acc, r_fold;
  memory m_src, m_dst, m_dsrc, m_ddst, m_dsrc_tmp, m_w, m_gw, m_wfwd, m_wbwd, m_gwblk, m_scr_f, m_scr_d,
      m_scr_w, m_bias, m_wfold, m_wfold_blk, m_scr_fold;
};

struct BatchNorm {
  // `frozen`: use the running statistics in forward and backward (no batch statistics);
  // the model always trains with batch statistics, tests use both.
  void init(const dnnl::engine &eng, const md &data_md, float eps, bool frozen = false);
  size_t scratch_bytes() const;
  // save_mean/save_var: C floats each; dparam_tmp: 2·C floats.
  void bind(const dnnl::engine &eng, const ActBufs &a, float *gamma, float *beta, float *running_mean,
            float *running_var, float *dgamma, float *dbeta, float *save_mean, float *save_var,
            float *dparam_tmp, void *scratch);
  // Training: batch statistics, running statistics updated with `momentum` and the unbiased
  // variance (PyTorch). Fails when a channel has a single value.
  void forward(dnnl::stream &s, bool train, float momentum = 0.1f);
  void backward(dnnl::stream &s, bool accumulate_w, bool need_dsrc, bool accumulate_dsrc);

  dnnl::batch_normalization_forward::primitive_desc train_pd, infer_pd;
  dnnl::batch_normalization_backward::primitive_desc bwd_pd;
  bool frozen = false;
  int64_t c = 0, count = 0, floats = 0;
  float *gamma = nullptr, *beta = nullptr, *rmean = nullptr, *rvar = nullptr, *dgamma = nullptr,
        *dbeta = nullptr, *smean = nullptr, *svar = nullptr, *dtmp = nullptr;
  ActBufs bufs;
  dnnl::primitive train, infer, bwd;
  memory m_src, m_dst, m_dsrc, m_ddst, m_dsrc_tmp, m_gamma, m_beta, m_rmean, m_rvar, m_smean, m_svar, m_dg,
      m_db, m_scr_t, m_scr_i, m_scr_b;
};

// PReLU on the blocked layout with our own loops (oneDNN 2.6 has only reference code there).
struct PReLU {
  void init(const md &data_md);
  void bind(const ActBufs &a, float *w, float *dw);
  void forward();
  void backward(bool accumulate_w, bool need_dsrc, bool accumulate_dsrc);

  BlockedShape shape;
  float *w = nullptr, *dw = nullptr;
  ActBufs bufs;
};

// Fully connected y[n×out] = x[n×in]·Wᵀ + b (b may be NULL), OpenBLAS.
void fc_forward(const float *x, const float *w, const float *b, float *y, int64_t n, int64_t in, int64_t out);
// dx = dy·W (skipped when dx is NULL); dW (+)= dyᵀ·x; db (+)= Σ dy (skipped when db is NULL).
void fc_backward(const float *x, const float *w, const float *dy, float *dx, float *dw, float *db, int64_t n,
                 int64_t in, int64_t out, bool accumulate);

// BatchNorm1d over n×c. Training: batch statistics into mean/invstd (c floats each), running
// statistics updated (unbiased variance); needs n > 1. Eval: running statistics.
void bn1d_forward(const float *x, float *y, const float *gamma, const float *beta, float *running_mean,
                  float *running_var, float *mean, float *invstd, int64_t n, int64_t c, float eps, bool train,
                  float momentum);
// Backward for the training forward: dx, dgamma (skipped when NULL), dbeta (+)= ... .
void bn1d_backward(const float *x, const float *dy, const float *gamma, const float *mean, const float *invstd,
                   float *dx, float *dgamma, float *dbeta, int64_t n, int64_t c, bool accumulate);

// Inverted dropout in place: x *= mask/(1−p) with mask drawn from (seed, counter).
void dropout_forward(float *x, uint8_t *mask, int64_t count, float p, uint64_t seed, uint64_t counter);
void dropout_backward(float *dx, const uint8_t *mask, int64_t count, float p);

}  // namespace afc::cpu
