// Optimizer rules shared by afc_optim_* (generic parameter arrays) and Partial FC (its
// shard): torch.optim.SGD and torch.optim.AdamW, one array at a time.
#pragma once

#include <cstdint>
#include <vector>

namespace afc {

struct OptimConfig {
  int32_t kind = 0;  // AFC_OPTIM_SGD or AFC_OPTIM_ADAMW
  double momentum = 0.9, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
};

// The state of one parameter array: momentum buffer / exp_avg (m), exp_avg_sq (v).
struct OptimState {
  std::vector<float> m, v;
  int64_t steps = 0;
  int64_t count = 0;
  void init(const OptimConfig &cfg, int64_t count);
  // Sizes the state for `cfg` and `count` values, keeping buffers and the step count that
  // were restored (from a checkpoint) before the first update.
  void prepare(const OptimConfig &cfg, int64_t count);
  std::vector<float> &buffer(int32_t which);  // fails for a buffer this rule lacks
};

// param (count floats) -= update(grad · grad_scale); advances state.steps.
void optim_update(const OptimConfig &cfg, OptimState &state, float *param, const float *grad,
                  int64_t count, double lr, float grad_scale);

// Sum of squares in double precision (global-norm clipping).
double sum_squares(const float *x, int64_t n);

}  // namespace afc

struct afc_optim {
  afc::OptimConfig cfg;
  std::vector<afc::OptimState> slots;
};
