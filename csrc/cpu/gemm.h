// Row-major single-precision GEMM on the context's OpenMP threads.
//
// OpenBLAS keeps its own thread pool, whose idle workers spin on sched_yield after every
// call and take the cores from oneDNN's OpenMP threads that run next (on 2 cores this cost
// r50 a fifth of its batch-1 forward). So OpenBLAS runs single-threaded and the product is
// split here, across the OpenMP threads, into column (or row) panels of C.
#pragma once

#include <cstdint>

namespace afc::cpu {

// C[m×n] = alpha·op(A)·op(B) + beta·C, op(X) = Xᵀ when trans_X; lda/ldb/ldc are row strides.
void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
           const float *b, int64_t ldb, float beta, float *c, int64_t ldc);

}  // namespace afc::cpu
