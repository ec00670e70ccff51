// The model API on the CPU: a backbone description (core/backbone.h) executed with the
// layers of cpu/layers.h over four arenas (parameters, gradients, activations, workspace),
// each one allocation made at creation.
//
// Activations live in one blocked layout (act_tag()) from the stem convolution to the last
// batch norm; the only reorders are the flatten before fc (and its gradient). The network
// input stays plain NCHW: the stem convolution reads it directly.
#include <sys/mman.h>
#include <sys/sysinfo.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <variant>

#include "core/backbone.h"
#include "core/context.h"
#include "core/error.h"
#include "cpu/layers.h"
#include "cpu/optimizer.h"
#include "dist/comm.h"
#include "dist/grad_reduce.h"

using namespace afc;
using namespace afc::cpu;

namespace {

constexpr float kEps = 1e-5f;
constexpr float kMomentum = 0.1f;
constexpr int64_t kAlign = 64;

int64_t round_up(int64_t v, int64_t a) { return (v + a - 1) / a * a; }

// One zero-filled, page-aligned mapping. Its pages are materialised on first touch, so the
// parts a run never uses (activation gradients during inference, the space of batches larger
// than the ones run) cost no resident memory.
struct Arena {
  float *ptr = nullptr;
  int64_t bytes = 0;
  void alloc(int64_t b, const char *what) {
    bytes = round_up(b > 0 ? b : kAlign, kAlign);
    // NORESERVE: a model made for training but used for inference never touches most of it.
    void *p = mmap(nullptr, (size_t)bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    AFC_CHECK(p != MAP_FAILED, AFC_ERR_OUT_OF_MEMORY, "cannot allocate the %s arena (%lld bytes)", what,
              (long long)bytes);
    ptr = static_cast<float *>(p);
  }
  // Gives the pages back; they read as zeros when touched again.
  void release() const {
    if (ptr) madvise(ptr, (size_t)bytes, MADV_DONTNEED);
  }
  ~Arena() {
    if (ptr) munmap(ptr, (size_t)bytes);
  }
};

// Byte offsets inside the activation and workspace arenas (shared by every batch size).
struct Layout {
  std::vector<int64_t> act, dact;              // per activation: data, gradient
  // Eval forward keeps only the live activations: each sits in one of a few slots at the
  // start of the activation arena, so inference touches a fraction of it.
  std::vector<int64_t> eval_act;
  std::vector<int64_t> save;                   // per op (batch norm): saved mean, then variance
  int64_t flat = 0, dflat = 0, mask = 0, fc_out = 0, dfc_out = 0, bn_mean = 0, bn_invstd = 0;
  int64_t act_bytes = 0;
  // workspace
  std::vector<int64_t> w_fwd, w_bwd;           // per op (conv)
  std::vector<int64_t> w_bytes;                // per op: bytes of one weight copy
  std::vector<int64_t> fold_bias;              // per op (conv with a batch norm folded in): bias
  int64_t scratch = 0, scratch_bytes = 0, gw_blk = 0, gw_blk_bytes = 0, dtmp = 0, dtmp_bytes = 0, ptmp = 0;
  int64_t ws_bytes = 0;
};

using LayerVar = std::variant<std::monostate, Conv, BatchNorm, PReLU>;

// Primitives for one batch size.
struct Plan {
  int64_t n = 0;
  std::vector<LayerVar> layers;       // per op, on the training buffers
  // The same on the eval slots, with batch norms folded into the convolutions before them
  // (the batch norm's entry then holds std::monostate).
  std::vector<LayerVar> eval_layers;
  Arena eval_weights;  // folded weights in layouts of their own (touched only by eval)
  dnnl::reorder flat_fwd, flat_bwd, flat_eval;
  memory m_last, m_dlast, m_flat, m_dflat, m_last_eval;
};

}  // namespace

struct afc_model {
  afc_context *ctx = nullptr;
  Backbone spec;
  // Eval runs spec.ops rewired so that a convolution whose only reader is a batch norm
  // writes the batch norm's output, which then runs in place, or not at all where it is
  // folded into the convolution (fold[i]: op i is such a convolution); a PReLU runs in
  // place where its input has no other reader.
  std::vector<OpSpec> eval_ops;
  std::vector<char> fold;
  int64_t max_batch = 0;
  float dropout = 0;
  bool winograd = false;  // AFC_MODEL_WINOGRAD
  memory::format_tag tag = memory::format_tag::nChw16c;
  Arena params, grads, acts, work;
  Layout lay;
  std::map<int64_t, std::unique_ptr<Plan>> plans;
  // The workspace holds the convolution weights in the layouts of one plan: oneDNN may pick
  // other layouts for another batch size, so a change of plan re-prepares them too.
  bool weights_dirty = true;
  const Plan *prepared_for = nullptr;
  bool prepared_train = false;  // training and eval (folded) weights share the workspace
  int64_t trained_n = -1;  // batch of the last training forward, -1 when backward is not possible
  uint64_t seed = 0, dropout_counter = 0;
  std::vector<char> ready;  // backward: which activation gradients hold a value
  // grads_end_before[k]: where the gradients that ops 0..k-1 write end, in floats. Once the
  // backward pass has run the head and ops k and later, every gradient from there on is final.
  std::vector<int64_t> grads_end_before;
  // Optimizer state of the trainable parameters, which lie first in the parameter arena and
  // share their offsets with the gradient arena: one state array covers them all.
  afc::OptimState opt;
  afc::ErrorSlot error;  // forward, backward and step run on FFI worker threads

