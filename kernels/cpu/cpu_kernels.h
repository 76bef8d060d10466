/* CPU kernels (kernels/cpu), internal to the CPU backend (backend_cpu.c) and to the tests
 * that check them directly. Row-major fp32, synchronous, on host memory. Forward and backward
 * of each op sit side by side; backward kernels ACCUMULATE into parameter gradients (+=) and
 * OVERWRITE input gradients (=), unless stated otherwise. */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "cohort/kernels.h"

/* ---- BLAS threads (kernels/cpu/blas.c) ------------------------------------------------- */
/* The threads OpenBLAS runs the next GEMM with as ch_sgemm last set them: 1 after a GEMM of
 * up to 2^22 multiply-adds (a decoding step's), the ch_blas_init count after a larger one. */
int cpu_blas_threads_in_use(void);

/* The GEMM every CPU layer calls: ch_sgemm's contract, at the backend's precision: bf16 == 0
 * is fp32 (OpenBLAS sgemm); bf16 != 0 rounds A and B to bf16 and accumulates in fp32 (the
 * CPU backend made with precision=bf16; see ch_backend_cpu_bf16). */
void cpu_gemm(int bf16, int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
              int lda, const float *b, int ldb, float beta, float *c, int ldc);

/* ---- bf16 GEMM (kernels/cpu/gemm_bf16.c) ------------------------------------------------ */
/* Whether this CPU runs cpu_gemm_bf16 (AVX-512 F/BW/VL and BF16); the environment variable
 * COHORT_TEST_NO_AVX512BF16=1 makes it say no (tests of the refusal on a CPU that has them). */
int cpu_has_avx512bf16(void);
/* ch_sgemm's contract with op(A), op(B) rounded to bf16 (nearest even; bf16 subnormals count as
 * zero in the products) and fp32 sums, on `threads` threads (<= 1: the caller's only). The
 * result does not depend on `threads`. Only on a CPU where cpu_has_avx512bf16(). */
void cpu_gemm_bf16(int threads, int trans_a, int trans_b, int m, int n, int k, float alpha,
                   const float *a, int lda, const float *b, int ldb, float beta, float *c,
                   int ldc);

/* ---- Linear: y[B,out] = x[B,in] W^T + b, W [out,in] (PyTorch convention) --------------- */
/* `bf16` (every GEMM-shaped kernel): the precision of its GEMMs, as cpu_gemm. */
void cpu_linear_forward(int bf16, float *y, const float *x, const float *w, const float *b, int64_t batch,
                        int in, int out);
/* dx = dy W (skipped if dx NULL); dW += dy^T x; db += sum_b dy (skipped if db NULL). */
void cpu_linear_backward(int bf16, float *dx, float *dw, float *db, const float *dy, const float *x,
                         const float *w, int64_t batch, int in, int out);

/* ---- Matmul in GPT-2's Conv1D layout: y[B,out] = x[B,in] W[in,out] + b ------------------ */
void cpu_matmul_forward(int bf16, float *y, const float *x, const float *w, const float *b, int64_t batch,
                        int in, int out);
/* dx = dy W^T (skipped if dx NULL); dW += x^T dy; db += sum_b dy (skipped if db NULL). */
void cpu_matmul_backward(int bf16, float *dx, float *dw, float *db, const float *dy, const float *x,
                         const float *w, int64_t batch, int in, int out);

/* ---- Activations (elementwise, in/out may alias in forward) ---------------------------- */
void cpu_relu_forward(float *y, const float *x, int64_t n);
/* dx = dy * (x > 0); dx may alias dy. */
void cpu_relu_backward(float *dx, const float *dy, const float *x, int64_t n);
/* GELU, tanh form (GPT-2): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
void cpu_gelu_forward(float *y, const float *x, int64_t n);
void cpu_gelu_backward(float *dx, const float *dy, const float *x, int64_t n);

/* ---- Softmax cross-entropy over rows of logits [B,C] ----------------------------------- */
/* Returns sum over rows of -log softmax(logits)[label]; if `correct` is non-NULL, adds the
 * number of rows whose argmax equals the label. Labels must be in [0, C). */
double cpu_xent_forward(const float *logits, const int32_t *labels, int batch, int classes,
                        int64_t *correct);
/* dlogits = scale * (softmax(logits) - onehot(label)), the gradient of scale * sum of losses. */
void cpu_xent_backward(float *dlogits, const float *logits, const int32_t *labels, int batch,
                       int classes, float scale);
