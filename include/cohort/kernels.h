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
CH_API ch_status ch_blas_init(int threads);
/* The kernel family OpenBLAS runs ("SkylakeX"); "" before ch_blas_init. */
CH_API const char *ch_blas_corename(void);
/* The OPENBLAS_CORETYPE cohort chose for this CPU, or NULL when it left OpenBLAS alone. */
CH_API const char *ch_blas_coretype_choice(void);

/* C[m,n] = alpha * op(A) op(B) + beta * C, row-major, op = transpose when trans_* != 0.
 * lda/ldb/ldc are row strides. Calls ch_blas_init(0) on first use if needed. */
CH_API void ch_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
              const float *b, int ldb, float beta, float *c, int ldc);

/* ---- Linear: y[B,out] = x[B,in] W^T + b, W [out,in] (PyTorch convention) --------------- */
CH_API void ch_linear_forward(float *y, const float *x, const float *w, const float *b, int batch,
                       int in, int out);
/* dx = dy W (skipped if dx NULL); dW += dy^T x; db += sum_b dy (skipped if db NULL). */
CH_API void ch_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                        const float *w, int batch, int in, int out);

/* ---- Matmul in GPT-2's Conv1D layout: y[B,out] = x[B,in] W[in,out] + b ------------------ */
CH_API void ch_matmul_forward(float *y, const float *x, const float *w, const float *b, int64_t batch,
                       int in, int out);
/* dx = dy W^T (skipped if dx NULL); dW += x^T dy; db += sum_b dy (skipped if db NULL). */
CH_API void ch_matmul_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                        const float *w, int64_t batch, int in, int out);

/* ---- Activations (elementwise, in/out may alias in forward) ---------------------------- */
CH_API void ch_relu_forward(float *y, const float *x, int64_t n);
/* dx = dy * (x > 0); dx may alias dy. */
CH_API void ch_relu_backward(float *dx, const float *dy, const float *x, int64_t n);
/* GELU, tanh form (GPT-2): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
CH_API void ch_gelu_forward(float *y, const float *x, int64_t n);
CH_API void ch_gelu_backward(float *dx, const float *dy, const float *x, int64_t n);

/* ---- Softmax cross-entropy over rows of logits [B,C] ----------------------------------- */
/* Returns sum over rows of -log softmax(logits)[label]; if `correct` is non-NULL, adds the
 * number of rows whose argmax equals the label. Labels must be in [0, C). */
CH_API double ch_xent_forward(const float *logits, const int32_t *labels, int batch, int classes,
                       int64_t *correct);
/* dlogits = scale * (softmax(logits) - onehot(label)), the gradient of scale * sum of losses. */
CH_API void ch_xent_backward(float *dlogits, const float *logits, const int32_t *labels, int batch,
                      int classes, float scale);
/* Training's fused pass: returns the summed loss (as ch_xent_forward) and writes the gradient
 * (as ch_xent_backward) with one vectorised exp per logit instead of three scalar ones (exp
 * relative error < 2e-7, sums in double). dlogits may alias logits. */
CH_API double ch_xent_fused(float *dlogits, const float *logits, const int32_t *labels, int batch,
                     int classes, float scale);

/* ---- Vector helpers over flat buffers -------------------------------------------------- */
/* Sum of squares in double precision. */
CH_API double ch_sumsq(const float *x, int64_t n);
CH_API void ch_scale(float *x, float s, int64_t n);

/* ---- Transformer ops (kernels/cpu/layernorm.c, attention.c, embedding.c, vector.c) ------ */

/* y[i] = a[i] + b[i]; y may alias a or b (kernels/cpu/vector.c). */
CH_API void ch_add(float *y, const float *a, const float *b, int64_t n);

/* LayerNorm over the last dim: mean = sum_j x_j / dim, var = sum_j (x_j - mean)^2 / dim (biased,
 * as torch), rstd = 1 / sqrt(var + eps); y = (x - mean) * rstd * w + b per row. mean/rstd [rows]
 * are saved for backward (either may be NULL when no backward follows). eps as torch (1e-5). */
CH_API void ch_layernorm_forward(float *y, float *mean, float *rstd, const float *x, const float *w,
                          const float *b, int64_t rows, int dim, float eps);
/* With xhat = (x - mean) rstd, g = dy w: dx += rstd (g - mean_j(g) - xhat mean_j(g xhat)),
 * dw += sum_rows dy xhat, db += sum_rows dy. dx ACCUMULATES (+=) too: a GPT LayerNorm's input
 * is the residual stream, whose gradient sums contributions. mean/rstd as saved by forward. */
CH_API void ch_layernorm_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                           const float *mean, const float *rstd, const float *w, int64_t rows,
                           int dim);
/* Causal multi-head attention for ONE sequence: per head h, S = q_h k_h^T / sqrt(HS),
 * P = softmax over the keys each query may see, out_h = P v_h. q [Tq, NH*HS] row stride ldq;
 * k, v [Tk, NH*HS] row stride ldkv (fused QKV [T,3C]: q=qkv, k=qkv+C, v=qkv+2C, ldq=ldkv=3C).
 * Query i sits at absolute position Tk-Tq+i and attends keys 0..Tk-Tq+i (Tq == Tk: training;
 * Tq == 1, Tk = L+1: a KV-cache decode step). Needs 1 <= Tq <= Tk. out [Tq, NH*HS] row stride
 * ldo, head h at columns h*HS. probs: if non-NULL receives P [NH, Tq, Tk] (masked entries 0) for
 * backward. scratch: at least Tq*Tk floats (used when probs is NULL). */
CH_API void ch_attention_forward(float *out, int ldo, float *probs, float *scratch, const float *q, int ldq,
                          const float *k, const float *v, int ldkv, int Tq, int Tk, int NH, int HS);
/* Backward of ch_attention_forward with Tq == Tk == T, per head: dP = dout_h v_h^T,
 * dv_h = P^T dout_h, dS = P * (dP - rowsum(dP * P)) / sqrt(HS), dq_h = dS k_h, dk_h = dS^T q_h.
 * dq, dk, dv are OVERWRITTEN, laid out like q/k/v with row stride ld (views into dqkv [T,3C],
 * ld = 3C). dout [T, NH*HS] row stride ldo; q, k, v share row stride ldq; probs as saved by
 * forward. scratch: at least 2*T*T floats. */
CH_API void ch_attention_backward(float *dq, float *dk, float *dv, int ld, const float *dout, int ldo,
                           const float *q, const float *k, const float *v, int ldq, const float *probs,
                           float *scratch, int T, int NH, int HS);
/* y[i, :] = wte[tokens[i], :] + wpe[i % T, :] for i < n (rows are sequences of T tokens, so the
 * position of row i is i % T); wte [V, C], wpe [>= T, C]; tokens must be in [0, V). */
CH_API void ch_embedding_forward(float *y, const int32_t *tokens, const float *wte, const float *wpe,
                          int64_t n, int T, int C);
/* dwte[tokens[i]] += dy[i]; dwpe[i % T] += dy[i] (both accumulate; repeated tokens sum). */
CH_API void ch_embedding_backward(float *dwte, float *dwpe, const float *dy, const int32_t *tokens,
                           int64_t n, int T, int C);
