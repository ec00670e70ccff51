// Partial FC V2 (arcface_torch partial_fc_v2.py) on the CPU: this rank's shard of class
// centres, per-step sampling, the margin softmax cross-entropy across ranks and the shard's
// optimizer state. Shapes: n local rows, B global rows (all ranks), S used centres, D features.
//
// Forward:  E (B×D) all-gathered, L (B) all-gathered; e = E/|E|, w = W[index]/|W[index]|;
//           cos = clamp(e·wᵀ, −1, 1) (B×S); z = margin(cos); p = softmax over all ranks' z
//           (all-reduce max, then sum); loss = −mean_B log max(p_target, 1e−30).
// Backward: dz = (p − onehot)/B; dcos = margin'(dz); de = dcos·w; dw = dcosᵀ·e; through the
//           normalisations; dE all-reduced and this rank's rows scaled by W (AllGatherFunc).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "core/context.h"
#include "core/error.h"
#include "cpu/gemm.h"
#include "cpu/margin.h"
#include "cpu/optimizer.h"
#include "dist/comm.h"

namespace {

// splitmix64: one 64-bit word of state, so it is easy to save and restore.
inline uint64_t next_u64(uint64_t &s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
inline double next_unit(uint64_t &s) { return ((next_u64(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0); }

constexpr float kNormEps = 1e-12f;  // F.normalize's eps

// y = x/max(|x|, eps) for `rows` rows of d; inv[i] = 1/max(|x|, eps), clamped[i] when eps won.
void normalize_rows(const float *x, int64_t rows, int64_t d, float *y, float *inv, uint8_t *clamped) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < rows; i++) {
    double ss = 0.0;
    for (int64_t k = 0; k < d; k++) ss += (double)x[i * d + k] * x[i * d + k];
    const float norm = (float)std::sqrt(ss);
    clamped[i] = norm < kNormEps;
    inv[i] = 1.0f / std::max(norm, kNormEps);
    for (int64_t k = 0; k < d; k++) y[i * d + k] = x[i * d + k] * inv[i];
  }
}

// In place: dy → dx for y = x/|x|: (dy − y·(y·dy))/|x|, or dy/eps where the clamp held.
void normalize_backward(const float *y, const float *inv, const uint8_t *clamped, int64_t rows,
                        int64_t d, float *g) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < rows; i++) {
    float *gi = g + i * d;
    const float *yi = y + i * d;
    if (clamped[i]) {
      for (int64_t k = 0; k < d; k++) gi[k] *= inv[i];
      continue;
    }
    double dot = 0.0;
    for (int64_t k = 0; k < d; k++) dot += (double)yi[k] * gi[k];
    const float fd = (float)dot;
    for (int64_t k = 0; k < d; k++) gi[k] = (gi[k] - yi[k] * fd) * inv[i];
  }
}

}  // namespace

struct afc_pfc {
  afc_context *ctx = nullptr;
  std::unique_ptr<afc::Comm> own_comm;
  afc::Comm *comm = nullptr;
  afc::Margin margin;
  afc::OptimState state;
  int64_t num_classes = 0, class_start = 0, num_local = 0, num_sample = 0, max_batch = 0;
  int64_t dim = 0, max_global = 0, max_used = 0;
  float sample_rate = 1.0f;
  uint64_t rng = 0;
  std::vector<float> weight, grad;                     // num_local×D
  std::vector<float> emb, emb_n, emb_inv, d_emb;       // max_global×D / max_global
  std::vector<float> w_n, w_inv, d_w;                  // max_used×D / max_used
  std::vector<float> cos, z;                           // max_global×max_used
  std::vector<float> row_max, row_sum, target_p;       // max_global
  std::vector<uint8_t> emb_clamped, w_clamped;
  std::vector<int64_t> counts, labels_pad, labels, index, scratch;
  std::vector<float> counts_f;
  int64_t used = 0;  // S of the last step
  bool sampled = false;
  afc::ErrorSlot error;  // forward_backward and step run on FFI worker threads
};

