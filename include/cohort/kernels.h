/* CPU kernels (kernels/cpu). Row-major fp32. The CUDA backend keeps the same signatures.
 * Forward and backward of each op sit side by side; backward kernels ACCUMULATE into
 * parameter gradients (+=) and OVERWRITE input gradients (=), unless stated otherwise. */
#pragma once
#include <stdint.h>
#include "cohort/status.h"

/* ---- BLAS (kernels/cpu/blas.c) ---------------------------------------------------------- */

/* Loads OpenBLAS at run time, first choosing its CPU kernels: Debian's OpenBLAS 0.3.21 takes
 * AVX-512 Xeons for "Prescott" (about 5x slower); when OPENBLAS_CORETYPE is unset, cohort
 * detects the CPU with cpuid and sets it (SkylakeX, Cooperlake, Haswell, ...) before the
 * library's constructor runs. Sets `threads` BLAS threads (0 = leave). Idempotent; thread
 * count may be changed by calling again. Errors: CH_ERR_UNSUPPORTED (no OpenBLAS). */
ch_status ch_blas_init(int threads);
/* The kernel family OpenBLAS runs ("SkylakeX"); "" before ch_blas_init. */
const char *ch_blas_corename(void);
/* The OPENBLAS_CORETYPE cohort chose for this CPU, or NULL when it left OpenBLAS alone. */
const char *ch_blas_coretype_choice(void);

/* C[m,n] = alpha * op(A) op(B) + beta * C, row-major, op = transpose when trans_* != 0.
 * lda/ldb/ldc are row strides. Calls ch_blas_init(0) on first use if needed. */
void ch_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
              const float *b, int ldb, float beta, float *c, int ldc);

/* ---- Linear: y[B,out] = x[B,in] W^T + b, W [out,in] (PyTorch convention) --------------- */
void ch_linear_forward(float *y, const float *x, const float *w, const float *b, int batch,
                       int in, int out);
/* dx = dy W (skipped if dx NULL); dW += dy^T x; db += sum_b dy (skipped if db NULL). */
void ch_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                        const float *w, int batch, int in, int out);

/* ---- Activations (elementwise, in/out may alias in forward) ---------------------------- */
void ch_relu_forward(float *y, const float *x, int64_t n);
/* dx = dy * (x > 0); dx may alias dy. */
void ch_relu_backward(float *dx, const float *dy, const float *x, int64_t n);
/* GELU, tanh form (GPT-2): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
void ch_gelu_forward(float *y, const float *x, int64_t n);
void ch_gelu_backward(float *dx, const float *dy, const float *x, int64_t n);

/* ---- Softmax cross-entropy over rows of logits [B,C] ----------------------------------- */
/* Returns sum over rows of -log softmax(logits)[label]; if `correct` is non-NULL, adds the
 * number of rows whose argmax equals the label. Labels must be in [0, C). */
double ch_xent_forward(const float *logits, const int32_t *labels, int batch, int classes,
                       int64_t *correct);
/* dlogits = scale * (softmax(logits) - onehot(label)), the gradient of scale * sum of losses. */
void ch_xent_backward(float *dlogits, const float *logits, const int32_t *labels, int batch,
                      int classes, float scale);

/* ---- Vector helpers over flat buffers -------------------------------------------------- */
/* Sum of squares in double precision. */
double ch_sumsq(const float *x, int64_t n);
void ch_scale(float *x, float s, int64_t n);
