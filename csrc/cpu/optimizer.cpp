// SGD and AdamW with the exact arithmetic of torch.optim (PyTorch 1.13, single-tensor path).
#include "cpu/optimizer.h"

#include <cmath>

#include "core/error.h"

namespace afc {

void OptimState::init(const OptimConfig &cfg, int64_t count) {
  m.clear();
  v.clear();
  steps = 0;
  this->count = count;
  if (cfg.kind == AFC_OPTIM_ADAMW) {
    m.assign(count, 0.0f);
    v.assign(count, 0.0f);
  } else if (cfg.momentum != 0.0) {
    m.assign(count, 0.0f);  // with dampening 0, buf = 0·momentum + g equals torch's clone(g)
  }
}

std::vector<float> &OptimState::buffer(int32_t which) {
  AFC_CHECK(which == 0 || which == 1, AFC_ERR_INVALID_ARGUMENT,
            "state buffer %d is unknown: expected 0 (momentum / exp_avg) or 1 (exp_avg_sq)", which);
  return which == 0 ? m : v;
}

// Scalars are computed in double and rounded once to float, as torch does with Python floats.
void optim_update(const OptimConfig &cfg, OptimState &st, float *p, const float *g, int64_t n,
                  double lr_d, float grad_scale) {
  st.steps++;
  const float wd = (float)cfg.weight_decay, lr = (float)lr_d;
  if (cfg.kind == AFC_OPTIM_SGD) {
    const float mom = (float)cfg.momentum;
    float *buf = st.m.empty() ? nullptr : st.m.data();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
      float d = g[i] * grad_scale;
      if (wd != 0.0f) d += wd * p[i];
      if (buf) {
        buf[i] = mom * buf[i] + d;
        d = buf[i];
      }
      p[i] -= lr * d;
    }
    return;
  }
  const float b1 = (float)cfg.beta1, b2 = (float)cfg.beta2, eps = (float)cfg.eps;
  const float a1 = (float)(1.0 - cfg.beta1), a2 = (float)(1.0 - cfg.beta2);
  const double bc1 = 1.0 - std::pow(cfg.beta1, (double)st.steps);
  const double bc2 = 1.0 - std::pow(cfg.beta2, (double)st.steps);
  const float step_size = static_cast<float>(lr_d / bc1);
  const float bc2_sqrt = static_cast<float>(std::sqrt(bc2));
  const float decay = (float)(1.0 - lr_d * cfg.weight_decay);
  float *m = st.m.data(), *v = st.v.data();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i++) {
    const float gi = g[i] * grad_scale;
    p[i] *= decay;
    m[i] = b1 * m[i] + a1 * gi;  // exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
    v[i] = b2 * v[i] + a2 * gi * gi;
    const float denom = std::sqrt(v[i]) / bc2_sqrt + eps;
    p[i] -= step_size * (m[i] / denom);
  }
}

double sum_squares(const float *x, int64_t n) {
  double s = 0.0;
#pragma omp parallel for reduction(+ : s) schedule(static)
  for (int64_t i = 0; i < n; i++) s += (double)x[i] * x[i];
  return s;
}

void OptimState::prepare(const OptimConfig &cfg, int64_t n) {
  const bool needs_m = cfg.kind == AFC_OPTIM_ADAMW || cfg.momentum != 0.0;
  const bool needs_v = cfg.kind == AFC_OPTIM_ADAMW;
  if (count == n && (!needs_m || !m.empty()) && (!needs_v || !v.empty())) return;
  const int64_t kept_steps = steps;
  std::vector<float> keep_m = std::move(m), keep_v = std::move(v);
  init(cfg, n);
  if ((int64_t)keep_m.size() == n && !m.empty()) m = std::move(keep_m);
  if ((int64_t)keep_v.size() == n && !v.empty()) v = std::move(keep_v);
  steps = kept_steps;
}

}  // namespace afc

namespace {

afc::OptimState &slot_of(afc_optim *opt, int64_t slot) {
  AFC_CHECK(opt, AFC_ERR_INVALID_ARGUMENT, "opt is NULL");
  AFC_CHECK(slot >= 0 && slot < (int64_t)opt->slots.size(), AFC_ERR_INVALID_ARGUMENT,
            "slot %lld does not exist: the optimizer has %zu (register arrays with afc_optim_add)",
            (long long)slot, opt->slots.size());
  return opt->slots[slot];
}

std::vector<float> &state_range(afc::OptimState &st, int32_t which, int64_t offset, int64_t count) {
  std::vector<float> &b = st.buffer(which);
  AFC_CHECK(!b.empty() || count == 0, AFC_ERR_STATE,
            "state buffer %d is absent: this optimizer keeps no such state (SGD without momentum "
            "keeps none, SGD keeps only buffer 0)", which);
  AFC_CHECK(offset >= 0 && count >= 0 && offset + count <= (int64_t)b.size(), AFC_ERR_SHAPE,
            "range [%lld, %lld) is outside the state's %zu elements", (long long)offset,
            (long long)(offset + count), b.size());
  return b;
}
}  // namespace

