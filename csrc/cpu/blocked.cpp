#include "cpu/blocked.h"

#include <algorithm>
#include <cstring>

namespace afc::cpu {

namespace {

constexpr int64_t kMaxBlock = 16;

// Offset of the first lane of (n, channel block cb, row h, column w).
inline int64_t at(const BlockedShape &s, int64_t n, int64_t cb, int64_t h, int64_t w) {
  return (((n * s.blocks() + cb) * s.h + h) * s.w + w) * s.block;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// PReLU
//
// The loops are templates on the block size K (0: read it at run time), so that for the
// blocks of 8 and 16 the lane loops compile to whole vectors.

namespace {

template <int K>
void prelu_forward_impl(const BlockedShape &s, const float *x, const float *a, float *y) {
  const int64_t B = K ? K : s.block, CB = s.blocks(), plane = s.h * s.w;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < s.n; n++) {
    for (int64_t cb = 0; cb < CB; cb++) {
      float slope[kMaxBlock];
      for (int64_t l = 0; l < B; l++) slope[l] = cb * B + l < s.c ? a[cb * B + l] : 0.0f;
      const int64_t base = at(s, n, cb, 0, 0);
      // Branch-free (max/min), so that the lane loop compiles to vector instructions.
      for (int64_t p = 0; p < plane; p++) {
        // No __restrict: eval runs it in place (x == y), element by element.
        const float *xi = x + base + p * B;
        float *yi = y + base + p * B;
        for (int64_t l = 0; l < B; l++) yi[l] = std::max(xi[l], 0.0f) + slope[l] * std::min(xi[l], 0.0f);
      }
    }
  }
}

template <int K>
void prelu_backward_impl(const BlockedShape &s, const float *x, const float *a, const float *dy, float *dx,
                         float *da, bool accumulate) {
  const int64_t B = K ? K : s.block, CB = s.blocks(), plane = s.h * s.w;
  // Each thread owns whole channel blocks, so the slope gradient needs no reduction.
#pragma omp parallel for schedule(static)
  for (int64_t cb = 0; cb < CB; cb++) {
    float slope[kMaxBlock], sum[kMaxBlock] = {};
    for (int64_t l = 0; l < B; l++) slope[l] = cb * B + l < s.c ? a[cb * B + l] : 0.0f;
    for (int64_t n = 0; n < s.n; n++) {
      const int64_t base = at(s, n, cb, 0, 0);
      for (int64_t p = 0; p < plane; p++) {
        const float *__restrict xi = x + base + p * B, *__restrict gi = dy + base + p * B;
        for (int64_t l = 0; l < B; l++) sum[l] += std::min(xi[l], 0.0f) * gi[l];
        if (dx) {
          float *__restrict di = dx + base + p * B;
          for (int64_t l = 0; l < B; l++) di[l] = (xi[l] > 0.0f ? 1.0f : slope[l]) * gi[l];
        }
      }
    }
    for (int64_t l = 0; l < B && cb * B + l < s.c; l++) da[cb * B + l] = (accumulate ? da[cb * B + l] : 0.0f) + sum[l];
  }
}

}  // namespace

void prelu_forward_blocked(const BlockedShape &s, const float *x, const float *a, float *y) {
  if (s.block == 16) return prelu_forward_impl<16>(s, x, a, y);
  if (s.block == 8) return prelu_forward_impl<8>(s, x, a, y);
  prelu_forward_impl<0>(s, x, a, y);
}

void prelu_backward_blocked(const BlockedShape &s, const float *x, const float *a, const float *dy, float *dx,
                            float *da, bool accumulate) {
  if (s.block == 16) return prelu_backward_impl<16>(s, x, a, dy, dx, da, accumulate);
  if (s.block == 8) return prelu_backward_impl<8>(s, x, a, dy, dx, da, accumulate);
  prelu_backward_impl<0>(s, x, a, dy, dx, da, accumulate);
}

// ---------------------------------------------------------------------------------------
// Grouped convolution, cpg channels per group
//
// Lane l of a block belongs to the group whose first lane is g(l) = l − l%cpg. Output lane l
// reads input lanes g(l)+j, j < cpg:  dst[l] = Σ_{kh,kw,j} src[g(l)+j] · W[l][j][kh][kw].
// The packings put the weight each lane needs, for each (kh, kw, j), in a contiguous block:
//   w_fwd[cb][kh][kw][j][l] = W[c][j][kh][kw]                 c = cb·B + l
//   w_bwd[cb][kh][kw][t][l] = W[cb·B + g(l) + t][l % cpg][kh][kw]
// so that dsrc[l] = Σ_{kh,kw,t} ddst[g(l)+t] · w_bwd[…][t][l] has the forward's shape.

namespace {

// acc[l] += Σ_j v[g(l)+j] · w[j][l]
template <int K, int G>
inline void group_madd(const float *v, const float *w, float *acc, int64_t B, int64_t cpg) {
  for (int64_t j = 0; j < cpg; j++) {
    float vj[kMaxBlock];
    for (int64_t l = 0; l < B; l++) vj[l] = v[l - l % cpg + j];
#pragma omp simd
    for (int64_t l = 0; l < B; l++) acc[l] += vj[l] * w[j * B + l];
  }
}

}  // namespace

void group_conv_pack(const GroupConvShape &s, const float *w, float *w_fwd, float *w_bwd) {
  const int64_t B = s.dst.block, CB = s.dst.blocks(), C = s.dst.c, k = s.k, cpg = s.cpg;
  auto W = [&](int64_t c, int64_t j, int64_t kh, int64_t kw) {
    return c < C ? w[((c * cpg + j) * k + kh) * k + kw] : 0.0f;
  };
  for (int64_t cb = 0; cb < CB; cb++)
    for (int64_t kh = 0; kh < k; kh++)
      for (int64_t kw = 0; kw < k; kw++)
        for (int64_t j = 0; j < cpg; j++)
          for (int64_t l = 0; l < B; l++) {
            const int64_t i = ((((cb * k + kh) * k + kw) * cpg + j) * B) + l;
            w_fwd[i] = W(cb * B + l, j, kh, kw);
            w_bwd[i] = cb * B + l < C ? W(cb * B + l - l % cpg + j, l % cpg, kh, kw) : 0.0f;
          }
}

template <int K, int G>
void group_conv_forward_impl(const GroupConvShape &s, const float *src, const float *w_fwd, float *dst) {
  const BlockedShape &S = s.src, &D = s.dst;
  const int64_t B = K ? K : D.block, CB = D.blocks(), k = s.k, cpg = G ? G : s.cpg, tap = cpg * B;
#pragma omp parallel for collapse(3) schedule(static)
  for (int64_t n = 0; n < D.n; n++)
    for (int64_t cb = 0; cb < CB; cb++)
      for (int64_t oh = 0; oh < D.h; oh++)
        for (int64_t ow = 0; ow < D.w; ow++) {
          float acc[kMaxBlock] = {};
          for (int64_t kh = 0; kh < k; kh++) {
            const int64_t ih = oh * s.stride - s.pad + kh;
            if (ih < 0 || ih >= S.h) continue;
            for (int64_t kw = 0; kw < k; kw++) {
              const int64_t iw = ow * s.stride - s.pad + kw;
              if (iw < 0 || iw >= S.w) continue;
              group_madd<K, G>(src + at(S, n, cb, ih, iw), w_fwd + ((cb * k + kh) * k + kw) * tap, acc, B, cpg);
            }
          }
          std::memcpy(dst + at(D, n, cb, oh, ow), acc, sizeof(float) * B);
        }
}

template <int K, int G>
void group_conv_backward_data_impl(const GroupConvShape &s, const float *ddst, const float *w_bwd, float *dsrc) {
  const BlockedShape &S = s.src, &D = s.dst;
  const int64_t B = K ? K : D.block, CB = D.blocks(), k = s.k, cpg = G ? G : s.cpg, tap = cpg * B;
  // Gather form: every input position sums the outputs that read it (no write conflicts).
#pragma omp parallel for collapse(3) schedule(static)
  for (int64_t n = 0; n < S.n; n++)
    for (int64_t cb = 0; cb < CB; cb++)
      for (int64_t ih = 0; ih < S.h; ih++)
        for (int64_t iw = 0; iw < S.w; iw++) {
          float acc[kMaxBlock] = {};
          for (int64_t kh = 0; kh < k; kh++) {
            const int64_t th = ih + s.pad - kh;
            if (th < 0 || th % s.stride || th / s.stride >= D.h) continue;
            for (int64_t kw = 0; kw < k; kw++) {
              const int64_t tw = iw + s.pad - kw;
              if (tw < 0 || tw % s.stride || tw / s.stride >= D.w) continue;
              group_madd<K, G>(ddst + at(D, n, cb, th / s.stride, tw / s.stride), w_bwd + ((cb * k + kh) * k + kw) * tap,
                         acc, B, cpg);
            }
          }
          std::memcpy(dsrc + at(S, n, cb, ih, iw), acc, sizeof(float) * B);
        }
}

template <int K, int G>
void group_conv_backward_weights_impl(const GroupConvShape &s, const float *src, const float *ddst, float *packed, float *gw, bool accumulate) {
  const BlockedShape &S = s.src, &D = s.dst;
  const int64_t B = K ? K : D.block, CB = D.blocks(), C = D.c, k = s.k, cpg = G ? G : s.cpg, tap = cpg * B;
  // packed[cb][kh][kw][j][l] = Σ ddst[l] · src[g(l)+j]; each thread owns whole blocks.
#pragma omp parallel for schedule(static)
  for (int64_t cb = 0; cb < CB; cb++) {
    float *acc = packed + cb * k * k * tap;
    std::memset(acc, 0, sizeof(float) * k * k * tap);
    for (int64_t n = 0; n < D.n; n++)
      for (int64_t oh = 0; oh < D.h; oh++)
        for (int64_t ow = 0; ow < D.w; ow++) {
          const float *g = ddst + at(D, n, cb, oh, ow);
          for (int64_t kh = 0; kh < k; kh++) {
            const int64_t ih = oh * s.stride - s.pad + kh;
            if (ih < 0 || ih >= S.h) continue;
            for (int64_t kw = 0; kw < k; kw++) {
              const int64_t iw = ow * s.stride - s.pad + kw;
              if (iw < 0 || iw >= S.w) continue;
              const float *x = src + at(S, n, cb, ih, iw);
              float *a = acc + (kh * k + kw) * tap;
              for (int64_t j = 0; j < cpg; j++) {
                float xj[kMaxBlock];
                for (int64_t l = 0; l < B; l++) xj[l] = x[l - l % cpg + j];
#pragma omp simd
                for (int64_t l = 0; l < B; l++) a[j * B + l] += g[l] * xj[l];
              }
            }
          }
        }
  }
  for (int64_t c = 0; c < C; c++)
    for (int64_t j = 0; j < cpg; j++)
      for (int64_t kh = 0; kh < k; kh++)
        for (int64_t kw = 0; kw < k; kw++) {
          const float v = packed[((((c / B) * k + kh) * k + kw) * cpg + j) * B + c % B];
          float &dst = gw[((c * cpg + j) * k + kh) * k + kw];
          dst = (accumulate ? dst : 0.0f) + v;
        }
}

void group_conv_forward(const GroupConvShape &s, const float *src, const float *w_fwd, float *dst) {
  if (s.dst.block == 16 && s.cpg == 2) return group_conv_forward_impl<16, 2>(s, src, w_fwd, dst);
  if (s.dst.block == 8 && s.cpg == 2) return group_conv_forward_impl<8, 2>(s, src, w_fwd, dst);
  group_conv_forward_impl<0, 0>(s, src, w_fwd, dst);
}

void group_conv_backward_data(const GroupConvShape &s, const float *ddst, const float *w_bwd, float *dsrc) {
  if (s.dst.block == 16 && s.cpg == 2) return group_conv_backward_data_impl<16, 2>(s, ddst, w_bwd, dsrc);
  if (s.dst.block == 8 && s.cpg == 2) return group_conv_backward_data_impl<8, 2>(s, ddst, w_bwd, dsrc);
  group_conv_backward_data_impl<0, 0>(s, ddst, w_bwd, dsrc);
}

void group_conv_backward_weights(const GroupConvShape &s, const float *src, const float *ddst, float *packed,
                                 float *gw, bool accumulate) {
  if (s.dst.block == 16 && s.cpg == 2) return group_conv_backward_weights_impl<16, 2>(s, src, ddst, packed, gw, accumulate);
  if (s.dst.block == 8 && s.cpg == 2) return group_conv_backward_weights_impl<8, 2>(s, src, ddst, packed, gw, accumulate);
  group_conv_backward_weights_impl<0, 0>(s, src, ddst, packed, gw, accumulate);
}

}  // namespace afc::cpu
