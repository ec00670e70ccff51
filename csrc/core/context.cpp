#include "core/context.h"

#include <omp.h>

#include "core/error.h"

extern "C" void openblas_set_num_threads(int);

namespace afc {
void enter(const afc_context *ctx) {
  if (omp_get_max_threads() != ctx->threads) omp_set_num_threads(ctx->threads);
}
}  // namespace afc

extern "C" {

AFC_API afc_status afc_context_create(int32_t backend, int32_t num_threads, afc_context_t **out) {
  return AFC_GUARD({
    AFC_CHECK(out != nullptr, AFC_ERR_INVALID_ARGUMENT, "out is NULL");
    AFC_CHECK(num_threads >= 0, AFC_ERR_INVALID_ARGUMENT,
              "num_threads %d is negative: expected 0 (all cores) or a positive count", num_threads);
    if (backend == AFC_BACKEND_CUDA)
      AFC_FAIL(AFC_ERR_UNSUPPORTED, "backend CUDA (1) is not built into this library: use AFC_BACKEND_CPU (0)");
    AFC_CHECK(backend == AFC_BACKEND_CPU, AFC_ERR_INVALID_ARGUMENT,
              "backend %d is unknown: expected 0 (CPU) or 1 (CUDA)", backend);
    auto *ctx = new afc_context;
    ctx->backend = backend;
    ctx->threads = num_threads > 0 ? num_threads : omp_get_num_procs();
    ctx->engine = dnnl::engine(dnnl::engine::kind::cpu, 0);
    ctx->stream = dnnl::stream(ctx->engine);
    openblas_set_num_threads(1);  // see cpu/gemm.h
    *out = ctx;
  });
}

AFC_API void afc_context_destroy(afc_context_t *ctx) { delete ctx; }

AFC_API afc_status afc_context_threads(const afc_context_t *ctx, int32_t *out) {
  return AFC_GUARD({
    AFC_CHECK(ctx && out, AFC_ERR_INVALID_ARGUMENT, "ctx or out is NULL");
    *out = ctx->threads;
  });
}

}  // extern "C"
