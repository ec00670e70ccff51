// The combined margin s·(cos(m1·θ + m2) − m3) on target cosines, shared by the public
// afc_margin_* functions and Partial FC.
#pragma once

#include <cstdint>

namespace afc {

struct Margin {
  float s = 64.0f, m1 = 1.0f, m2 = 0.5f, m3 = 0.0f;
  float filter_threshold = 0.0f;
  bool straight_through = false;

  // Target logit / s and its derivative with respect to c (c already in [−1, 1]).
  void target(double c, double *value, double *deriv) const;

  // logits = margin(clamp(cos)) for rows×cols; labels[i] = target column or −1.
  void forward(const float *cos, const int64_t *labels, int64_t rows, int64_t cols,
               float *logits) const;
  // d_cos = d_logits · ∂logit/∂cos, zero where cos lies outside [−1, 1].
  void backward(const float *cos, const int64_t *labels, int64_t rows, int64_t cols,
                const float *d_logits, float *d_cos) const;
};

// Fails with a clear message unless the margin's values are usable.
void check_margin(float s, float m1, float m2, float m3, float filter);

}  // namespace afc

struct afc_margin {
  afc::Margin m;
};