/* Training's fused pass: returns the summed loss (as cpu_xent_forward) and writes the gradient
 * (as cpu_xent_backward) with one vectorised exp per logit instead of three scalar ones (exp
 * relative error < 2e-7, sums in double). dlogits may alias logits. */
double cpu_xent_fused(float *dlogits, const float *logits, const int32_t *labels, int batch,
                      int classes, float scale);

/* The same over B sequences of T rows whose labels are read with a row stride: the label of
 * logits row b*T + t is labels[b*ldl + t] (GPT windows: targets = window + 1, ldl = T + 1). */
double cpu_xent_forward_seq(const float *logits, const int32_t *labels, int64_t ldl, int B, int T,
                            int classes, int64_t *correct);
double cpu_xent_fused_seq(float *dlogits, const float *logits, const int32_t *labels, int64_t ldl,
                          int B, int T, int classes, float scale);

/* ---- Vector helpers over flat buffers -------------------------------------------------- */
/* Sum of squares in double precision. */
double cpu_sumsq(const float *x, int64_t n);
void cpu_scale(float *x, float s, int64_t n);

/* ---- Transformer ops (kernels/cpu/layernorm.c, attention.c, embedding.c, vector.c) ------ */

/* y[i] = a[i] + b[i]; y may alias a or b (kernels/cpu/vector.c). */
void cpu_add(float *y, const float *a, const float *b, int64_t n);

/* LayerNorm over the last dim: mean = sum_j x_j / dim, var = sum_j (x_j - mean)^2 / dim (biased,
 * as torch), rstd = 1 / sqrt(var + eps); y = (x - mean) * rstd * w + b per row. mean/rstd [rows]
 * are saved for backward (either may be NULL when no backward follows). eps as torch (1e-5). */
void cpu_layernorm_forward(float *y, float *mean, float *rstd, const float *x, const float *w,
                           const float *b, int64_t rows, int dim, float eps);
/* With xhat = (x - mean) rstd, g = dy w: dx += rstd (g - mean_j(g) - xhat mean_j(g xhat)),
 * dw += sum_rows dy xhat, db += sum_rows dy. dx ACCUMULATES (+=) too: a GPT LayerNorm's input
 * is the residual stream, whose gradient sums contributions. mean/rstd as saved by forward.
 * No two of the buffers may overlap. */
void cpu_layernorm_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                            const float *mean, const float *rstd, const float *w, int64_t rows,
                            int dim);
/* Causal multi-head attention for ONE sequence: per head h, S = q_h k_h^T / sqrt(HS),
 * P = softmax over the keys each query may see, out_h = P v_h. q [Tq, NH*HS] row stride ldq;
 * k, v [Tk, NH*HS] row stride ldkv (fused QKV [T,3C]: q=qkv, k=qkv+C, v=qkv+2C, ldq=ldkv=3C).
 * Query i sits at absolute position Tk-Tq+i and attends keys 0..Tk-Tq+i (Tq == Tk: training;
 * Tq == 1, Tk = L+1: a KV-cache decode step). Needs 1 <= Tq <= Tk. out [Tq, NH*HS] row stride
 * ldo, head h at columns h*HS. probs: if non-NULL receives P [NH, Tq, Tk] (masked entries 0) for
 * backward. scratch: at least Tq*Tk floats (used when probs is NULL). */
void cpu_attention_forward(float *out, int ldo, float *probs, float *scratch, const float *q,
                           int ldq, const float *k, const float *v, int ldkv, int Tq, int Tk,
                           int NH, int HS);
/* Backward of cpu_attention_forward with Tq == Tk == T, per head: dP = dout_h v_h^T,
 * dv_h = P^T dout_h, dS = P * (dP - rowsum(dP * P)) / sqrt(HS), dq_h = dS k_h, dk_h = dS^T q_h.
 * dq, dk, dv are OVERWRITTEN, laid out like q/k/v with row stride ld (views into dqkv [T,3C],
 * ld = 3C). dout [T, NH*HS] row stride ldo; q, k, v share row stride ldq; probs as saved by
 * forward. scratch: at least 2*T*T floats. */
void cpu_attention_backward(float *dq, float *dk, float *dv, int ld, const float *dout, int ldo,
                            const float *q, const float *k, const float *v, int ldq,
                            const float *probs, float *scratch, int T, int NH, int HS);