  float *P(int t) { return params.ptr + spec.tensors[t].offset; }
  float *G(int t) { return t >= 0 && spec.tensors[t].trainable ? grads.ptr + spec.tensors[t].offset : nullptr; }
  float *A(int64_t off) { return reinterpret_cast<float *>(reinterpret_cast<char *>(acts.ptr) + off); }
  float *W(int64_t off) { return reinterpret_cast<float *>(reinterpret_cast<char *>(work.ptr) + off); }
  md amd(int64_t n, int a) const {
    const ActSpec &s = spec.acts[a];
    return act_md(n, s.c, s.h, s.w, a == 0 ? memory::format_tag::nchw : tag);
  }
};

namespace {

int64_t act_bytes_of(const afc_model &m, int64_t n, int a) { return (int64_t)m.amd(n, a).get_size(); }

// Creates the primitive descriptors of every layer for batch n (no buffers yet).
std::unique_ptr<Plan> make_plan(afc_model &m, int64_t n) {
  auto p = std::make_unique<Plan>();
  p->n = n;
  const auto &eng = m.ctx->engine;
  p->layers.resize(m.spec.ops.size());
  for (size_t i = 0; i < m.spec.ops.size(); i++) {
    const OpSpec &op = m.spec.ops[i];
    switch (op.kind) {
      case OpKind::Conv: {
        Conv c;
        c.init(eng, m.amd(n, op.src), m.amd(n, op.dst), m.spec.acts[op.src].c, m.spec.acts[op.dst].c, op.kernel,
               op.stride, op.pad, op.groups);
        p->layers[i] = std::move(c);
        break;
      }
      case OpKind::BatchNorm: {
        BatchNorm b;
        b.init(eng, m.amd(n, op.src), kEps);
        p->layers[i] = std::move(b);
        break;
      }
      case OpKind::PReLU: {
        PReLU r;
        r.init(m.amd(n, op.src));
        p->layers[i] = std::move(r);
        break;
      }
      case OpKind::AddInto: break;
    }
  }
  p->eval_layers = p->layers;
  for (size_t i = 0; i < m.spec.ops.size(); i++)
    if (m.fold[i] && std::get<Conv>(p->eval_layers[i]).fold(eng, m.winograd))
      p->eval_layers[i + 1] = std::monostate{};
  return p;
}

// grads_end_before, for the all-reduce that overlaps the backward pass.
void plan_grads_end(afc_model &m) {
  const std::vector<OpSpec> &ops = m.spec.ops;
  m.grads_end_before.assign(ops.size() + 1, 0);
  for (size_t k = 0; k < ops.size(); k++) {
    int64_t end = m.grads_end_before[k];
    for (int t : {ops[k].weight, ops[k].bias}) {
      const TensorSpec *ts = t >= 0 ? &m.spec.tensors[t] : nullptr;
      if (ts && ts->trainable) end = std::max(end, ts->offset + ts->numel);
    }
    m.grads_end_before[k + 1] = end;
  }
}

// Which convolutions eval can fold the next batch norm into, and the eval op list, where
// a PReLU whose input has no other reader also runs in place (one activation slot fewer).
void plan_eval_ops(afc_model &m) {
  const Backbone &b = m.spec;
  std::vector<int> readers(b.acts.size(), 0);
  for (const OpSpec &op : b.ops) readers[op.src]++;
  readers[b.head.src]++;
  m.eval_ops = b.ops;
  std::vector<OpSpec> &ops = m.eval_ops;
  m.fold.assign(ops.size(), 0);
  for (size_t i = 0; i + 1 < ops.size(); i++) {
    const OpSpec &op = b.ops[i], &next = b.ops[i + 1];
    if (op.kind != OpKind::Conv || next.kind != OpKind::BatchNorm || next.src != op.dst || readers[op.dst] != 1)
      continue;
    m.fold[i] = 1;
    ops[i].dst = next.dst;
    ops[i + 1].src = next.dst;
  }
  for (size_t i = 0; i < ops.size(); i++) {
    const int from = ops[i].dst, to = ops[i].src;
    if (ops[i].kind != OpKind::PReLU || readers[b.ops[i].src] != 1 || from == b.head.src) continue;
    for (size_t k = i; k < ops.size(); k++) {  // later readers (and sums into it) use the input's slot
      if (ops[k].src == from) ops[k].src = to;
      if (ops[k].dst == from) ops[k].dst = to;
    }
  }
}

// Slots handed to activations by liveness: a slot given back is reused before a new one.
struct SlotPool {
  std::vector<int> slot, free;
  int count = 0;
  explicit SlotPool(int acts) : slot(acts, -1) {}
  void take(int a) {
    if (slot[a] >= 0) return;
    if (free.empty()) {
      slot[a] = count++;
    } else {
      slot[a] = free.back();
      free.pop_back();
    }
  }
  void give_back(int a) { free.push_back(slot[a]); }
  // Byte offset of each activation's slot (slot 0 for one that never got a slot).
  std::vector<int64_t> offsets(int64_t base, int64_t stride) const {
    std::vector<int64_t> out(slot.size());
    for (size_t a = 0; a < slot.size(); a++) out[a] = base + std::max(slot[a], 0) * stride;
    return out;
  }
};

// Assigns every activation an eval slot of `slot_bytes`: a slot is taken when an op first
// writes the activation and given back after its last reader.
void plan_eval_slots(afc_model &m, int64_t slot_bytes, int64_t region_bytes) {
  const Backbone &b = m.spec;
  const std::vector<OpSpec> &eval_ops = m.eval_ops;
  const int ops = (int)eval_ops.size();
  std::vector<int> last(b.acts.size(), -1);
  for (int i = 0; i < ops; i++) {
    last[eval_ops[i].src] = i;
    if (eval_ops[i].kind == OpKind::AddInto) last[eval_ops[i].dst] = i;
  }
  last[b.head.src] = ops;  // the head reads the last activation after every op
  SlotPool pool((int)b.acts.size());
  pool.take(0);  // the input
  for (int i = 0; i < ops; i++) {
    const OpSpec &op = eval_ops[i];
    pool.take(op.dst);
    if (last[op.src] == i) pool.give_back(op.src);
    if (op.dst != op.src && last[op.dst] == i) pool.give_back(op.dst);
  }
  const int64_t stride = round_up(slot_bytes, kAlign);
  AFC_CHECK(pool.count * stride <= region_bytes, AFC_ERR_INTERNAL, "%d eval slots of %lld bytes exceed %lld",
            pool.count, (long long)stride, (long long)region_bytes);
  m.lay.eval_act = pool.offsets(0, stride);
}

// Places the activation gradients: backward needs a gradient from its first writer (the
// last consumer, going backwards) to its producer, so a few slots of `slot_bytes` serve them
// all. Returns the offset of each activation's gradient.
template <class Take>
std::vector<int64_t> grad_slots(afc_model &m, int64_t slot_bytes, Take &&take_bytes) {
  const Backbone &b = m.spec;
  SlotPool pool((int)b.acts.size());
  pool.take(b.head.src);  // written first, by the flatten's backward
  for (int k = (int)b.ops.size() - 1; k >= 0; k--) {
    const OpSpec &op = b.ops[k];
    pool.take(op.dst);
    pool.take(op.src);
    // The producer of dst is its gradient's last reader.
    if (op.kind != OpKind::AddInto) pool.give_back(op.dst);
  }
  const int64_t stride = round_up(slot_bytes, kAlign);
  return pool.offsets(take_bytes(pool.count * stride), stride);
}

// Sizes the activation and workspace arenas from the max-batch plan.
void make_layout(afc_model &m, const Plan &p) {
  Layout &L = m.lay;
  const Backbone &b = m.spec;
  const int64_t N = m.max_batch;
  int64_t off = 0;
  auto take = [&](int64_t bytes) {
    const int64_t o = off;
    off += round_up(bytes, kAlign);
    return o;
  };
  L.act.resize(b.acts.size());
  int64_t max_act = 0;
  int64_t max_c = b.head.num_features;
  for (size_t a = 0; a < b.acts.size(); a++) {
    const int64_t bytes = act_bytes_of(m, N, (int)a);
    L.act[a] = take(bytes);
    max_act = std::max(max_act, bytes);
    max_c = std::max(max_c, b.acts[a].c);
  }
  plan_eval_slots(m, max_act, off);
  L.dact = grad_slots(m, max_act, take);
  L.save.assign(b.ops.size(), 0);
  for (size_t i = 0; i < b.ops.size(); i++)
    if (b.ops[i].kind == OpKind::BatchNorm) L.save[i] = take(2 * b.acts[b.ops[i].src].c * sizeof(float));
  const int64_t K = b.head.in_features, F = b.head.num_features;
  L.flat = take(N * K * 4);
  L.dflat = take(N * K * 4);
  L.mask = take(N * K);
  L.fc_out = take(N * F * 4);
  L.dfc_out = take(N * F * 4);
  L.bn_mean = take(F * 4);
  L.bn_invstd = take(F * 4);
  L.act_bytes = off;

  off = 0;
  L.w_fwd.assign(b.ops.size(), -1);
  L.w_bwd.assign(b.ops.size(), -1);
  L.w_bytes.assign(b.ops.size(), 0);
  L.fold_bias.assign(b.ops.size(), -1);
  int64_t scratch = 0, gw = 0;
  for (size_t i = 0; i < b.ops.size(); i++) {
    if (const Conv *c = std::get_if<Conv>(&p.layers[i])) {
      L.w_bytes[i] = c->weights_bytes();
      L.w_fwd[i] = take(L.w_bytes[i]);
      if (c->bwd_weights_differ()) L.w_bwd[i] = take(L.w_bytes[i]);
      if (m.fold[i]) L.fold_bias[i] = take(b.acts[b.ops[i].dst].c * 4);
      scratch = std::max<int64_t>(
          {scratch, (int64_t)c->scratch_bytes(), (int64_t)std::get<Conv>(p.eval_layers[i]).scratch_bytes()});
      // The folded weights are computed in the weight-gradient buffer.
      gw = std::max<int64_t>({gw, (int64_t)c->dweights_bytes(), b.tensors[b.ops[i].weight].numel * 4});
    } else if (const BatchNorm *n = std::get_if<BatchNorm>(&p.layers[i])) {
      scratch = std::max<int64_t>(scratch, n->scratch_bytes());
    }
  }
  L.scratch_bytes = scratch;
  L.scratch = take(scratch);
  L.gw_blk_bytes = gw;
  L.gw_blk = take(gw);
  L.dtmp_bytes = max_act;
  L.dtmp = take(max_act);
  L.ptmp = take(2 * max_c * 4);
  L.ws_bytes = off;
}

// Puts the convolution weights into the layouts of plan p for training or eval (folded),
// unless they are there already.
void prepare_weights(afc_model &m, Plan &p, bool train) {
  if (!m.weights_dirty && m.prepared_for == &p && m.prepared_train == train) return;
  // Eval weights of one plan at a time: a training run keeps no copy it does not use.
  if (m.prepared_for && (m.prepared_for != &p || train)) m.prepared_for->eval_weights.release();
  for (auto &l : train ? p.layers : p.eval_layers)
    if (Conv *c = std::get_if<Conv>(&l)) c->prepare(m.ctx->stream);
  m.weights_dirty = false;
  m.prepared_for = &p;
  m.prepared_train = train;
}

// Attaches the arenas to layers of plan p, with activations at offsets `act`, and creates
// the primitives.
void bind_layers(afc_model &m, Plan &p, const std::vector<OpSpec> &ops, std::vector<LayerVar> &layers,
                 const std::vector<int64_t> &act) {
  const auto &eng = m.ctx->engine;
  const Layout &L = m.lay;
  int64_t eval_w = 0;  // bytes into p.eval_weights
  for (size_t i = 0; i < ops.size(); i++) {
    const OpSpec &op = ops[i];
    ActBufs a;
    if (op.kind != OpKind::AddInto) {
      a.src = m.A(act[op.src]);
      a.dst = m.A(act[op.dst]);
      a.dsrc = m.A(L.dact[op.src]);
      a.ddst = m.A(L.dact[op.dst]);
      a.dsrc_tmp = m.W(L.dtmp);
    }
    void *scratch = m.W(L.scratch);
    if (Conv *c = std::get_if<Conv>(&layers[i])) {
      AFC_CHECK((int64_t)c->weights_bytes() <= L.w_bytes[i] && (c->bwd_weights_differ() == (L.w_bwd[i] >= 0)) &&
                    (int64_t)c->scratch_bytes() <= L.scratch_bytes &&
                    (int64_t)c->dweights_bytes() <= L.gw_blk_bytes,
                AFC_ERR_INTERNAL, "batch %lld needs a workspace the model did not size for layer %zu",
                (long long)p.n, i);
      c->bind(eng, a, m.P(op.weight), m.G(op.weight), m.W(L.w_fwd[i]), L.w_bwd[i] >= 0 ? m.W(L.w_bwd[i]) : nullptr,
              m.W(L.gw_blk), scratch);
      if (c->folded) {
        const OpSpec &bn = ops[i + 1];
        c->bind_fold(eng, m.P(bn.weight), m.P(bn.bias), m.P(bn.mean), m.P(bn.var), kEps, m.W(L.fold_bias[i]),
                     m.W(L.gw_blk), reinterpret_cast<float *>(reinterpret_cast<char *>(p.eval_weights.ptr) + eval_w));
        eval_w += round_up(c->fold_weights_bytes(), kAlign);
      }
    } else if (BatchNorm *b = std::get_if<BatchNorm>(&layers[i])) {
      AFC_CHECK((int64_t)b->scratch_bytes() <= L.scratch_bytes, AFC_ERR_INTERNAL,
                "batch %lld needs more scratch than sized", (long long)p.n);
      const int64_t c = m.spec.acts[op.src].c;
      b->bind(eng, a, m.P(op.weight), m.P(op.bias), m.P(op.mean), m.P(op.var), m.G(op.weight), m.G(op.bias),
              m.A(L.save[i]), m.A(L.save[i]) + c, m.W(L.ptmp), scratch);
    } else if (PReLU *r = std::get_if<PReLU>(&layers[i])) {
      r->bind(a, m.P(op.weight), m.G(op.weight));
    }
  }
}

// Binds a plan's training and eval layers, and the flatten before the head.
void bind_plan(afc_model &m, Plan &p) {
  const auto &eng = m.ctx->engine;
  const Layout &L = m.lay;
  int64_t eval_weight_bytes = 0;
  for (auto &l : p.eval_layers)
    if (Conv *c = std::get_if<Conv>(&l)) eval_weight_bytes += round_up(c->fold_weights_bytes(), kAlign);
  p.eval_weights.alloc(eval_weight_bytes, "eval weight");
  bind_layers(m, p, m.spec.ops, p.layers, L.act);
  bind_layers(m, p, m.eval_ops, p.eval_layers, L.eval_act);
  // Flatten: blocked last activation ↔ plain n×(C·H·W) in PyTorch order.
  const HeadSpec &h = m.spec.head;
  const ActSpec &s = m.spec.acts[h.src];
  const md blk = m.amd(p.n, h.src), plain = act_md(p.n, s.c, s.h, s.w, memory::format_tag::nchw);
  p.m_last = memory(blk, eng, m.A(L.act[h.src]));
  p.m_dlast = memory(blk, eng, m.A(L.dact[h.src]));
  p.m_flat = memory(plain, eng, m.A(L.flat));
  p.m_dflat = memory(plain, eng, m.A(L.dflat));
  p.flat_fwd = dnnl::reorder(p.m_last, p.m_flat);
  p.m_last_eval = memory(blk, eng, m.A(L.eval_act[h.src]));
  p.flat_eval = dnnl::reorder(p.m_last_eval, p.m_flat);
  p.flat_bwd = dnnl::reorder(p.m_dflat, p.m_dlast);
}

Plan &plan_for(afc_model &m, int64_t n) {
  auto it = m.plans.find(n);
  if (it != m.plans.end()) return *it->second;
  auto p = make_plan(m, n);
  bind_plan(m, *p);
  Plan &ref = *p;
  m.plans[n] = std::move(p);
  return ref;
}

// arcface_torch initialisation. iresnet: conv N(0, 0.1); BN weight 1, bias 0; PReLU 0.25;
// fc as nn.Linear's default (U(±1/√fan_in) for weight and bias); features weight 1, bias 0.
// MobileFaceNet: conv and Linear kaiming_normal(fan_out, relu); BN 1 / 0; PReLU 0.25.
// Running statistics start at mean 0, variance 1.
void init_params(afc_model &m) {
  std::mt19937_64 rng(m.seed);
  const Backbone &b = m.spec;
  auto fill = [&](int t, float v) {
    float *p = m.P(t);
    for (int64_t i = 0; i < b.tensors[t].numel; i++) p[i] = v;
  };
  auto normal = [&](int t, float stddev) {
    std::normal_distribution<float> d(0.0f, stddev);
    float *p = m.P(t);
    for (int64_t i = 0; i < b.tensors[t].numel; i++) p[i] = d(rng);
  };
  auto uniform = [&](int t, float bound) {
    std::uniform_real_distribution<float> d(-bound, bound);
    float *p = m.P(t);
    for (int64_t i = 0; i < b.tensors[t].numel; i++) p[i] = d(rng);
  };
  auto bn = [&](int w, int bias, int mean, int var) {
    fill(w, 1.0f), fill(bias, 0.0f), fill(mean, 0.0f), fill(var, 1.0f);
  };
  for (const OpSpec &op : b.ops) {
    switch (op.kind) {
      case OpKind::Conv: {
        const auto &sh = b.tensors[op.weight].shape;
        if (b.init == InitKind::IResNet)
          normal(op.weight, 0.1f);
        else
          normal(op.weight, std::sqrt(2.0f / (float)(sh[0] * sh[2] * sh[3])));
        break;
      }
      case OpKind::BatchNorm: bn(op.weight, op.bias, op.mean, op.var); break;
      case OpKind::PReLU: fill(op.weight, 0.25f); break;
      case OpKind::AddInto: break;
    }
  }
  const HeadSpec &h = b.head;
  if (b.init == InitKind::IResNet) {
    const float bound = 1.0f / std::sqrt((float)h.in_features);
    uniform(h.fc_weight, bound);
    if (h.fc_bias >= 0) uniform(h.fc_bias, bound);
  } else {
    normal(h.fc_weight, std::sqrt(2.0f / (float)h.num_features));
    if (h.fc_bias >= 0) fill(h.fc_bias, 0.0f);
  }
  bn(h.bn_weight, h.bn_bias, h.bn_mean, h.bn_var);
}

// Activation bytes a training pass at batch n touches, without creating primitives
// (blocked channels padded): every activation, the gradient slots at most as many.
int64_t estimate_train_act_bytes(const Backbone &b, int64_t n) {
  int64_t total = 0;
  for (const ActSpec &a : b.acts) total += 2 * n * round_up(a.c, 16) * a.h * a.w * 4;
  return total + 2 * n * b.head.in_features * 5;
}

// Activation bytes an eval pass at batch n touches: a few slots of the largest activation.
int64_t estimate_eval_act_bytes(const Backbone &b, int64_t n) {
  int64_t largest = 0;
  for (const ActSpec &a : b.acts) largest = std::max(largest, n * round_up(a.c, 16) * a.h * a.w * 4);
  return 4 * largest + n * b.head.in_features * 4;
}

// Refuses work whose memory cannot fit this machine, naming what it would take.
void check_fits(const afc_model &m, int64_t n, bool train) {
  struct sysinfo si;
  if (sysinfo(&si) != 0) return;
  const int64_t phys = (int64_t)si.totalram * si.mem_unit;
  const Backbone &b = m.spec;
  const int64_t params = b.total_floats * 4, grads = train ? b.trainable_floats * 4 : 0;
  const int64_t acts = train ? estimate_train_act_bytes(b, n) : estimate_eval_act_bytes(b, n);
  const double GiB = 1073741824.0;
  AFC_CHECK(params + grads + acts < phys / 10 * 9, AFC_ERR_OUT_OF_MEMORY,
            "backbone \"%s\" has %lld parameters (%.1f M) and needs about %.2f GiB for %s at batch %lld "
            "(parameters %.2f GiB, gradients %.2f GiB, activations %.2f GiB) but this machine has %.2f GiB: use a "
            "smaller backbone or batch",
            b.name.c_str(), (long long)b.param_count, b.param_count / 1e6, (params + grads + acts) / GiB,
            train ? "training" : "inference", (long long)n, params / GiB, grads / GiB, acts / GiB, phys / GiB);
}

int find_tensor(const afc_model *m, const char *name) {
  AFC_CHECK(name != nullptr, AFC_ERR_INVALID_ARGUMENT, "tensor name is NULL");
  for (size_t i = 0; i < m->spec.tensors.size(); i++)
    if (m->spec.tensors[i].name == name) return (int)i;
  const char *hint = std::strstr(name, "num_batches_tracked")
                         ? " (num_batches_tracked is not kept: it does not affect the computation with momentum 0.1)"
                         : "";
  AFC_FAIL(AFC_ERR_NOT_FOUND, "tensor \"%s\" does not exist in backbone \"%s\"%s: afc_model_describe lists the names",
           name, m->spec.name.c_str(), hint);
}

void check_count(const afc_model *m, int t, int64_t count, const char *what) {
  const TensorSpec &s = m->spec.tensors[t];
  AFC_CHECK(count == s.numel, AFC_ERR_SHAPE, "%s \"%s\" holds %lld values, got a buffer of %lld", what,
            s.name.c_str(), (long long)s.numel, (long long)count);
}

std::string json_escape(const std::string &s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    o += c;
  }
  return o;
}


// The state buffer `which` of trainable tensor `t`, created (zeros) when it does not exist yet.
float *state_of(afc_model &m, int t, int32_t which) {
  const TensorSpec &s = m.spec.tensors[t];
  AFC_CHECK(s.trainable, AFC_ERR_INVALID_ARGUMENT, "tensor \"%s\" has no optimizer state: it is a %s",
            s.name.c_str(), s.is_param ? "frozen parameter" : "buffer");
  AFC_CHECK(which == 0 || which == 1, AFC_ERR_INVALID_ARGUMENT,
            "state %d is unknown: expected 0 (momentum / exp_avg) or 1 (exp_avg_sq)", which);
  std::vector<float> &buf = which == 0 ? m.opt.m : m.opt.v;
  if ((int64_t)buf.size() != m.spec.trainable_floats) buf.assign(m.spec.trainable_floats, 0.0f);
  m.opt.count = m.spec.trainable_floats;
  return buf.data() + s.offset;
}

// The backward pass; with `comm`, the parameter gradients are summed over its ranks on a
// second thread as the pass finishes them (afc_model_backward_all_reduce).
void backward(afc_model_t *m, const float *demb, int64_t n, float *d_input, int32_t accumulate, afc_comm_t *comm,
              int64_t bucket_elems, float scale) {
  AFC_CHECK(accumulate == 0 || accumulate == 1, AFC_ERR_INVALID_ARGUMENT, "accumulate %d must be 0 or 1",
            accumulate);
  AFC_CHECK(m->trained_n >= 0, AFC_ERR_STATE,
            "backward needs a training-mode forward first (the last forward was in eval mode, failed or "
            "did not happen)");
  AFC_CHECK(n == m->trained_n, AFC_ERR_SHAPE, "batch %lld differs from the training forward's batch %lld",
            (long long)n, (long long)m->trained_n);
  AFC_CHECK(demb != nullptr, AFC_ERR_INVALID_ARGUMENT, "d_embeddings is NULL");
  afc::enter(m->ctx);
  Plan &p = plan_for(*m, n);
  dnnl::stream &s = m->ctx->stream;
  const Layout &L = m->lay;
  const HeadSpec &h = m->spec.head;
  const int64_t K = h.in_features, F = h.num_features;
  const bool acc = accumulate == 1;
  std::optional<afc::OverlappedGradReduce> reduce;
  if (comm) reduce.emplace(*comm->untimed, m->grads.ptr, m->spec.trainable_floats, bucket_elems, scale);
  float *dfc = m->A(L.dfc_out);
  bn1d_backward(m->A(L.fc_out), demb, m->P(h.bn_weight), m->A(L.bn_mean), m->A(L.bn_invstd), dfc,
                m->G(h.bn_weight), m->G(h.bn_bias), n, F, acc);
  float *dflat = m->A(L.dflat);
  fc_backward(m->A(L.flat), m->P(h.fc_weight), dfc, dflat, m->G(h.fc_weight),
              h.fc_bias >= 0 ? m->G(h.fc_bias) : nullptr, n, K, F, acc);
  if (reduce) reduce->done_from(m->grads_end_before.back());
  if (m->dropout > 0) dropout_backward(dflat, reinterpret_cast<uint8_t *>(m->A(L.mask)), n * K, m->dropout);
  p.flat_bwd.execute(s, p.m_dflat, p.m_dlast);
  std::vector<char> &ready = m->ready;
  std::fill(ready.begin(), ready.end(), 0);
  ready[h.src] = 1;
  for (size_t k = m->spec.ops.size(); k-- > 0;) {
    const OpSpec &op = m->spec.ops[k];
    LayerVar &l = p.layers[k];
    const bool need = op.src != 0 || d_input != nullptr;
    const bool acc_src = ready[op.src] != 0;
    if (Conv *c = std::get_if<Conv>(&l)) c->backward(s, acc, need, acc_src);
    else if (BatchNorm *b = std::get_if<BatchNorm>(&l)) b->backward(s, acc, need, acc_src);
    else if (PReLU *r = std::get_if<PReLU>(&l)) r->backward(acc, need, acc_src);
    else {
      const int64_t count = act_bytes_of(*m, n, op.dst) / 4;
      if (acc_src) add_into(m->A(L.dact[op.src]), m->A(L.dact[op.dst]), count);
      else std::memcpy(m->A(L.dact[op.src]), m->A(L.dact[op.dst]), count * 4);
    }
    if (need) ready[op.src] = 1;
    if (reduce && m->grads_end_before[k] < m->grads_end_before[k + 1]) {
      s.wait();
      reduce->done_from(m->grads_end_before[k]);
    }
  }
  s.wait();
  if (reduce) {
    // Only the wait left after the last layer counts as time in collectives.
    const auto start = std::chrono::steady_clock::now();
    reduce->finish();
    comm->nanoseconds += (std::chrono::steady_clock::now() - start) / std::chrono::nanoseconds(1);
  }
  if (d_input) std::memcpy(d_input, m->A(L.dact[0]), sizeof(float) * n * 3 * 112 * 112);
}

}  // namespace