namespace {

// Picks the centres of this step: every positive plus random negatives up to num_sample
// (arcface_torch: top-k of uniform keys with positives forced first), then remaps labels.
void sample(afc_pfc *p, int64_t B) {
  int64_t *lab = p->labels.data();
  if (p->sample_rate >= 1.0f) {
    p->used = p->num_local;
    p->sampled = false;
    return;
  }
  std::vector<int64_t> &mark = p->scratch;  // per class: 1 when positive
  std::fill(mark.begin(), mark.end(), 0);
  int64_t positives = 0;
  for (int64_t i = 0; i < B; i++)
    if (lab[i] >= 0 && !mark[lab[i]]) mark[lab[i]] = 1, positives++;
  int64_t *idx = p->index.data();
  int64_t k = 0;
  if (p->num_sample >= positives) {
    // Partial Fisher–Yates over the negatives, in place at the tail of `index`.
    const int64_t want = p->num_sample - positives;
    int64_t *neg = idx + positives;
    int64_t nn = 0;
    for (int64_t c = 0; c < p->num_local; c++)
      if (!mark[c]) neg[nn++] = c;
    for (int64_t j = 0; j < want; j++) {
      const int64_t r = j + (int64_t)(next_unit(p->rng) * (double)(nn - j));
      std::swap(neg[j], neg[std::min(r, nn - 1)]);
      mark[neg[j]] = 2;
    }
  }
  for (int64_t c = 0; c < p->num_local; c++)
    if (mark[c]) idx[k++] = c;
  p->used = k;
  p->sampled = true;
  for (int64_t i = 0; i < B; i++)
    if (lab[i] >= 0) lab[i] = std::lower_bound(idx, idx + k, lab[i]) - idx;
}

void forward_backward(afc_pfc *p, const float *local_emb, const int64_t *local_labels, int64_t n,
                      bool accumulate, float *loss_out, float *d_local) {
  afc::Comm &comm = *p->comm;
  const int W = comm.world_size(), rank = comm.rank();
  const int64_t D = p->dim;

  // Gather sizes, embeddings and labels from every rank.
  int64_t nn = n;
  comm.all_gather(&nn, 1, p->counts.data());
  int64_t B = 0, offset = 0;
  for (int r = 0; r < W; r++) {
    AFC_CHECK(p->counts[r] >= 0 && p->counts[r] <= p->max_batch, AFC_ERR_SHAPE,
              "rank %d passed %lld rows: expected at most max_batch %lld", r,
              (long long)p->counts[r], (long long)p->max_batch);
    if (r < rank) offset += p->counts[r];
    B += p->counts[r];
  }
  std::vector<int64_t> elem_counts(W);
  for (int r = 0; r < W; r++) elem_counts[r] = p->counts[r] * D;
  comm.all_gather_v(local_emb, elem_counts.data(), p->emb.data());
  std::fill(p->labels_pad.begin(), p->labels_pad.begin() + p->max_batch, -1);
  std::copy(local_labels, local_labels + n, p->labels_pad.begin());
  comm.all_gather(p->labels_pad.data(), p->max_batch, p->labels_pad.data() + p->max_batch);
  for (int r = 0, i = 0; r < W; r++)
    for (int64_t j = 0; j < p->counts[r]; j++, i++) {
      const int64_t l = p->labels_pad[p->max_batch * (1 + r) + j];
      p->labels[i] = (l >= p->class_start && l < p->class_start + p->num_local) ? l - p->class_start : -1;
    }
  if (!accumulate) std::fill(p->grad.begin(), p->grad.end(), 0.0f);
  if (B == 0) {
    *loss_out = 0.0f;
    p->used = 0;
    return;
  }

  sample(p, B);
  const int64_t S = p->used;
  const int64_t *lab = p->labels.data();
  normalize_rows(p->emb.data(), B, D, p->emb_n.data(), p->emb_inv.data(), p->emb_clamped.data());
  if (S > 0) {
    if (p->sampled) {
      for (int64_t j = 0; j < S; j++)
        std::memcpy(p->d_w.data() + j * D, p->weight.data() + p->index[j] * D, sizeof(float) * D);
      normalize_rows(p->d_w.data(), S, D, p->w_n.data(), p->w_inv.data(), p->w_clamped.data());
    } else {
      normalize_rows(p->weight.data(), S, D, p->w_n.data(), p->w_inv.data(), p->w_clamped.data());
    }
    // cos (B×S) = e (B×D) · wᵀ
    afc::cpu::sgemm(false, true, B, S, D, 1.0f, p->emb_n.data(), D, p->w_n.data(), D, 0.0f, p->cos.data(), S);
  }
  float *z = p->z.data();
  p->margin.forward(p->cos.data(), lab, B, S, z);

  // Distributed softmax: global row max, then global row sum of exp.
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < B; i++) {
    float m = -INFINITY;
    for (int64_t j = 0; j < S; j++) m = std::max(m, z[i * S + j]);
    p->row_max[i] = m;
  }
  comm.all_reduce(p->row_max.data(), B, afc::ReduceOp::Max);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < B; i++) {
    double sum = 0.0;
    for (int64_t j = 0; j < S; j++) {
      z[i * S + j] = std::exp(z[i * S + j] - p->row_max[i]);
      sum += z[i * S + j];
    }
    p->row_sum[i] = (float)sum;
  }
  comm.all_reduce(p->row_sum.data(), B, afc::ReduceOp::Sum);
  const float inv_b = 1.0f / (float)B;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < B; i++) {
    const float inv = 1.0f / p->row_sum[i];
    p->target_p[i] = 0.0f;
    for (int64_t j = 0; j < S; j++) {
      const float prob = z[i * S + j] * inv;
      if (j == lab[i]) p->target_p[i] = prob;
      z[i * S + j] = (prob - (j == lab[i] ? 1.0f : 0.0f)) * inv_b;  // dL/dz
    }
  }
  comm.all_reduce(p->target_p.data(), B, afc::ReduceOp::Sum);
  double loss = 0.0;
  for (int64_t i = 0; i < B; i++) loss -= std::log(std::max(p->target_p[i], 1e-30f));
  *loss_out = (float)(loss / (double)B);

  // Through the margin (in place: z becomes dcos), then the GEMMs.
  p->margin.backward(p->cos.data(), lab, B, S, z, z);
  float *de = p->d_emb.data();
  if (S > 0) {
    afc::cpu::sgemm(false, false, B, D, S, 1.0f, z, S, p->w_n.data(), D, 0.0f, de, D);
    afc::cpu::sgemm(true, false, S, D, B, 1.0f, z, S, p->emb_n.data(), D, 0.0f, p->d_w.data(), D);
    normalize_backward(p->w_n.data(), p->w_inv.data(), p->w_clamped.data(), S, D, p->d_w.data());
  } else {
    std::fill(de, de + B * D, 0.0f);
  }
  normalize_backward(p->emb_n.data(), p->emb_inv.data(), p->emb_clamped.data(), B, D, de);
