// Plain loops on the blocked activation layout nChw{B}c, for the layers oneDNN 2.6 only
// has reference code for in that layout: PReLU (any channel count) and grouped convolution
// with a few channels per group (MobileFaceNet's 128-channel, 64-group 3×3 convolution).
//
// Layout: element (n, c, h, w) sits at ((n·CB + c/B)·H + h)·W·B + w·B + c%B, CB = ⌈C/B⌉;
// lanes past C are padding and stay zero.
#pragma once

#include <cstdint>

namespace afc::cpu {

struct BlockedShape {
  int64_t n = 0, c = 0, h = 0, w = 0, block = 1;
  int64_t blocks() const { return (c + block - 1) / block; }
  int64_t floats() const { return n * blocks() * h * w * block; }
};

// y = x > 0 ? x : a[c]·x.
void prelu_forward_blocked(const BlockedShape &s, const float *x, const float *a, float *y);
// dx = dy·(x > 0 ? 1 : a[c]) (skipped when dx is NULL); da[c] = Σ dy·x over x ≤ 0, written
// or added (`accumulate`).
void prelu_backward_blocked(const BlockedShape &s, const float *x, const float *a, const float *dy, float *dx,
                            float *da, bool accumulate);

// A grouped convolution with `cpg` input and output channels per group (cpg divides the
// block), k×k kernel, stride and padding; src and dst in the blocked layout of their shapes.
struct GroupConvShape {
  BlockedShape src, dst;
  int64_t cpg = 1, k = 1, stride = 1, pad = 0;
  // Floats of one packed weight copy: blocks · k · k · cpg · block.
  int64_t packed_floats() const { return dst.blocks() * k * k * cpg * dst.block; }
};

// PyTorch weights (C, cpg, k, k) → the forward and backward-data packings.
void group_conv_pack(const GroupConvShape &s, const float *w, float *w_fwd, float *w_bwd);
void group_conv_forward(const GroupConvShape &s, const float *src, const float *w_fwd, float *dst);
void group_conv_backward_data(const GroupConvShape &s, const float *ddst, const float *w_bwd, float *dsrc);
// Weight gradient in PyTorch layout, written or added; `packed` is packed_floats() of scratch.
void group_conv_backward_weights(const GroupConvShape &s, const float *src, const float *ddst, float *packed,
                                 float *gw, bool accumulate);

}  // namespace afc::cpu
