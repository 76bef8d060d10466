/* The backend seam: every op the models (src/nn) and the optimizer (src/optim) run, behind an
 * ops table, so that a model is written once and runs on whichever backend it is created on.
 *
 * Memory: every float/int pointer an op takes is BACKEND memory (what ch_op_alloc returned,
 * or a view into it): host memory on the CPU backend, device memory on a GPU. Ops may run
 * asynchronously (a GPU backend enqueues them on the stream it keeps in `ctx`); only
 * download and sync wait. No op returns a host value: reductions (loss, correct count, sum of
 * squares) land in small backend buffers that the caller downloads once.
 *
 * Contracts: backward ops ACCUMULATE into parameter gradients (+=) and OVERWRITE input
 * gradients (=), unless stated otherwise. Shapes are row-major; C = NH * HS for attention.
 * Every op returns CH_OK or an error status (a GPU launch failure, a bad argument).
 *
 * Adding a backend (e.g. kernels/cuda): write a file that fills a ch_backend_ops with its
 * functions (every entry is required), return a static ch_backend from a constructor such as
 * ch_backend_cuda(), and create models and optimizers on it. Nothing in src/nn or src/optim
 * changes: they reach kernels only through the ch_op_* wrappers below. */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "cohort/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ch_backend ch_backend;

/* A run of n optimizer-owned elements with one weight-decay setting (from the spec table's
 * no_decay): element `flat` of a flat buffer, element `local` of a packed one (where the
 * optimizer state lives). Span tables are host memory, built once per optimizer. */
typedef struct ch_span {
  size_t flat, local, n;
  int decay;
} ch_span;

/* torch.optim.AdamW for one step: p *= 1 - lr wd (wd where decay); m = b1 m + (1-b1) g;
 * v = b2 v + (1-b2) g^2; p -= (lr / bc1) m / (sqrt(v) / sqrt_bc2 + eps). */
typedef struct ch_adamw_args {
  float lr, weight_decay, beta1, beta2, bc1, sqrt_bc2, eps;
} ch_adamw_args;

/* torch.optim.SGD for one step: d = g + wd p (wd where decay); with momentum mu != 0,
 * m = mu m + d (m = d when first), d = m; p -= lr d. */
typedef struct ch_sgd_args {
  float lr, weight_decay, momentum;
  int first;
} ch_sgd_args;