#pragma omp parallel for schedule(static)
  for (int64_t j = 0; j < S; j++) {
    float *dst = p->grad.data() + (p->sampled ? p->index[j] : j) * D;
    const float *src = p->d_w.data() + j * D;
    for (int64_t k = 0; k < D; k++) dst[k] += src[k];
  }
  // Every rank's contribution to each embedding, summed; ours scaled by W (AllGatherFunc).
  comm.all_reduce(de, B * D, afc::ReduceOp::Sum);
  const float wscale = (float)W;
  for (int64_t k = 0; k < n * D; k++) d_local[k] = de[offset * D + k] * wscale;
}

void check_rows(const afc_pfc *p, int64_t row, int64_t rows, int64_t count) {
  AFC_CHECK(row >= 0 && rows >= 0 && row + rows <= p->num_local, AFC_ERR_SHAPE,
            "rows [%lld, %lld) are outside the shard's %lld rows", (long long)row,
            (long long)(row + rows), (long long)p->num_local);
  AFC_CHECK(count == rows * p->dim, AFC_ERR_SHAPE,
            "count %lld does not match %lld rows of %lld features", (long long)count,
            (long long)rows, (long long)p->dim);
}

}  // namespace

extern "C" {

AFC_API afc_status afc_pfc_create(afc_context_t *ctx, struct afc_comm *comm,
                                  const afc_margin_t *margin, int64_t num_classes,
                                  int32_t embedding_size, float sample_rate, int64_t max_batch,
                                  uint64_t seed, afc_pfc_t **out) {
  return AFC_GUARD({
    AFC_CHECK(ctx && margin && out, AFC_ERR_INVALID_ARGUMENT, "ctx, margin or out is NULL");
    AFC_CHECK(num_classes > 0, AFC_ERR_INVALID_ARGUMENT,
              "num_classes %lld is invalid: expected a positive count", (long long)num_classes);
    AFC_CHECK(embedding_size > 0, AFC_ERR_INVALID_ARGUMENT,
              "embedding_size %d is invalid: expected a positive size", embedding_size);
    AFC_CHECK(sample_rate > 0.0f && sample_rate <= 1.0f, AFC_ERR_INVALID_ARGUMENT,
              "sample_rate %g is invalid: expected a value in (0, 1]", sample_rate);
    AFC_CHECK(max_batch > 0, AFC_ERR_INVALID_ARGUMENT,
              "max_batch %lld is invalid: expected a positive count", (long long)max_batch);
    AFC_CHECK(comm == nullptr || comm->impl, AFC_ERR_INVALID_ARGUMENT, "comm has no communicator");
    afc::enter(ctx);
    auto p = std::make_unique<afc_pfc>();
    p->ctx = ctx;
    if (comm) {
      p->comm = comm->impl.get();
    } else {
      p->own_comm = afc::make_local_comm();
      p->comm = p->own_comm.get();
    }
    const int64_t W = p->comm->world_size(), r = p->comm->rank();
    p->margin = margin->m;
    p->num_classes = num_classes;
    p->num_local = num_classes / W + (r < num_classes % W);
    p->class_start = num_classes / W * r + std::min(r, num_classes % W);
    p->dim = embedding_size;
    p->sample_rate = sample_rate;
    p->num_sample = (int64_t)((double)sample_rate * (double)p->num_local);
    p->max_batch = max_batch;
    p->max_global = max_batch * W;
    p->max_used = sample_rate >= 1.0f ? p->num_local
                                      : std::min(p->num_local, std::max(p->num_sample, p->max_global));
    const int64_t D = embedding_size, L = p->num_local, G = p->max_global, U = p->max_used;
    p->weight.resize(L * D);
    // Row c of the whole class table comes from its own stream: independent of the shard.
    for (int64_t i = 0; i < L; i++) {
      uint64_t s = seed ^ (0xD1B54A32D192ED03ull * (uint64_t)(p->class_start + i + 1));
      for (int64_t k = 0; k < D; k += 2) {
        const double u1 = next_unit(s), u2 = next_unit(s);
        const double rad = std::sqrt(-2.0 * std::log(u1)), ang = 2.0 * M_PI * u2;
        p->weight[i * D + k] = (float)(0.01 * rad * std::cos(ang));
        if (k + 1 < D) p->weight[i * D + k + 1] = (float)(0.01 * rad * std::sin(ang));
      }
    }
    p->grad.assign(L * D, 0.0f);
    p->rng = seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(r + 1));
    p->emb.resize(G * D);
    p->emb_n.resize(G * D);
    p->d_emb.resize(G * D);
    p->emb_inv.resize(G);
    p->emb_clamped.resize(G);
    p->w_n.resize(U * D);
    p->d_w.resize(U * D);
    p->w_inv.resize(U);
    p->w_clamped.resize(U);
    p->cos.resize(G * U);
    p->z.resize(G * U);
    p->row_max.resize(G);
    p->row_sum.resize(G);
    p->target_p.resize(G);
    p->counts.resize(W);
    p->labels_pad.resize(max_batch * (W + 1));
    p->labels.resize(G);
    p->index.resize(sample_rate >= 1.0f ? 0 : L);
    p->scratch.resize(sample_rate >= 1.0f ? 0 : L);
    *out = p.release();
  });
}