extern "C" {

AFC_API afc_status afc_model_create(afc_context_t *ctx, const char *name, int32_t num_features, float dropout,
                                    int32_t max_batch, int32_t flags, afc_model_t **out) {
  return AFC_GUARD({
    AFC_CHECK(ctx && out, AFC_ERR_INVALID_ARGUMENT, "ctx or out is NULL");
    AFC_CHECK(name != nullptr, AFC_ERR_INVALID_ARGUMENT, "backbone name is NULL: expected one of %s",
              backbone_names());
    AFC_CHECK(num_features > 0, AFC_ERR_INVALID_ARGUMENT, "num_features %d must be positive", num_features);
    AFC_CHECK(max_batch > 0, AFC_ERR_INVALID_ARGUMENT, "max_batch %d must be positive", max_batch);
    AFC_CHECK(dropout >= 0.0f && dropout < 1.0f, AFC_ERR_INVALID_ARGUMENT,
              "dropout %g is out of range: expected 0 <= dropout < 1", dropout);
    AFC_CHECK((flags & ~AFC_MODEL_WINOGRAD) == 0, AFC_ERR_INVALID_ARGUMENT,
              "flags %d has unknown bits: expected 0 or AFC_MODEL_WINOGRAD (1)", flags);
    afc::enter(ctx);
    auto m = std::make_unique<afc_model>();
    if (!build_backbone(name, num_features, &m->spec))
      AFC_FAIL(AFC_ERR_NOT_FOUND, "backbone \"%s\" is unknown: expected one of %s", name, backbone_names());
    // Refuse early (before any primitive exists) when even inference cannot fit; the arenas
    // are reserved, not touched, so a training pass is checked when it comes.
    check_fits(*m, max_batch, false);
    m->ctx = ctx;
    m->max_batch = max_batch;
    m->winograd = (flags & AFC_MODEL_WINOGRAD) != 0;
    m->dropout = m->spec.head.dropout ? dropout : 0.0f;
    m->tag = act_tag();
    plan_eval_ops(*m);
    plan_grads_end(*m);
    m->params.alloc(m->spec.total_floats * 4, "parameter");
    m->grads.alloc(m->spec.trainable_floats * 4, "gradient");
    init_params(*m);
    auto p = make_plan(*m, max_batch);
    make_layout(*m, *p);
    m->acts.alloc(m->lay.act_bytes, "activation");
    m->work.alloc(m->lay.ws_bytes, "workspace");
    bind_plan(*m, *p);
    m->plans[max_batch] = std::move(p);
    m->ready.assign(m->spec.acts.size(), 0);
    *out = m.release();
  });
}

AFC_API void afc_model_destroy(afc_model_t *model) { delete model; }

AFC_API afc_status afc_model_describe(const afc_model_t *m, char *buf, int64_t capacity, int64_t *needed) {
  return AFC_GUARD({
    AFC_CHECK(m != nullptr, AFC_ERR_INVALID_ARGUMENT, "model is NULL");
    AFC_CHECK(capacity >= 0 && (buf != nullptr || capacity == 0), AFC_ERR_INVALID_ARGUMENT,
              "buffer of %lld bytes is invalid", (long long)capacity);
    std::string j = "{\"name\":\"" + m->spec.name + "\",\"num_features\":" + std::to_string(m->spec.head.num_features) +
                    ",\"max_batch\":" + std::to_string(m->max_batch) +
                    ",\"parameters\":" + std::to_string(m->spec.param_count) +
                    ",\"trainable_parameters\":" + std::to_string(m->spec.trainable_floats) +
                    ",\"dropout\":" + std::to_string(m->dropout) + ",\"tensors\":[";
    for (size_t i = 0; i < m->spec.tensors.size(); i++) {
      const TensorSpec &t = m->spec.tensors[i];
      j += i ? ",{" : "{";
      j += "\"name\":\"" + json_escape(t.name) + "\",\"shape\":[";
      for (size_t d = 0; d < t.shape.size(); d++) j += (d ? "," : "") + std::to_string(t.shape[d]);
      j += std::string("],\"kind\":\"") + (t.is_param ? "parameter" : "buffer") +
           "\",\"trainable\":" + (t.trainable ? "true" : "false") + "}";
    }
    j += "],\"memory\":{\"parameters\":" + std::to_string(m->params.bytes) +
         ",\"gradients\":" + std::to_string(m->grads.bytes) + ",\"activations\":" + std::to_string(m->acts.bytes) +
         ",\"workspace\":" + std::to_string(m->work.bytes) +
         ",\"eval_weights\":" + std::to_string(m->plans.at(m->max_batch)->eval_weights.bytes) + "}";
    j += ",\"notes\":\"state-dict names and element order as arcface_torch; num_batches_tracked is not kept; "
         "initialised with seed 0 as arcface_torch does (iresnet: conv N(0,0.1), fc nn.Linear default; mbf: "
         "kaiming_normal fan_out); BatchNorm momentum 0.1, eps 1e-5\"}";
    const int64_t len = (int64_t)j.size() + 1;
    if (needed) *needed = len;
    if (capacity > 0) {
      const int64_t c = std::min(capacity - 1, len - 1);
      std::memcpy(buf, j.data(), c);
      buf[c] = '\0';
    }
  });
}

AFC_API afc_status afc_model_tensor_read(const afc_model_t *m, const char *name, float *dst, int64_t count) {
  return AFC_GUARD({
    AFC_CHECK(m != nullptr, AFC_ERR_INVALID_ARGUMENT, "model is NULL");
    const int t = find_tensor(m, name);
    check_count(m, t, count, "tensor");
    AFC_CHECK(dst != nullptr || count == 0, AFC_ERR_INVALID_ARGUMENT, "dst is NULL");
    if (count) std::memcpy(dst, m->params.ptr + m->spec.tensors[t].offset, count * 4);
  });
}

AFC_API afc_status afc_model_tensor_write(afc_model_t *m, const char *name, const float *src, int64_t count) {
  return AFC_GUARD({
    AFC_CHECK(m != nullptr, AFC_ERR_INVALID_ARGUMENT, "model is NULL");
    const int t = find_tensor(m, name);
    check_count(m, t, count, "tensor");
    AFC_CHECK(src != nullptr || count == 0, AFC_ERR_INVALID_ARGUMENT, "src is NULL");
    if (count) std::memcpy(m->params.ptr + m->spec.tensors[t].offset, src, count * 4);
    m->weights_dirty = true;
  });
}

AFC_API afc_status afc_model_grad_read(const afc_model_t *m, const char *name, float *dst, int64_t count) {
  return AFC_GUARD({
    AFC_CHECK(m != nullptr, AFC_ERR_INVALID_ARGUMENT, "model is NULL");
    const int t = find_tensor(m, name);
    const TensorSpec &s = m->spec.tensors[t];
    AFC_CHECK(s.trainable, AFC_ERR_INVALID_ARGUMENT, "tensor \"%s\" has no gradient: it is a %s", name,
              s.is_param ? "frozen parameter" : "buffer");
    check_count(m, t, count, "gradient of");
    AFC_CHECK(dst != nullptr || count == 0, AFC_ERR_INVALID_ARGUMENT, "dst is NULL");
    if (count) std::memcpy(dst, m->grads.ptr + s.offset, count * 4);
  });
}

AFC_API afc_status afc_model_forward(afc_model_t *m, const float *input, int64_t n, int32_t train, float *emb) {
  const afc_status status = AFC_GUARD({
    AFC_CHECK(m != nullptr, AFC_ERR_INVALID_ARGUMENT, "model is NULL");
    AFC_CHECK(n >= 0 && n <= m->max_batch, AFC_ERR_SHAPE,
              "batch %lld is out of range: expected 0 to max_batch %lld (create the model with a larger max_batch)",
              (long long)n, (long long)m->max_batch);
    AFC_CHECK(train == 0 || train == 1, AFC_ERR_INVALID_ARGUMENT, "train %d must be 0 or 1", train);
    m->trained_n = -1;
    if (n == 0) return;
    AFC_CHECK(input && emb, AFC_ERR_INVALID_ARGUMENT, "input or embeddings is NULL for batch %lld", (long long)n);
    const HeadSpec &h = m->spec.head;
    if (train) AFC_CHECK(n > 1, AFC_ERR_SHAPE,
                         "training mode needs a batch of at least 2 (BatchNorm1d of the embedding), got %lld: use "
                         "eval mode for single images", (long long)n);
    if (train) check_fits(*m, n, true);
    afc::enter(m->ctx);
    Plan &p = plan_for(*m, n);
    dnnl::stream &s = m->ctx->stream;
    const Layout &L = m->lay;
    prepare_weights(*m, p, train);
    const std::vector<int64_t> &act = train ? L.act : L.eval_act;
    const std::vector<OpSpec> &ops = train ? m->spec.ops : m->eval_ops;
    std::vector<LayerVar> &layers = train ? p.layers : p.eval_layers;
    std::memcpy(m->A(act[0]), input, sizeof(float) * n * 3 * 112 * 112);
    for (size_t i = 0; i < ops.size(); i++) {
      const OpSpec &op = ops[i];
      LayerVar &l = layers[i];
      if (Conv *c = std::get_if<Conv>(&l)) c->forward(s);
      else if (BatchNorm *b = std::get_if<BatchNorm>(&l)) b->forward(s, train, kMomentum);
      else if (PReLU *r = std::get_if<PReLU>(&l)) r->forward();
      else if (op.kind == OpKind::AddInto)
        add_into(m->A(act[op.dst]), m->A(act[op.src]), act_bytes_of(*m, n, op.dst) / 4);
      // else: a batch norm folded into the convolution before it
    }
    if (train)
      p.flat_fwd.execute(s, p.m_last, p.m_flat);
    else
      p.flat_eval.execute(s, p.m_last_eval, p.m_flat);
    s.wait();
    const int64_t K = h.in_features, F = h.num_features;
    float *flat = m->A(L.flat);
    if (train && m->dropout > 0)
      dropout_forward(flat, reinterpret_cast<uint8_t *>(m->A(L.mask)), n * K, m->dropout, m->seed,
                      m->dropout_counter++);
    float *fc_out = m->A(L.fc_out);
    fc_forward(flat, m->P(h.fc_weight), h.fc_bias >= 0 ? m->P(h.fc_bias) : nullptr, fc_out, n, K, F);
    bn1d_forward(fc_out, emb, m->P(h.bn_weight), m->P(h.bn_bias), m->P(h.bn_mean), m->P(h.bn_var),
                 m->A(L.bn_mean), m->A(L.bn_invstd), n, F, kEps, train, kMomentum);
    if (train) m->trained_n = n;
  });
  return m ? m->error.keep(status) : status;
}

AFC_API afc_status afc_model_backward(afc_model_t *m, const float *demb, int64_t n, float *d_input,
                                      int32_t accumulate) {
  const afc_status status = AFC_GUARD({
    AFC_CHECK(m != nullptr, AFC_ERR_INVALID_ARGUMENT, "model is NULL");
    backward(m, demb, n, d_input, accumulate, nullptr, 0, 1.0f);
  });
  return m ? m->error.keep(status) : status;
}

AFC_API afc_status afc_model_backward_all_reduce(afc_model_t *m, const float *demb, int64_t n, float *d_input,
                                                 int32_t accumulate, afc_comm_t *comm, int64_t bucket_elems,
                                                 float scale) {
  const afc_status status = AFC_GUARD({
    AFC_CHECK(m != nullptr, AFC_ERR_INVALID_ARGUMENT, "model is NULL");
    AFC_CHECK(comm && comm->untimed, AFC_ERR_INVALID_ARGUMENT, "comm is NULL");
    AFC_CHECK(bucket_elems >= 0, AFC_ERR_INVALID_ARGUMENT, "bucket_elems %lld is negative",
              (long long)bucket_elems);
    AFC_CHECK(!comm->reducing.exchange(true), AFC_ERR_STATE,
              "a gradient all-reduce is already running on this communicator with another backward pass");
    struct Done {
      std::atomic<bool> &flag;
      ~Done() { flag = false; }
    } done{comm->reducing};
    backward(m, demb, n, d_input, accumulate, comm, bucket_elems, scale);
  });
  return m ? m->error.keep(status) : status;
}

AFC_API afc_status afc_model_zero_grad(afc_model_t *m) {
  return AFC_GUARD({
    AFC_CHECK(m != nullptr, AFC_ERR_INVALID_ARGUMENT, "model is NULL");
    std::memset(m->grads.ptr, 0, m->grads.bytes);
  });
}

AFC_API afc_status afc_model_error(const afc_model_t *m, char *buf, int64_t capacity, int64_t *needed) {
  return AFC_GUARD({
    AFC_CHECK(m != nullptr, AFC_ERR_INVALID_ARGUMENT, "model is NULL");
    m->error.copy_to(buf, capacity, needed);
  });
}

AFC_API afc_status afc_model_grad_sum_squares(const afc_model_t *m, double *out) {
  return AFC_GUARD({
    AFC_CHECK(m && out, AFC_ERR_INVALID_ARGUMENT, "model or out is NULL");
    afc::enter(m->ctx);  // the caller's thread, with the model's thread count
    *out = afc::sum_squares(m->grads.ptr, m->spec.trainable_floats);
  });
}

AFC_API afc_status afc_model_step(afc_model_t *m, const afc_optim_t *opt, double lr, float grad_scale) {
  const afc_status status = AFC_GUARD({
    AFC_CHECK(m && opt, AFC_ERR_INVALID_ARGUMENT, "model or opt is NULL");
    AFC_CHECK(std::isfinite(lr) && lr >= 0 && std::isfinite(grad_scale), AFC_ERR_INVALID_ARGUMENT,
              "lr %g or grad_scale %g is invalid: expected finite values, lr >= 0", lr, grad_scale);
    afc::enter(m->ctx);
    m->opt.prepare(opt->cfg, m->spec.trainable_floats);
    afc::optim_update(opt->cfg, m->opt, m->params.ptr, m->grads.ptr, m->spec.trainable_floats, lr, grad_scale);
    m->weights_dirty = true;
  });
  return m ? m->error.keep(status) : status;
}

AFC_API afc_status afc_model_state_read(afc_model_t *m, const char *name, int32_t which, float *dst,
                                        int64_t count) {
  return AFC_GUARD({
    AFC_CHECK(m != nullptr, AFC_ERR_INVALID_ARGUMENT, "model is NULL");
    const int t = find_tensor(m, name);
    check_count(m, t, count, "optimizer state of");
    AFC_CHECK(dst != nullptr || count == 0, AFC_ERR_INVALID_ARGUMENT, "dst is NULL");
    const float *src = state_of(*m, t, which);
    if (count) std::memcpy(dst, src, count * 4);
  });
}

AFC_API afc_status afc_model_state_write(afc_model_t *m, const char *name, int32_t which, const float *src,
                                         int64_t count) {
  return AFC_GUARD({
    AFC_CHECK(m != nullptr, AFC_ERR_INVALID_ARGUMENT, "model is NULL");
    const int t = find_tensor(m, name);
    check_count(m, t, count, "optimizer state of");
    AFC_CHECK(src != nullptr || count == 0, AFC_ERR_INVALID_ARGUMENT, "src is NULL");
    float *dst = state_of(*m, t, which);
    if (count) std::memcpy(dst, src, count * 4);
  });
}

AFC_API afc_status afc_model_optim_steps_read(const afc_model_t *m, int64_t *steps) {
  return AFC_GUARD({
    AFC_CHECK(m && steps, AFC_ERR_INVALID_ARGUMENT, "model or steps is NULL");
    *steps = m->opt.steps;
  });
}

AFC_API afc_status afc_model_optim_steps_write(afc_model_t *m, int64_t steps) {
  return AFC_GUARD({
    AFC_CHECK(m != nullptr, AFC_ERR_INVALID_ARGUMENT, "model is NULL");
    AFC_CHECK(steps >= 0, AFC_ERR_INVALID_ARGUMENT, "steps %lld is negative", (long long)steps);
    m->opt.steps = steps;
  });
}

AFC_API afc_status afc_model_all_reduce_grads(afc_model_t *m, afc_comm_t *comm, int64_t bucket_elems,
                                              float scale) {
  if (m == nullptr) return AFC_GUARD({ AFC_FAIL(AFC_ERR_INVALID_ARGUMENT, "model is NULL"); });
  return m->error.keep(afc_comm_all_reduce_grads(comm, m->grads.ptr, m->spec.trainable_floats, bucket_elems, scale));
}

}  // extern "C"
