#include "core/backbone.h"

namespace afc {

namespace {

struct Builder {
  Backbone &b;

  int tensor(const std::string &name, std::vector<int64_t> shape, bool is_param, bool trainable) {
    TensorSpec t;
    t.name = name;
    t.shape = std::move(shape);
    t.is_param = is_param;
    t.trainable = trainable;
    t.numel = 1;
    for (int64_t d : t.shape) t.numel *= d;
    b.tensors.push_back(t);
    return (int)b.tensors.size() - 1;
  }
  int act(int64_t c, int64_t h, int64_t w) {
    b.acts.push_back({c, h, w});
    return (int)b.acts.size() - 1;
  }
  // Conv2d(bias=False), "same" padding k/2 unless given.
  int conv(const std::string &name, int src, int64_t oc, int k, int stride, int pad, int groups) {
    const ActSpec in = b.acts[src];
    OpSpec op{OpKind::Conv};
    op.src = src;
    op.kernel = k, op.stride = stride, op.pad = pad, op.groups = groups;
    op.weight = tensor(name + ".weight", {oc, in.c / groups, k, k}, true, true);
    int64_t oh = (in.h + 2 * pad - k) / stride + 1, ow = (in.w + 2 * pad - k) / stride + 1;
    op.dst = act(oc, oh, ow);
    b.ops.push_back(op);
    return op.dst;
  }
  int bn(const std::string &name, int src) {
    const ActSpec in = b.acts[src];
    OpSpec op{OpKind::BatchNorm};
    op.src = src;
    op.weight = tensor(name + ".weight", {in.c}, true, true);
    op.bias = tensor(name + ".bias", {in.c}, true, true);
    op.mean = tensor(name + ".running_mean", {in.c}, false, false);
    op.var = tensor(name + ".running_var", {in.c}, false, false);
    op.dst = act(in.c, in.h, in.w);
    b.ops.push_back(op);
    return op.dst;
  }
  int prelu(const std::string &name, int src) {
    const ActSpec in = b.acts[src];
    OpSpec op{OpKind::PReLU};
    op.src = src;
    op.weight = tensor(name + ".weight", {in.c}, true, true);
    op.dst = act(in.c, in.h, in.w);
    b.ops.push_back(op);
    return op.dst;
  }
  void add_into(int dst, int src) {
    OpSpec op{OpKind::AddInto};
    op.src = src, op.dst = dst;
    b.ops.push_back(op);
  }
  // flatten → [dropout] → Linear → BatchNorm1d (weight frozen at 1 for iresnet).
  void head(int src, const std::string &fc, bool fc_bias, const std::string &bn, bool bn_weight_trainable,
            bool dropout, int64_t nf) {
    HeadSpec &h = b.head;
    const ActSpec in = b.acts[src];
    h.src = src;
    h.in_features = in.c * in.h * in.w;
    h.num_features = nf;
    h.dropout = dropout;
    h.fc_weight = tensor(fc + ".weight", {nf, h.in_features}, true, true);
    h.fc_bias = fc_bias ? tensor(fc + ".bias", {nf}, true, true) : -1;
    h.bn_weight = tensor(bn + ".weight", {nf}, true, bn_weight_trainable);
    h.bn_bias = tensor(bn + ".bias", {nf}, true, true);
    h.bn_mean = tensor(bn + ".running_mean", {nf}, false, false);
    h.bn_var = tensor(bn + ".running_var", {nf}, false, false);
  }
};

void iresnet(Builder &g, const int (&layers)[4], int64_t nf) {
  int x = g.act(3, 112, 112);
  x = g.conv("conv1", x, 64, 3, 1, 1, 1);
  x = g.bn("bn1", x);
  x = g.prelu("prelu", x);
  int64_t inplanes = 64;
  const int64_t planes[4] = {64, 128, 256, 512};
  for (int l = 0; l < 4; l++) {
    for (int i = 0; i < layers[l]; i++) {
      const std::string p = "layer" + std::to_string(l + 1) + "." + std::to_string(i) + ".";
      const int stride = i == 0 ? 2 : 1;
      const int in = x;
      int y = g.bn(p + "bn1", in);
      y = g.conv(p + "conv1", y, planes[l], 3, 1, 1, 1);
      y = g.bn(p + "bn2", y);
      y = g.prelu(p + "prelu", y);
      y = g.conv(p + "conv2", y, planes[l], 3, stride, 1, 1);
      y = g.bn(p + "bn3", y);
      int identity = in;
      if (stride != 1 || inplanes != planes[l]) {
        identity = g.conv(p + "downsample.0", in, planes[l], 1, stride, 0, 1);
        identity = g.bn(p + "downsample.1", identity);
      }
      g.add_into(y, identity);
      inplanes = planes[l];
      x = y;
    }
  }
  x = g.bn("bn2", x);
  g.head(x, "fc", true, "features", false, true, nf);
}

// MobileFaceNet ConvBlock (conv → BN → PReLU) and LinearBlock (conv → BN).
int conv_block(Builder &g, const std::string &p, int x, int64_t oc, int k, int s, int pad, int groups) {
  x = g.conv(p + "layers.0", x, oc, k, s, pad, groups);
  x = g.bn(p + "layers.1", x);
  return g.prelu(p + "layers.2", x);
}
int linear_block(Builder &g, const std::string &p, int x, int64_t oc, int k, int s, int pad, int groups) {
  x = g.conv(p + "layers.0", x, oc, k, s, pad, groups);
  return g.bn(p + "layers.1", x);
}
int depth_wise(Builder &g, const std::string &p, int x, int64_t oc, bool residual, int stride, int64_t groups) {
  int y = conv_block(g, p + "layers.0.", x, groups, 1, 1, 0, 1);
  y = conv_block(g, p + "layers.1.", y, groups, 3, stride, 1, (int)groups);
  y = linear_block(g, p + "layers.2.", y, oc, 1, 1, 0, 1);
  if (residual) g.add_into(y, x);
  return y;
}
int residual(Builder &g, const std::string &p, int x, int64_t c, int blocks, int64_t groups) {
  for (int i = 0; i < blocks; i++) x = depth_wise(g, p + "layers." + std::to_string(i) + ".", x, c, true, 1, groups);
  return x;
}

void mobilefacenet(Builder &g, int64_t nf) {
  const int64_t s = 2;
  const int blocks[4] = {1, 4, 6, 2};
  int x = g.act(3, 112, 112);
  x = conv_block(g, "layers.0.", x, 64 * s, 3, 2, 1, 1);
  if (blocks[0] == 1)
    x = conv_block(g, "layers.1.", x, 64 * s, 3, 1, 1, 64);
  else
    x = residual(g, "layers.1.", x, 64 * s, blocks[0], 128);
  x = depth_wise(g, "layers.2.", x, 64 * s, false, 2, 128);
  x = residual(g, "layers.3.", x, 64 * s, blocks[1], 128);
  x = depth_wise(g, "layers.4.", x, 128 * s, false, 2, 256);
  x = residual(g, "layers.5.", x, 128 * s, blocks[2], 256);
  x = depth_wise(g, "layers.6.", x, 128 * s, false, 2, 512);
  x = residual(g, "layers.7.", x, 128 * s, blocks[3], 256);
  x = conv_block(g, "conv_sep.", x, 512, 1, 1, 0, 1);
  x = linear_block(g, "features.layers.0.", x, 512, 7, 1, 0, 512);
  g.head(x, "features.layers.2", false, "features.layers.3", true, false, nf);
}

}  // namespace

const char *backbone_names() { return "r18, r34, r50, r100, r200, r2060, mbf"; }

bool build_backbone(const std::string &name, int64_t num_features, Backbone *out) {
  Backbone b;
  b.name = name;
  Builder g{b};
  static const struct {
    const char *name;
    int layers[4];
  } resnets[] = {{"r18", {2, 2, 2, 2}},    {"r34", {3, 4, 6, 3}},     {"r50", {3, 4, 14, 3}},
                 {"r100", {3, 13, 30, 3}}, {"r200", {6, 26, 60, 6}}, {"r2060", {3, 128, 1024 - 128, 3}}};
  bool found = false;
  for (const auto &r : resnets)
    if (name == r.name) {
      iresnet(g, r.layers, num_features);
      b.init = InitKind::IResNet;
      found = true;
    }
  if (name == "mbf") {
    mobilefacenet(g, num_features);
    b.init = InitKind::MobileFaceNet;
    found = true;
  }
  if (!found) return false;
  // Arena placement: trainable parameters first, then frozen parameters and buffers.
  int64_t off = 0;
  for (auto &t : b.tensors)
    if (t.trainable) t.offset = off, off += t.numel;
  b.trainable_floats = off;
  for (auto &t : b.tensors)
    if (!t.trainable) t.offset = off, off += t.numel;
  b.total_floats = off;
  for (auto &t : b.tensors)
    if (t.is_param) b.param_count += t.numel;
  *out = std::move(b);
  return true;
}

}  // namespace afc