AFC_API void afc_pfc_destroy(afc_pfc_t *pfc) { delete pfc; }

AFC_API afc_status afc_pfc_shard(const afc_pfc_t *pfc, int64_t *class_start, int64_t *num_local) {
  return AFC_GUARD({
    AFC_CHECK(pfc && class_start && num_local, AFC_ERR_INVALID_ARGUMENT,
              "pfc, class_start or num_local is NULL");
    *class_start = pfc->class_start;
    *num_local = pfc->num_local;
  });
}

AFC_API afc_status afc_pfc_forward_backward(afc_pfc_t *pfc, const float *embeddings,
                                            const int64_t *labels, int64_t n, int32_t accumulate,
                                            float *loss, float *d_embeddings) {
  const afc_status status = AFC_GUARD({
    AFC_CHECK(pfc && loss, AFC_ERR_INVALID_ARGUMENT, "pfc or loss is NULL");
    AFC_CHECK(n >= 0 && n <= pfc->max_batch, AFC_ERR_SHAPE,
              "batch of %lld rows is invalid: expected 0..max_batch %lld", (long long)n,
              (long long)pfc->max_batch);
    AFC_CHECK(n == 0 || (embeddings && labels && d_embeddings), AFC_ERR_INVALID_ARGUMENT,
              "embeddings, labels or d_embeddings is NULL");
    for (int64_t i = 0; i < n; i++)
      AFC_CHECK(labels[i] >= 0 && labels[i] < pfc->num_classes, AFC_ERR_INVALID_ARGUMENT,
                "label %lld of row %lld is out of range: expected a class in [0, %lld)",
                (long long)labels[i], (long long)i, (long long)pfc->num_classes);
    afc::enter(pfc->ctx);
    float l = 0.0f;
    forward_backward(pfc, embeddings, labels, n, accumulate != 0, &l, d_embeddings);
    *loss = l;
  });
  return pfc ? pfc->error.keep(status) : status;
}

