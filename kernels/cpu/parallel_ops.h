/* The CPU backend's non-GEMM ops on the kernel thread pool (kernels/cpu/parallel_ops.c): the
 * kernels of cpu_kernels.h, split over rows or elements. Same contracts as the kernels they
 * wrap; below, what each gives compared to one call of that kernel.
 *
 * Bit-identical to the serial kernel, for any thread count (the work is split where results do
 * not depend on the cut): layernorm forward, gelu/relu forward and backward, add, scale,
 * embedding forward, xent forward and fused (row losses added in row order, as the kernel
 * does), adamw and sgd.
 * Identical for any thread count, but not to the serial kernel once the input is larger than
 * one fixed chunk (the sums are cut at fixed points and added in order; see each function):
 * sumsq, layernorm backward's dw and db. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "cohort/backend.h"

void cpu_par_layernorm_forward(float *y, float *mean, float *rstd, const float *x, const float *w,
                               const float *b, int64_t rows, int dim, float eps);
/* dx per row as the kernel; dw and db: the rows are cut into fixed chunks (cpu_par_ln_chunk_rows),
 * each chunk's sums start from zero, and they are added to dw/db in chunk order. One chunk (the
 * usual case for small batches) is the kernel itself. */
void cpu_par_layernorm_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                                const float *mean, const float *rstd, const float *w,
                                int64_t rows, int dim);
/* The rows of one chunk of cpu_par_layernorm_backward: a function of rows and dim only. */
int64_t cpu_par_ln_chunk_rows(int64_t rows, int dim);

void cpu_par_gelu_forward(float *y, const float *x, int64_t n);
void cpu_par_gelu_backward(float *dx, const float *dy, const float *x, int64_t n);
void cpu_par_relu_forward(float *y, const float *x, int64_t n);
void cpu_par_relu_backward(float *dx, const float *dy, const float *x, int64_t n);
void cpu_par_add(float *y, const float *a, const float *b, int64_t n);
void cpu_par_scale(float *x, float s, int64_t n);
/* cpu_sumsq of each CPU_PAR_SUMSQ_CHUNK elements, added in order in double: cpu_sumsq itself
 * for n <= CPU_PAR_SUMSQ_CHUNK. */
#define CPU_PAR_SUMSQ_CHUNK ((int64_t)1 << 16)
double cpu_par_sumsq(const float *x, int64_t n);

/* The embedding op's B sequences of T tokens, sequence b's tokens at tokens + b * ldt; wpe
 * already points at the first position's row. */
void cpu_par_embedding_forward(float *y, const int32_t *tokens, int64_t ldt, const float *wte,
                               const float *wpe, int B, int T, int C);

double cpu_par_xent_forward_seq(const float *logits, const int32_t *labels, int64_t ldl, int B,
                                int T, int classes, int64_t *correct);
double cpu_par_xent_fused_seq(float *dlogits, const float *logits, const int32_t *labels,
                              int64_t ldl, int B, int T, int classes, float scale);

/* The backend's optimizer ops over all their spans at once (one dispatch per step). */
void cpu_par_adamw(const ch_span *spans, int nspans, float *p, int p_flat, const float *g,
                   int g_flat, float *m, float *v, const ch_adamw_args *a);
void cpu_par_sgd(const ch_span *spans, int nspans, float *p, int p_flat, const float *g,
                 int g_flat, float *m, const ch_sgd_args *a);

/* The fused passes (kernels/cpu/fused.c) on the pool, bit-identical to the serial ones for any
 * thread count: matmul + GELU forward (the GEMM, then the GELU pass split as gelu_forward);
 * its backward (on one thread the fused pass; on more, gelu_backward's split and the GEMM
 * backward's own db sum, the unfused ops' bits); add + LayerNorm split over rows. */
void cpu_par_matmul_gelu_forward(int bf16, float *pre, float *y, const float *x, const float *w,
                                 const float *b, int64_t batch, int in, int out);
void cpu_par_matmul_gelu_backward(int bf16, float *dx, float *dw, float *db, float *dy,
                                  const float *pre, const float *x, const float *w,
                                  int64_t batch, int in, int out);
void cpu_par_add_layernorm_forward(float *res, float *y, float *mean, float *rstd, const float *a,
                                   const float *b, const float *w, const float *bias,
                                   int64_t rows, int dim, float eps);
