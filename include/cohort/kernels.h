/* The CPU backend's public BLAS: setup and the sgemm it wraps (kernels/cpu/blas.c). Models and optimizers reach the kernels
 * only through the backend seam (cohort/backend.h, ch_backend_cpu()); the kernels themselves
 * are internal to kernels/cpu (kernels/cpu/cpu_kernels.h). */
#pragma once
#include <stdint.h>
#include "cohort/status.h"

/* ---- BLAS (kernels/cpu/blas.c) ---------------------------------------------------------- */

/* Loads OpenBLAS at run time, first choosing its CPU kernels: Debian's OpenBLAS 0.3.21 takes
 * AVX-512 Xeons for "Prescott" (about 5x slower); when OPENBLAS_CORETYPE is unset, cohort
 * detects the CPU with cpuid and sets it (SkylakeX, Cooperlake, Haswell, ...) before the
 * library's constructor runs. Sets `threads` BLAS threads (0 = leave). Idempotent; thread
 * count may be changed by calling again. Errors: CH_ERR_UNSUPPORTED (no OpenBLAS). */
CH_API ch_status ch_blas_init(int threads);
/* The kernel family OpenBLAS runs ("SkylakeX"); "" before ch_blas_init. */
CH_API const char *ch_blas_corename(void);
/* The OPENBLAS_CORETYPE cohort chose for this CPU, or NULL when it left OpenBLAS alone. */
CH_API const char *ch_blas_coretype_choice(void);
/* The threads the CPU backend runs its non-GEMM kernels on (LayerNorm, GELU, cross-entropy,
 * the optimizer; kernels/cpu/pool.c), the caller's included: ch_blas_init's count, or
 * COHORT_KERNEL_THREADS when that is set (>= 1). */
CH_API int ch_kernel_threads(void);

/* C[m,n] = alpha * op(A) op(B) + beta * C, row-major, op = transpose when trans_* != 0.
 * lda/ldb/ldc are row strides. Calls ch_blas_init(0) on first use if needed. */
CH_API void ch_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
              const float *b, int ldb, float beta, float *c, int ldc);