extern "C" {

AFC_API afc_status afc_optim_create(int32_t kind, double momentum, double beta1, double beta2,
                                    double eps, double weight_decay, afc_optim_t **out) {
  return AFC_GUARD({
    AFC_CHECK(out, AFC_ERR_INVALID_ARGUMENT, "out is NULL");
    AFC_CHECK(kind == AFC_OPTIM_SGD || kind == AFC_OPTIM_ADAMW, AFC_ERR_INVALID_ARGUMENT,
              "optimizer kind %d is unknown: expected 0 (SGD) or 1 (AdamW)", kind);
    AFC_CHECK(std::isfinite(momentum) && momentum >= 0 && momentum < 1, AFC_ERR_INVALID_ARGUMENT,
              "momentum %g is invalid: expected a value in [0, 1)", momentum);
    AFC_CHECK(std::isfinite(weight_decay) && weight_decay >= 0, AFC_ERR_INVALID_ARGUMENT,
              "weight_decay %g is invalid: expected a non-negative number", weight_decay);
    if (kind == AFC_OPTIM_ADAMW) {
      AFC_CHECK(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1, AFC_ERR_INVALID_ARGUMENT,
                "betas (%g, %g) are invalid: expected values in [0, 1)", beta1, beta2);
      AFC_CHECK(std::isfinite(eps) && eps >= 0, AFC_ERR_INVALID_ARGUMENT,
                "eps %g is invalid: expected a non-negative number", eps);
    }
    auto *o = new afc_optim;
    o->cfg = afc::OptimConfig{kind, momentum, beta1, beta2, eps, weight_decay};
    *out = o;
  });
}

AFC_API void afc_optim_destroy(afc_optim_t *opt) { delete opt; }

AFC_API afc_status afc_optim_add(afc_optim_t *opt, int64_t count, int64_t *slot) {
  return AFC_GUARD({
    AFC_CHECK(opt && slot, AFC_ERR_INVALID_ARGUMENT, "opt or slot is NULL");
    AFC_CHECK(count >= 0, AFC_ERR_INVALID_ARGUMENT, "count %lld is negative", (long long)count);
    opt->slots.emplace_back();
    opt->slots.back().init(opt->cfg, count);
    *slot = (int64_t)opt->slots.size() - 1;
  });
}

AFC_API afc_status afc_optim_step(afc_optim_t *opt, int64_t slot, float *param, const float *grad,
                                  int64_t count, double lr, float grad_scale) {
  return AFC_GUARD({
    afc::OptimState &st = slot_of(opt, slot);
    const int64_t size = st.count;
    AFC_CHECK(count == size, AFC_ERR_SHAPE,
              "count %lld does not match slot %lld's %lld elements", (long long)count,
              (long long)slot, (long long)size);
    AFC_CHECK(std::isfinite(lr) && lr >= 0 && std::isfinite(grad_scale), AFC_ERR_INVALID_ARGUMENT,
              "lr %g or grad_scale %g is invalid: expected finite values, lr ≥ 0", lr, grad_scale);
    AFC_CHECK(count == 0 || (param && grad), AFC_ERR_INVALID_ARGUMENT, "param or grad is NULL");
    afc::optim_update(opt->cfg, st, param, grad, count, lr, grad_scale);
  });
}

AFC_API afc_status afc_optim_state_read(const afc_optim_t *opt, int64_t slot, int32_t which,
                                        int64_t offset, float *dst, int64_t count) {
  return AFC_GUARD({
    auto &b = state_range(slot_of(const_cast<afc_optim_t *>(opt), slot), which, offset, count);
    AFC_CHECK(count == 0 || dst, AFC_ERR_INVALID_ARGUMENT, "dst is NULL");
    std::copy(b.begin() + offset, b.begin() + offset + count, dst);
  });
}

AFC_API afc_status afc_optim_state_write(afc_optim_t *opt, int64_t slot, int32_t which,
                                         int64_t offset, const float *src, int64_t count) {
  return AFC_GUARD({
    auto &b = state_range(slot_of(opt, slot), which, offset, count);
    AFC_CHECK(count == 0 || src, AFC_ERR_INVALID_ARGUMENT, "src is NULL");
    std::copy(src, src + count, b.begin() + offset);
  });
}

AFC_API afc_status afc_optim_steps_read(const afc_optim_t *opt, int64_t slot, int64_t *steps) {
  return AFC_GUARD({
    AFC_CHECK(steps, AFC_ERR_INVALID_ARGUMENT, "steps is NULL");
    *steps = slot_of(const_cast<afc_optim_t *>(opt), slot).steps;
  });
}

AFC_API afc_status afc_optim_steps_write(afc_optim_t *opt, int64_t slot, int64_t steps) {
  return AFC_GUARD({
    AFC_CHECK(steps >= 0, AFC_ERR_INVALID_ARGUMENT, "steps %lld is negative", (long long)steps);
    slot_of(opt, slot).steps = steps;
  });
}

AFC_API afc_status afc_optim_sum_squares(const float *x, int64_t n, double *out) {
  return AFC_GUARD({
    AFC_CHECK(out && n >= 0 && (n == 0 || x), AFC_ERR_INVALID_ARGUMENT,
              "out or x is NULL, or n %lld is negative", (long long)n);
    *out = afc::sum_squares(x, n);
  });
}

AFC_API afc_status afc_optim_clip_coef(double sum_squares, float grad_scale, float max_norm,
                                       float *coef) {
  return AFC_GUARD({
    AFC_CHECK(coef, AFC_ERR_INVALID_ARGUMENT, "coef is NULL");
    AFC_CHECK(max_norm > 0, AFC_ERR_INVALID_ARGUMENT, "max_norm %g is not positive", max_norm);
    const double norm = std::fabs((double)grad_scale) * std::sqrt(sum_squares);
    AFC_CHECK(std::isfinite(norm), AFC_ERR_NUMERIC,
              "gradient norm is not finite (%g): the step cannot be clipped", norm);
    const double c = max_norm / (norm + 1e-6);
    *coef = static_cast<float>(c < 1.0 ? c : 1.0);
  });
}

}  // extern "C"