AFC_API afc_status afc_pfc_error(const afc_pfc_t *pfc, char *buf, int64_t capacity, int64_t *needed) {
  return AFC_GUARD({
    AFC_CHECK(pfc != nullptr, AFC_ERR_INVALID_ARGUMENT, "pfc is NULL");
    pfc->error.copy_to(buf, capacity, needed);
  });
}

AFC_API afc_status afc_pfc_zero_grad(afc_pfc_t *pfc) {
  return AFC_GUARD({
    AFC_CHECK(pfc, AFC_ERR_INVALID_ARGUMENT, "pfc is NULL");
    std::fill(pfc->grad.begin(), pfc->grad.end(), 0.0f);
  });
}

AFC_API afc_status afc_pfc_step(afc_pfc_t *pfc, const afc_optim_t *opt, double lr, float grad_scale) {
  const afc_status status = AFC_GUARD({
    AFC_CHECK(pfc && opt, AFC_ERR_INVALID_ARGUMENT, "pfc or opt is NULL");
    AFC_CHECK(std::isfinite(lr) && lr >= 0 && std::isfinite(grad_scale), AFC_ERR_INVALID_ARGUMENT,
              "lr %g or grad_scale %g is invalid: expected finite values, lr ≥ 0", lr, grad_scale);
    afc::enter(pfc->ctx);
    const int64_t count = (int64_t)pfc->weight.size();
    afc::OptimState &st = pfc->state;
    st.prepare(opt->cfg, count);
    afc::optim_update(opt->cfg, st, pfc->weight.data(), pfc->grad.data(), count, lr, grad_scale);
  });
  return pfc ? pfc->error.keep(status) : status;
}

AFC_API afc_status afc_pfc_weight_read(const afc_pfc_t *pfc, int64_t row, int64_t rows, float *dst,
                                       int64_t count) {
  return AFC_GUARD({
    AFC_CHECK(pfc && (count == 0 || dst), AFC_ERR_INVALID_ARGUMENT, "pfc or dst is NULL");
    check_rows(pfc, row, rows, count);
    std::copy_n(pfc->weight.data() + row * pfc->dim, count, dst);
  });
}