typedef struct ch_backend_ops {
  /* ---- memory ---- */
  /* *out = `bytes` of uninitialised backend memory, 64-byte aligned (bytes may be 0). */
  ch_status (*alloc)(const ch_backend *be, size_t bytes, void **out);
  void (*free)(const ch_backend *be, void *p); /* NULL is a no-op */
  /* Host -> backend and backend -> host copies; both complete before returning. */
  ch_status (*upload)(const ch_backend *be, void *dst, const void *host, size_t bytes);
  ch_status (*download)(const ch_backend *be, void *host, const void *src, size_t bytes);
  /* Makes host input readable by ops: *dev = host itself where the backend reads host memory
   * (CPU: no copy), else a copy in `staging` (a backend buffer of >= bytes). */
  ch_status (*stage)(const ch_backend *be, void *staging, const void *host, size_t bytes,
                     const void **dev);
  ch_status (*memset)(const ch_backend *be, void *dst, int byte, size_t bytes);
  /* Waits for every op queued so far; reports their first failure. */
  ch_status (*sync)(const ch_backend *be);

  /* ---- dense layers ---- */
  /* PyTorch Linear: y[B,out] = x[B,in] W^T + b, W [out,in]; b may be NULL. */
  ch_status (*linear_fwd)(const ch_backend *be, float *y, const float *x, const float *w,
                          const float *b, int64_t batch, int in, int out);
  /* dx = dy W (skipped if dx NULL); dW += dy^T x; db += sum_rows dy (skipped if db NULL). */
  ch_status (*linear_bwd)(const ch_backend *be, float *dx, float *dw, float *db, const float *dy,
                          const float *x, const float *w, int64_t batch, int in, int out);
  /* GPT-2 Conv1D: y[B,out] = x[B,in] W + b, W [in,out]; b may be NULL. */
  ch_status (*matmul_fwd)(const ch_backend *be, float *y, const float *x, const float *w,
                          const float *b, int64_t batch, int in, int out);
  /* dx = dy W^T (skipped if dx NULL); dW += x^T dy; db += sum_rows dy (skipped if db NULL). */
  ch_status (*matmul_bwd)(const ch_backend *be, float *dx, float *dw, float *db, const float *dy,
                          const float *x, const float *w, int64_t batch, int in, int out);

  /* ---- normalisation, activations, elementwise ---- */
  /* LayerNorm over rows of `dim` (biased variance, eps as torch); mean/rstd [rows] saved for
   * backward (either may be NULL when none follows). */
  ch_status (*layernorm_fwd)(const ch_backend *be, float *y, float *mean, float *rstd,
                             const float *x, const float *w, const float *b, int64_t rows,
                             int dim, float eps);
  /* dx += ... (ACCUMULATES: the residual stream sums contributions), dw += , db += . No two
   * of the buffers may overlap. */
  ch_status (*layernorm_bwd)(const ch_backend *be, float *dx, float *dw, float *db,
                             const float *dy, const float *x, const float *mean,
                             const float *rstd, const float *w, int64_t rows, int dim);
  /* GELU (tanh form, GPT-2) and ReLU; y may alias x, dx may alias dy. */
  ch_status (*gelu_fwd)(const ch_backend *be, float *y, const float *x, int64_t n);
  ch_status (*gelu_bwd)(const ch_backend *be, float *dx, const float *dy, const float *x,
                        int64_t n);
  ch_status (*relu_fwd)(const ch_backend *be, float *y, const float *x, int64_t n);
  ch_status (*relu_bwd)(const ch_backend *be, float *dx, const float *dy, const float *x,
                        int64_t n);
  /* y = a + b; y may alias a or b. */
  ch_status (*add)(const ch_backend *be, float *y, const float *a, const float *b, int64_t n);
  /* x *= s. */
  ch_status (*scale)(const ch_backend *be, float *x, float s, int64_t n);
  /* *out = sum x^2 (double accumulation, a fixed order); out is a backend double. */
  ch_status (*sumsq)(const ch_backend *be, const float *x, int64_t n, double *out);

  /* ---- attention ---- */
  /* Causal self-attention of B sequences of T rows: qkv [B*T, 3C] as [q | k | v], head h at
   * columns h*HS of each; out [B*T, C] overwritten; `saved` (attention_saved floats, opaque)
   * receives what backward needs besides qkv and out: the softmax P [B, NH, T, T] (CUDA, and
   * the CPU's blocked kernel for short T) or one log-sum-exp per query [B, NH, T] (the CPU's
   * fused kernel, which never stores a T x T matrix). */
  ch_status (*attention_fwd)(const ch_backend *be, float *out, float *saved, const float *qkv,
                             int B, int T, int NH, int HS);
  /* Backward of attention_fwd: dqkv [B*T, 3C] OVERWRITTEN from dout [B*T, C], with the inputs
   * qkv, the forward's out and `saved` as the forward left them. Any workspace is the
   * backend's own. */
  ch_status (*attention_bwd)(const ch_backend *be, float *dqkv, const float *dout,
                             const float *qkv, const float *out, const float *saved, int B,
                             int T, int NH, int HS);
  /* KV-cache step: appends the keys and values of n new rows qkv [n, 3C] at rows past..past+n
   * of kcache/vcache [>= past+n, C], then out [n, C] = attention of the n queries (absolute
   * positions past..past+n-1) over keys 0..own position. scratch >= n (past + n) floats. */
  ch_status (*attention_decode)(const ch_backend *be, float *out, float *scratch,
                                const float *qkv, float *kcache, float *vcache, int past, int n,
                                int NH, int HS);

  /* ---- embedding and loss ---- */
  /* B sequences of T tokens, sequence b at tokens + b * ldt (a row stride, so windows are read
   * in place): y[b*T + t] = wte[tok] + wpe[pos0 + t]. Tokens must be in range. */
  ch_status (*embedding_fwd)(const ch_backend *be, float *y, const int32_t *tokens, int64_t ldt,
                             int pos0, const float *wte, const float *wpe, int B, int T, int C);
  /* dwte[tok] += dy[b*T+t]; dwpe[t] += dy[b*T+t] (pos0 0; repeated tokens sum). */
  ch_status (*embedding_bwd)(const ch_backend *be, float *dwte, float *dwpe, const float *dy,
                             const int32_t *tokens, int64_t ldt, int B, int T, int C);
  /* Softmax cross-entropy over logits rows [B*T, classes], the label of row b*T+t at
   * labels[b*ldl + t]. *loss (backend double) += this call's summed loss (summed from 0 in row
   * order, then added); correct (backend int64, may be NULL) += argmax hits. */
  ch_status (*xent_fwd)(const ch_backend *be, const float *logits, const int32_t *labels,
                        int64_t ldl, int B, int T, int classes, double *loss, int64_t *correct);
  /* Training's fused pass: dlogits = scale (softmax - onehot) (may alias logits) and *loss +=
   * the summed loss as xent_fwd. */
  ch_status (*xent_fused)(const ch_backend *be, float *dlogits, const float *logits,
                          const int32_t *labels, int64_t ldl, int B, int T, int classes,
                          float scale, double *loss);

  /* ---- optimizers over shards ---- */
  /* Updates the spans' elements of p from g; p and g hold them at flat (p_flat/g_flat != 0) or
   * packed positions; the state m (and v) is packed. */
  ch_status (*adamw)(const ch_backend *be, const ch_span *spans, int nspans, float *p, int p_flat,
                     const float *g, int g_flat, float *m, float *v, const ch_adamw_args *a);
  ch_status (*sgd)(const ch_backend *be, const ch_span *spans, int nspans, float *p, int p_flat,
                   const float *g, int g_flat, float *m, const ch_sgd_args *a);

  /* ---- casts ---- */
  /* fp32 -> bf16 (bit patterns), round to nearest even; NaN stays NaN. */
  ch_status (*cast_f32_bf16)(const ch_backend *be, uint16_t *y, const float *x, int64_t n);
  /* bf16 -> fp32, exact. */
  ch_status (*cast_bf16_f32)(const ch_backend *be, float *y, const uint16_t *x, int64_t n);

  /* ---- attention, continued ---- */
  /* *floats = the size of attention_fwd's `saved` buffer for this shape (host value: a size,
   * not a result, so nothing is queued). Depends only on the arguments. */
  ch_status (*attention_saved)(const ch_backend *be, int B, int T, int NH, int HS,
                               size_t *floats);

  /* ---- fused passes (docs/gpt.md): each equals the composition of the ops named ---- */
  /* matmul_fwd then gelu_fwd: pre[B,out] = x W + b (kept for backward), y = gelu(pre). */
  ch_status (*matmul_gelu_fwd)(const ch_backend *be, float *pre, float *y, const float *x,
                               const float *w, const float *b, int64_t batch, int in, int out);
  /* gelu_bwd then matmul_bwd: dy, the gradient of y, is OVERWRITTEN with that of pre,
   * gelu'(pre) dy; then dx = dpre W^T (skipped if dx NULL), dW += x^T dpre, db += sum_rows dpre
   * (skipped if db NULL). */
  ch_status (*matmul_gelu_bwd)(const ch_backend *be, float *dx, float *dw, float *db, float *dy,
                               const float *pre, const float *x, const float *w, int64_t batch,
                               int in, int out);
  /* add then layernorm_fwd: res = a + b (the residual stream), y = LayerNorm(res) with mean and
   * rstd as layernorm_fwd (either may be NULL). res may alias a. */
  ch_status (*add_layernorm_fwd)(const ch_backend *be, float *res, float *y, float *mean,
                                 float *rstd, const float *a, const float *b, const float *w,
                                 const float *bias, int64_t rows, int dim, float eps);
} ch_backend_ops;