/* Fused causal attention for training (kernels/cpu/attention_flash.c) for ONE head of ONE
 * sequence, Tq == Tk == T: the math of cpu_attention_forward/backward with NH = 1, in tiles,
 * without the T x T matrix. Each call is independent of the others (its own workspace), so the
 * (sequence, head) pairs may run in parallel. Forward: q [T, HS] row stride ldq, k, v row
 * stride ldkv; out [T, HS] row stride ldo overwritten; lse [T] receives log sum_j e^S_ij per
 * query (S the scaled scores), all that backward needs besides the inputs and out. */
ch_status cpu_flash_attention_forward(float *out, int ldo, float *lse, const float *q, int ldq,
                                      const float *k, const float *v, int ldkv, int T, int HS);
/* Backward: dq, dk, dv [T, HS] row stride ld OVERWRITTEN; dout row stride ldo; out (the
 * forward's) row stride ldout; q, k, v share row stride ldq; lse as forward saved it. */
ch_status cpu_flash_attention_backward(float *dq, float *dk, float *dv, int ld, const float *dout,
                                       int ldo, const float *out, int ldout, const float *q,
                                       const float *k, const float *v, int ldq, const float *lse,
                                       int T, int HS);
/* y[i, :] = wte[tokens[i], :] + wpe[i % T, :] for i < n (rows are sequences of T tokens, so the
 * position of row i is i % T); wte [V, C], wpe [>= T, C]; tokens must be in [0, V). */
void cpu_embedding_forward(float *y, const int32_t *tokens, const float *wte, const float *wpe,
                           int64_t n, int T, int C);
/* dwte[tokens[i]] += dy[i]; dwpe[i % T] += dy[i] (both accumulate; repeated tokens sum). */
void cpu_embedding_backward(float *dwte, float *dwpe, const float *dy, const int32_t *tokens,
                            int64_t n, int T, int C);

/* ---- Fused passes (kernels/cpu/fused.c): the same bits as the ops they replace ---------- */
/* pre = x W + b as cpu_matmul_forward (saved for backward), y = gelu(pre) as cpu_gelu_forward. */
void cpu_matmul_gelu_forward(int bf16, float *pre, float *y, const float *x, const float *w,
                             const float *b, int64_t batch, int in, int out);
/* Backward of cpu_matmul_gelu_forward: dy (the gradient of y) is OVERWRITTEN with that of pre,
 * gelu'(pre) dy, with db += its row sums in the same pass (skipped if db NULL); then as
 * cpu_matmul_backward: dx = dpre W^T (skipped if dx NULL), dW += x^T dpre. */
void cpu_matmul_gelu_backward(int bf16, float *dx, float *dw, float *db, float *dy,
                              const float *pre, const float *x, const float *w, int64_t batch,
                              int in, int out);
/* res = a + b (cpu_add), then y = LayerNorm(res) as cpu_layernorm_forward, row by row. res may
 * alias a (exactly); mean/rstd may be NULL. */
void cpu_add_layernorm_forward(float *res, float *y, float *mean, float *rstd, const float *a,
                               const float *b, const float *w, const float *bias, int64_t rows,
                               int dim, float eps);

/* ---- Optimizer loops over one span (kernels/cpu/optim.c) -------------------------------- */
/* torch.optim.SGD on n elements: d = g + wd p; with mu != 0, m = mu m + d (m = d when first),
 * d = m; p -= lr d. */
void cpu_sgd_span(float *p, const float *g, float *m, size_t n, float lr, float wd, float mu,
                  int first);
/* torch.optim.AdamW on n elements: p *= decay (= 1 - lr wd); m = b1 m + (1-b1) g;
 * v = b2 v + (1-b2) g^2; p -= step_size m / (sqrt(v) / sqrt_bc2 + eps). */
void cpu_adamw_span(float *p, const float *g, float *m, float *v, size_t n, float decay, float b1,
                    float b2, float step_size, float sqrt_bc2, float eps);

/* ---- Casts (kernels/cpu/cast.c) -------------------------------------------------------- */
/* fp32 -> bf16 bit patterns, round to nearest even (NaN stays a quiet NaN); bf16 -> fp32. */
void cpu_f32_to_bf16(uint16_t *y, const float *x, int64_t n);
void cpu_bf16_to_f32(float *y, const uint16_t *x, int64_t n);