AFC_API afc_status afc_pfc_weight_write(afc_pfc_t *pfc, int64_t row, int64_t rows, const float *src,
                                        int64_t count) {
  return AFC_GUARD({
    AFC_CHECK(pfc && (count == 0 || src), AFC_ERR_INVALID_ARGUMENT, "pfc or src is NULL");
    check_rows(pfc, row, rows, count);
    std::copy_n(src, count, pfc->weight.data() + row * pfc->dim);
  });
}

AFC_API afc_status afc_pfc_grad_read(const afc_pfc_t *pfc, int64_t row, int64_t rows, float *dst,
                                     int64_t count) {
  return AFC_GUARD({
    AFC_CHECK(pfc && (count == 0 || dst), AFC_ERR_INVALID_ARGUMENT, "pfc or dst is NULL");
    check_rows(pfc, row, rows, count);
    std::copy_n(pfc->grad.data() + row * pfc->dim, count, dst);
  });
}

AFC_API afc_status afc_pfc_state_read(const afc_pfc_t *pfc, int32_t which, int64_t row, int64_t rows,
                                      float *dst, int64_t count) {
  return AFC_GUARD({
    AFC_CHECK(pfc && (count == 0 || dst), AFC_ERR_INVALID_ARGUMENT, "pfc or dst is NULL");
    check_rows(pfc, row, rows, count);
    // Before the first step (or for a rule without this buffer) the state is all zeros.
    const std::vector<float> &b = const_cast<afc_pfc_t *>(pfc)->state.buffer(which);
    if (b.empty()) std::fill_n(dst, count, 0.0f);
    else std::copy_n(b.data() + row * pfc->dim, count, dst);
  });
}

AFC_API afc_status afc_pfc_state_write(afc_pfc_t *pfc, int32_t which, int64_t row, int64_t rows,
                                       const float *src, int64_t count) {
  return AFC_GUARD({
    AFC_CHECK(pfc && (count == 0 || src), AFC_ERR_INVALID_ARGUMENT, "pfc or src is NULL");
    check_rows(pfc, row, rows, count);
    std::vector<float> &b = pfc->state.buffer(which);
    const size_t size = pfc->weight.size();
    if (b.size() != size) b.assign(size, 0.0f);  // restoring before the first step
    pfc->state.count = (int64_t)size;
    std::copy_n(src, count, b.data() + row * pfc->dim);
  });
}

AFC_API afc_status afc_pfc_counters_read(const afc_pfc_t *pfc, uint64_t *rng_state,
                                         int64_t *optim_steps) {
  return AFC_GUARD({
    AFC_CHECK(pfc && rng_state && optim_steps, AFC_ERR_INVALID_ARGUMENT,
              "pfc, rng_state or optim_steps is NULL");
    *rng_state = pfc->rng;
    *optim_steps = pfc->state.steps;
  });
}

AFC_API afc_status afc_pfc_counters_write(afc_pfc_t *pfc, uint64_t rng_state, int64_t optim_steps) {
  return AFC_GUARD({
    AFC_CHECK(pfc, AFC_ERR_INVALID_ARGUMENT, "pfc is NULL");
    AFC_CHECK(optim_steps >= 0, AFC_ERR_INVALID_ARGUMENT, "optim_steps %lld is negative",
              (long long)optim_steps);
    pfc->rng = rng_state;
    pfc->state.steps = optim_steps;
  });
}

AFC_API afc_status afc_pfc_sample_read(const afc_pfc_t *pfc, int64_t *index, int64_t capacity,
                                       int64_t *count) {
  return AFC_GUARD({
    AFC_CHECK(pfc && count, AFC_ERR_INVALID_ARGUMENT, "pfc or count is NULL");
    *count = pfc->used;
    if (capacity == 0 && index == nullptr) return;
    AFC_CHECK(index && capacity >= pfc->used, AFC_ERR_SHAPE,
              "capacity %lld is too small: %lld indices", (long long)capacity, (long long)pfc->used);
    for (int64_t j = 0; j < pfc->used; j++) index[j] = pfc->sampled ? pfc->index[j] : j;
  });
}

}  // extern "C"