/* A backend: a name ("cpu"), its ops and its own state (a GPU's stream and BLAS handle). */
struct ch_backend {
  const char *name;
  const ch_backend_ops *ops;
  void *ctx;
};

/* The CPU backend (kernels/cpu): host memory, OpenBLAS and the vectorised loops. */
CH_API const ch_backend *ch_backend_cpu(void);
/* The same ops with bf16 GEMM operands (fp32 accumulation, fp32 everywhere else), named
 * "cpu bf16". Its GEMMs need AVX-512 BF16: take it through ch_device_open (precision=bf16),
 * which refuses a CPU without. Its memory is host memory too: ch_backend_is_host holds for
 * both. */
CH_API const ch_backend *ch_backend_cpu_bf16(void);

/* Whether `be`'s memory is host memory (the CPU backend): host code may then read and write its
 * buffers directly; otherwise only through upload/download. */
static inline int ch_backend_is_host(const ch_backend *be) {
  return be->ops == ch_backend_cpu()->ops;
}

/* ---- call-site wrappers: ch_op_<op>(be, ...) == be->ops-><op>(be, ...) ------------------ */
#define CH_OP_(name, ...) return be->ops->name(be, __VA_ARGS__)
static inline ch_status ch_op_alloc(const ch_backend *be, size_t bytes, void **out) { CH_OP_(alloc, bytes, out); }
static inline void ch_op_free(const ch_backend *be, void *p) { be->ops->free(be, p); }
static inline ch_status ch_op_upload(const ch_backend *be, void *dst, const void *host, size_t bytes) { CH_OP_(upload, dst, host, bytes); }
static inline ch_status ch_op_download(const ch_backend *be, void *host, const void *src, size_t bytes) { CH_OP_(download, host, src, bytes); }
static inline ch_status ch_op_stage(const ch_backend *be, void *staging, const void *host, size_t bytes, const void **dev) { CH_OP_(stage, staging, host, bytes, dev); }
static inline ch_status ch_op_memset(const ch_backend *be, void *dst, int byte, size_t bytes) { CH_OP_(memset, dst, byte, bytes); }
static inline ch_status ch_op_sync(const ch_backend *be) { return be->ops->sync(be); }
static inline ch_status ch_op_linear_fwd(const ch_backend *be, float *y, const float *x, const float *w, const float *b, int64_t batch, int in, int out) { CH_OP_(linear_fwd, y, x, w, b, batch, in, out); }
static inline ch_status ch_op_linear_bwd(const ch_backend *be, float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int64_t batch, int in, int out) { CH_OP_(linear_bwd, dx, dw, db, dy, x, w, batch, in, out); }
static inline ch_status ch_op_matmul_fwd(const ch_backend *be, float *y, const float *x, const float *w, const float *b, int64_t batch, int in, int out) { CH_OP_(matmul_fwd, y, x, w, b, batch, in, out); }
static inline ch_status ch_op_matmul_bwd(const ch_backend *be, float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int64_t batch, int in, int out) { CH_OP_(matmul_bwd, dx, dw, db, dy, x, w, batch, in, out); }
static inline ch_status ch_op_layernorm_fwd(const ch_backend *be, float *y, float *mean, float *rstd, const float *x, const float *w, const float *b, int64_t rows, int dim, float eps) { CH_OP_(layernorm_fwd, y, mean, rstd, x, w, b, rows, dim, eps); }
static inline ch_status ch_op_layernorm_bwd(const ch_backend *be, float *dx, float *dw, float *db, const float *dy, const float *x, const float *mean, const float *rstd, const float *w, int64_t rows, int dim) { CH_OP_(layernorm_bwd, dx, dw, db, dy, x, mean, rstd, w, rows, dim); }
static inline ch_status ch_op_gelu_fwd(const ch_backend *be, float *y, const float *x, int64_t n) { CH_OP_(gelu_fwd, y, x, n); }
static inline ch_status ch_op_gelu_bwd(const ch_backend *be, float *dx, const float *dy, const float *x, int64_t n) { CH_OP_(gelu_bwd, dx, dy, x, n); }
static inline ch_status ch_op_relu_fwd(const ch_backend *be, float *y, const float *x, int64_t n) { CH_OP_(relu_fwd, y, x, n); }
static inline ch_status ch_op_relu_bwd(const ch_backend *be, float *dx, const float *dy, const float *x, int64_t n) { CH_OP_(relu_bwd, dx, dy, x, n); }
static inline ch_status ch_op_add(const ch_backend *be, float *y, const float *a, const float *b, int64_t n) { CH_OP_(add, y, a, b, n); }
static inline ch_status ch_op_scale(const ch_backend *be, float *x, float s, int64_t n) { CH_OP_(scale, x, s, n); }
static inline ch_status ch_op_sumsq(const ch_backend *be, const float *x, int64_t n, double *out) { CH_OP_(sumsq, x, n, out); }
static inline ch_status ch_op_attention_fwd(const ch_backend *be, float *out, float *saved, const float *qkv, int B, int T, int NH, int HS) { CH_OP_(attention_fwd, out, saved, qkv, B, T, NH, HS); }
static inline ch_status ch_op_attention_bwd(const ch_backend *be, float *dqkv, const float *dout, const float *qkv, const float *out, const float *saved, int B, int T, int NH, int HS) { CH_OP_(attention_bwd, dqkv, dout, qkv, out, saved, B, T, NH, HS); }
static inline ch_status ch_op_attention_decode(const ch_backend *be, float *out, float *scratch, const float *qkv, float *kcache, float *vcache, int past, int n, int NH, int HS) { CH_OP_(attention_decode, out, scratch, qkv, kcache, vcache, past, n, NH, HS); }
static inline ch_status ch_op_embedding_fwd(const ch_backend *be, float *y, const int32_t *tokens, int64_t ldt, int pos0, const float *wte, const float *wpe, int B, int T, int C) { CH_OP_(embedding_fwd, y, tokens, ldt, pos0, wte, wpe, B, T, C); }
static inline ch_status ch_op_embedding_bwd(const ch_backend *be, float *dwte, float *dwpe, const float *dy, const int32_t *tokens, int64_t ldt, int B, int T, int C) { CH_OP_(embedding_bwd, dwte, dwpe, dy, tokens, ldt, B, T, C); }
static inline ch_status ch_op_xent_fwd(const ch_backend *be, const float *logits, const int32_t *labels, int64_t ldl, int B, int T, int classes, double *loss, int64_t *correct) { CH_OP_(xent_fwd, logits, labels, ldl, B, T, classes, loss, correct); }
static inline ch_status ch_op_xent_fused(const ch_backend *be, float *dlogits, const float *logits, const int32_t *labels, int64_t ldl, int B, int T, int classes, float scale, double *loss) { CH_OP_(xent_fused, dlogits, logits, labels, ldl, B, T, classes, scale, loss); }
static inline ch_status ch_op_adamw(const ch_backend *be, const ch_span *spans, int nspans, float *p, int p_flat, const float *g, int g_flat, float *m, float *v, const ch_adamw_args *a) { CH_OP_(adamw, spans, nspans, p, p_flat, g, g_flat, m, v, a); }
static inline ch_status ch_op_sgd(const ch_backend *be, const ch_span *spans, int nspans, float *p, int p_flat, const float *g, int g_flat, float *m, const ch_sgd_args *a) { CH_OP_(sgd, spans, nspans, p, p_flat, g, g_flat, m, a); }
static inline ch_status ch_op_cast_f32_bf16(const ch_backend *be, uint16_t *y, const float *x, int64_t n) { CH_OP_(cast_f32_bf16, y, x, n); }
static inline ch_status ch_op_cast_bf16_f32(const ch_backend *be, float *y, const uint16_t *x, int64_t n) { CH_OP_(cast_bf16_f32, y, x, n); }
static inline ch_status ch_op_attention_saved(const ch_backend *be, int B, int T, int NH, int HS, size_t *floats) { CH_OP_(attention_saved, B, T, NH, HS, floats); }
static inline ch_status ch_op_matmul_gelu_fwd(const ch_backend *be, float *pre, float *y, const float *x, const float *w, const float *b, int64_t batch, int in, int out) { CH_OP_(matmul_gelu_fwd, pre, y, x, w, b, batch, in, out); }
static inline ch_status ch_op_matmul_gelu_bwd(const ch_backend *be, float *dx, float *dw, float *db, float *dy, const float *pre, const float *x, const float *w, int64_t batch, int in, int out) { CH_OP_(matmul_gelu_bwd, dx, dw, db, dy, pre, x, w, batch, in, out); }
static inline ch_status ch_op_add_layernorm_fwd(const ch_backend *be, float *res, float *y, float *mean, float *rstd, const float *a, const float *b, const float *w, const float *bias, int64_t rows, int dim, float eps) { CH_OP_(add_layernorm_fwd, res, y, mean, rstd, a, b, w, bias, rows, dim, eps); }
#undef CH_OP_

/* Moves `bytes` of host memory *buf (ch_alloc_aligned) to backend memory: on a host backend
 * *buf stays as it is; otherwise it is uploaded into a new backend buffer, the host one freed
 * (also on failure) and *buf replaced (NULL on failure). Free the result with ch_op_free. */
static inline ch_status ch_backend_adopt(const ch_backend *be, float **buf, size_t bytes) {
  if (ch_backend_is_host(be)) return CH_OK;
  void *d = NULL;
  ch_status st = ch_op_alloc(be, bytes, &d);
  if (st == CH_OK) st = ch_op_upload(be, d, *buf, bytes);
  if (st != CH_OK) ch_op_free(be, d);
  ch_free_aligned(*buf);
  *buf = st == CH_OK ? (float *)d : NULL;
  return st;
}

#ifdef __cplusplus
}
#endif
