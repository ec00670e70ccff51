#include "cpu/gemm.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>

namespace afc::cpu {

namespace {

void sgemm_serial(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                  const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)m, (int)n,
              (int)k, alpha, a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
}

}  // namespace

void sgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
           const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  const int threads = omp_get_max_threads();
  // Below ~1 MFLOP a split costs more than it saves.
  if (threads == 1 || m * n * k < (1 << 20)) return sgemm_serial(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  const bool by_columns = n >= m;
  const int64_t extent = by_columns ? n : m;
  // Panels a multiple of 16 wide keep OpenBLAS's vector kernels on full registers.
  const int64_t panel = ((extent + threads - 1) / threads + 15) / 16 * 16;
#pragma omp parallel for schedule(static)
  for (int64_t start = 0; start < extent; start += panel) {
    const int64_t len = std::min(panel, extent - start);
    if (by_columns)  // columns [start, start+len) of op(B) and C
      sgemm_serial(ta, tb, m, len, k, alpha, a, lda, tb ? b + start * ldb : b + start, ldb, beta, c + start, ldc);
    else  // rows [start, start+len) of op(A) and C
      sgemm_serial(ta, tb, len, n, k, alpha, ta ? a + start : a + start * lda, lda, b, ldb, beta,
                   c + start * ldc, ldc);
  }
}

}  // namespace afc::cpu
