// Combined margin logits and their gradient. The m1 = 1 path follows arcface_torch's
// CombinedMarginLoss (cos(θ + m2) from c·cos m2 − sin θ·sin m2, and c − m2·sin m2 once
// θ + m2 passes π); m1 ≠ 1 goes through acos. sin θ is floored so that c = ±1 gives finite
// gradients.
#include "cpu/margin.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace afc {

namespace {
constexpr double kMinSin = 1e-6;

inline bool filtered(const Margin &m, float c) {
  return m.filter_threshold > 0.0f && c > m.filter_threshold;
}
}  // namespace

void Margin::target(double c, double *value, double *deriv) const {
  const double dm1 = m1, dm2 = m2, dm3 = m3;
  if (dm1 == 1.0) {
    const double threshold = std::cos(M_PI - dm2);
    if (c > threshold) {
      const double sin_t = std::sqrt(std::max(0.0, 1.0 - c * c));
      *value = c * std::cos(dm2) - sin_t * std::sin(dm2) - dm3;
      *deriv = std::cos(dm2) + c * std::sin(dm2) / std::max(sin_t, kMinSin);
    } else {
      *value = c - std::sin(M_PI - dm2) * dm2 - dm3;
      *deriv = 1.0;
    }
    return;
  }
  const double theta = std::acos(c);
  const double limit = (M_PI - dm2) / dm1;  // past it, cos(m1·θ + m2) would rise again
  if (theta < limit || limit >= M_PI) {
    const double a = dm1 * theta + dm2;
    *value = std::cos(a) - dm3;
    *deriv = dm1 * std::sin(a) / std::max(std::sqrt(std::max(0.0, 1.0 - c * c)), kMinSin);
  } else {
    *value = c - std::cos(limit) - 1.0 - dm3;
    *deriv = 1.0;
  }
}

void Margin::forward(const float *cos, const int64_t *labels, int64_t rows, int64_t cols,
                     float *logits) const {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < rows; i++) {
    const int64_t t = labels ? labels[i] : -1;
    const float *ci = cos + i * cols;
    float *li = logits + i * cols;
    for (int64_t j = 0; j < cols; j++) {
      const float c = std::min(1.0f, std::max(-1.0f, ci[j]));
      if (j == t) {
        double v, d;
        target(c, &v, &d);
        li[j] = static_cast<float>(s * v);
      } else {
        li[j] = filtered(*this, c) ? 0.0f : s * c;
      }
    }
  }
}

void Margin::backward(const float *cos, const int64_t *labels, int64_t rows, int64_t cols,
                      const float *d_logits, float *d_cos) const {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < rows; i++) {
    const int64_t t = labels ? labels[i] : -1;
    const float *ci = cos + i * cols;
    const float *gi = d_logits + i * cols;
    float *di = d_cos + i * cols;
    for (int64_t j = 0; j < cols; j++) {
      const float raw = ci[j];
      if (!(raw >= -1.0f && raw <= 1.0f)) {  // the clamp passes no gradient (NaN included)
        di[j] = 0.0f;
        continue;
      }
      if (j == t) {
        double v, d;
        target(raw, &v, &d);
        di[j] = static_cast<float>(gi[j] * s * (straight_through ? 1.0 : d));
      } else {
        di[j] = filtered(*this, raw) ? 0.0f : gi[j] * s;
      }
    }
  }
}

void check_margin(float s, float m1, float m2, float m3, float filter) {
  AFC_CHECK(std::isfinite(s) && s > 0, AFC_ERR_INVALID_ARGUMENT,
            "scale s %g is invalid: expected a positive finite number (64 in arcface_torch)", s);
  AFC_CHECK(std::isfinite(m1) && m1 > 0, AFC_ERR_INVALID_ARGUMENT,
            "margin m1 %g is invalid: expected a positive multiplier (1.0 for ArcFace/CosFace)", m1);
  AFC_CHECK(std::isfinite(m2) && m2 >= 0 && m2 < M_PI, AFC_ERR_INVALID_ARGUMENT,
            "margin m2 %g is invalid: expected an angle in [0, pi)", m2);
  AFC_CHECK(std::isfinite(m3) && m3 >= 0, AFC_ERR_INVALID_ARGUMENT,
            "margin m3 %g is invalid: expected a non-negative cosine margin", m3);
  AFC_CHECK(std::isfinite(filter) && filter >= 0 && filter <= 1, AFC_ERR_INVALID_ARGUMENT,
            "interclass_filtering_threshold %g is invalid: expected 0 (off) or a cosine in (0, 1]",
            filter);
}

}  // namespace afc

namespace {
void check_rows(const int64_t *labels, int64_t rows, int64_t cols) {
  AFC_CHECK(rows >= 0 && cols >= 0, AFC_ERR_INVALID_ARGUMENT,
            "rows %lld or cols %lld is negative", (long long)rows, (long long)cols);
  for (int64_t i = 0; labels && i < rows; i++)
    AFC_CHECK(labels[i] >= -1 && labels[i] < cols, AFC_ERR_INVALID_ARGUMENT,
              "label %lld of row %lld is out of range: expected -1 or a column in [0, %lld)",
              (long long)labels[i], (long long)i, (long long)cols);
}
}  // namespace

extern "C" {

AFC_API afc_status afc_margin_create(float s, float m1, float m2, float m3, float filter_threshold,
                                     int32_t straight_through, afc_margin_t **out) {
  return AFC_GUARD({
    AFC_CHECK(out, AFC_ERR_INVALID_ARGUMENT, "out is NULL");
    afc::check_margin(s, m1, m2, m3, filter_threshold);
    auto *m = new afc_margin;
    m->m = afc::Margin{s, m1, m2, m3, filter_threshold, straight_through != 0};
    *out = m;
  });
}

AFC_API void afc_margin_destroy(afc_margin_t *margin) { delete margin; }

AFC_API afc_status afc_margin_forward(const afc_margin_t *margin, const float *cos,
                                      const int64_t *labels, int64_t rows, int64_t cols,
                                      float *logits) {
  return AFC_GUARD({
    AFC_CHECK(margin, AFC_ERR_INVALID_ARGUMENT, "margin is NULL");
    check_rows(labels, rows, cols);
    if (rows * cols == 0) return;
    AFC_CHECK(cos && labels && logits, AFC_ERR_INVALID_ARGUMENT, "cos, labels or logits is NULL");
    margin->m.forward(cos, labels, rows, cols, logits);
  });
}

AFC_API afc_status afc_margin_backward(const afc_margin_t *margin, const float *cos,
                                       const int64_t *labels, int64_t rows, int64_t cols,
                                       const float *d_logits, float *d_cos) {
  return AFC_GUARD({
    AFC_CHECK(margin, AFC_ERR_INVALID_ARGUMENT, "margin is NULL");
    check_rows(labels, rows, cols);
    if (rows * cols == 0) return;
    AFC_CHECK(cos && labels && d_logits && d_cos, AFC_ERR_INVALID_ARGUMENT,
              "cos, labels, d_logits or d_cos is NULL");
    margin->m.backward(cos, labels, rows, cols, d_logits, d_cos);
  });
}

}  // extern "C"
