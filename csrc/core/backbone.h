// Backbone definitions: arcface_torch's iresnet and MobileFaceNet as a flat list of layers
// over numbered activations, with every state-dict tensor named and placed in the
// parameter arena. Pure description: no memory, no oneDNN.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace afc {

// One state-dict entry. Trainable parameters come first in the arena (so their gradients
// form one contiguous block); frozen parameters and buffers follow.
struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  bool is_param = true;    // false: a buffer (running_mean / running_var)
  bool trainable = true;
  int64_t numel = 0;
  int64_t offset = 0;      // floats into the parameter arena (and the gradient arena when trainable)
};

// An activation: C×H×W per image.
struct ActSpec {
  int64_t c, h, w;
};

enum class OpKind { Conv, BatchNorm, PReLU, AddInto };

// One layer. Conv: src→dst, weight; BatchNorm: src→dst, weight/bias/running mean/var;
// PReLU: src→dst, weight; AddInto: dst += src (the residual sum, in place).
struct OpSpec {
  OpKind kind;
  int src = -1, dst = -1;
  int kernel = 1, stride = 1, pad = 0, groups = 1;  // Conv
  int weight = -1, bias = -1, mean = -1, var = -1;  // tensor indices
};

// The head after the last 2-D activation: flatten → dropout → fc → BatchNorm1d.
struct HeadSpec {
  int src = -1;                        // activation flattened (PyTorch order C, H, W)
  int64_t in_features = 0, num_features = 0;
  bool dropout = false;                // iresnet applies dropout, MobileFaceNet has none
  int fc_weight = -1, fc_bias = -1;    // fc_bias -1: Linear(bias=False)
  int bn_weight = -1, bn_bias = -1, bn_mean = -1, bn_var = -1;
};

enum class InitKind { IResNet, MobileFaceNet };

struct Backbone {
  std::string name;
  InitKind init = InitKind::IResNet;
  std::vector<TensorSpec> tensors;  // state-dict order
  std::vector<ActSpec> acts;        // acts[0] is the 3×112×112 input
  std::vector<OpSpec> ops;          // forward order
  HeadSpec head;
  int64_t param_count = 0;          // every nn.Parameter, frozen ones included (PyTorch's count)
  int64_t trainable_floats = 0;     // size of the gradient arena
  int64_t total_floats = 0;         // size of the parameter arena
};

// The backbone names accepted, comma separated, for error messages.
const char *backbone_names();

// Builds backbone `name`; returns false when the name is unknown.
bool build_backbone(const std::string &name, int64_t num_features, Backbone *out);

}  // namespace afc
