/* The CPU backend: the ops table of cohort/backend.h over today's kernels (cpu_kernels.h).
 * Backend memory is host memory, so staging a host batch passes the pointer (no copy), and the
 * only cost over calling a kernel directly is the indirect call. Ops are synchronous. */
#include <stdatomic.h>
#include <string.h>

#include "cohort/backend.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/parallel_ops.h"
#include "kernels/cpu/pool.h"

static ch_status op_alloc(const ch_backend *be, size_t bytes, void **out) {
  (void)be;
  *out = ch_alloc_aligned(bytes ? bytes : 1);
  return *out ? CH_OK : CH_FAIL(CH_ERR_NOMEM, "%zu bytes of host memory", bytes);
}

static void op_free(const ch_backend *be, void *p) {
  (void)be;
  ch_free_aligned(p);
}

static ch_status op_copy(const ch_backend *be, void *dst, const void *src, size_t bytes) {
  (void)be;
  if (bytes && dst != src) memcpy(dst, src, bytes);
  return CH_OK;
}

static ch_status op_stage(const ch_backend *be, void *staging, const void *host, size_t bytes,
                          const void **dev) {
  (void)be, (void)staging, (void)bytes;
  *dev = host;
  return CH_OK;
}

static ch_status op_memset(const ch_backend *be, void *dst, int byte, size_t bytes) {
  (void)be;
  if (bytes) memset(dst, byte, bytes);
  return CH_OK;
}

static ch_status op_sync(const ch_backend *be) {
  (void)be;
  return CH_OK;
}

/* The GEMM precision of a CPU backend: its ctx points at one of these. */
static const int g_fp32 = 0, g_bf16 = 1;

static int cpu_bf16(const ch_backend *be) { return be->ctx ? *(const int *)be->ctx : 0; }

/* GEMM-shaped ops of one signature: linear (W [out, in]) and matmul (W [in, out]). */
#define CPU_GEMM(fwd, bwd, kernel_fwd, kernel_bwd)                                          \
  static ch_status fwd(const ch_backend *be, float *y, const float *x, const float *w,     \
                       const float *b, int64_t batch, int in, int out) {                   \
    kernel_fwd(cpu_bf16(be), y, x, w, b, batch, in, out);                                  \
    return CH_OK;                                                                          \
  }                                                                                        \
  static ch_status bwd(const ch_backend *be, float *dx, float *dw, float *db,              \
                       const float *dy, const float *x, const float *w, int64_t batch,     \
                       int in, int out) {                                                  \
    kernel_bwd(cpu_bf16(be), dx, dw, db, dy, x, w, batch, in, out);                        \
    return CH_OK;                                                                          \
  }
CPU_GEMM(op_linear_fwd, op_linear_bwd, cpu_linear_forward, cpu_linear_backward)
CPU_GEMM(op_matmul_fwd, op_matmul_bwd, cpu_matmul_forward, cpu_matmul_backward)
#undef CPU_GEMM

static ch_status op_layernorm_fwd(const ch_backend *be, float *y, float *mean, float *rstd,
                                  const float *x, const float *w, const float *b, int64_t rows,
                                  int dim, float eps) {
  (void)be;
  cpu_par_layernorm_forward(y, mean, rstd, x, w, b, rows, dim, eps);
  return CH_OK;
}

static ch_status op_layernorm_bwd(const ch_backend *be, float *dx, float *dw, float *db,
                                  const float *dy, const float *x, const float *mean,
                                  const float *rstd, const float *w, int64_t rows, int dim) {
  (void)be;
  cpu_par_layernorm_backward(dx, dw, db, dy, x, mean, rstd, w, rows, dim);
  return CH_OK;
}

/* Elementwise ops of one shape: forward (y, x) and backward (dx, dy, x). */
#define CPU_UNARY(name, kernel)                                                             \
  static ch_status name(const ch_backend *be, float *y, const float *x, int64_t n) {       \
    (void)be;                                                                              \
    kernel(y, x, n);                                                                       \
    return CH_OK;                                                                          \
  }
#define CPU_BACKWARD(name, kernel)                                                          \
  static ch_status name(const ch_backend *be, float *dx, const float *dy, const float *x,  \
                        int64_t n) {                                                       \
    (void)be;                                                                              \
    kernel(dx, dy, x, n);                                                                  \
    return CH_OK;                                                                          \
  }
CPU_UNARY(op_gelu_fwd, cpu_par_gelu_forward)
CPU_UNARY(op_relu_fwd, cpu_par_relu_forward)
CPU_BACKWARD(op_gelu_bwd, cpu_par_gelu_backward)
CPU_BACKWARD(op_relu_bwd, cpu_par_relu_backward)
#undef CPU_UNARY
#undef CPU_BACKWARD

static ch_status op_add(const ch_backend *be, float *y, const float *a, const float *b,
                        int64_t n) {
  (void)be;
  cpu_par_add(y, a, b, n);
  return CH_OK;
}

static ch_status op_scale(const ch_backend *be, float *x, float s, int64_t n) {
  (void)be;
  cpu_par_scale(x, s, n);
  return CH_OK;
}

static ch_status op_sumsq(const ch_backend *be, const float *x, int64_t n, double *out) {
  (void)be;
  *out = cpu_par_sumsq(x, n);
  return CH_OK;
}

/* Training attention has two kernels: the blocked one (attention.c: OpenBLAS GEMMs over
 * 32-row blocks, keeping P [NH, T, T] for backward) and the fused one (attention_flash.c:
 * tiles in L1, one log-sum-exp per query kept, P recomputed in backward). Measured with
 * bench/attention (docs/gpt.md, "Attention on the CPU", has the table): blocked is faster up to
 * T = 256, the two are level at 512 where the fused kernel keeps T times less, and fused is as
 * fast or faster from 1024. `saved` holds P below the threshold and lse from it on; the choice
 * depends on T alone, so attention_saved, forward and backward always agree. */
#define CPU_FLASH_MIN_T 512

static int cpu_fused_attention(int T) { return T >= CPU_FLASH_MIN_T; }

static ch_status op_attention_saved(const ch_backend *be, int B, int T, int NH, int HS,
                                    size_t *floats) {
  (void)be, (void)HS;
  size_t rows = (size_t)B * NH * T;
  *floats = cpu_fused_attention(T) ? rows : rows * (size_t)T;
  return CH_OK;
}

/* One training attention call, cut into its B x NH (sequence, head) pairs: each pair is an
 * independent problem writing its own columns of out / dqkv and its own slice of `saved`, so the
 * pool hands out ranges of pairs and the bits do not depend on the thread count. The blocked
 * kernel runs one head at a time here (NH = 1 with the head's column offset): its GEMMs are
 * 32 x T x HS, far below SERIAL_MNK, so OpenBLAS runs them on the calling thread and the pool's
 * threads are the only parallelism attention gets (before, one thread did every head). */
typedef struct attn_job {
  float *out, *dqkv;
  const float *qkv, *dout, *y;
  float *saved;
  const float *saved_in;
  int T, NH, HS;
  _Atomic int failed; /* a worker could not get a kernel's workspace */
} attn_job;

/* The pair's qkv / dqkv column offset, its saved slice, its out / dout column offset. */
#define ATTN_PAIR(j, i)                                                         \
  int C = (j)->NH * (j)->HS, b = (int)((i) / (j)->NH), h = (int)((i) % (j)->NH); \
  size_t rows3 = (size_t)b * (j)->T * 3 * C + (size_t)h * (j)->HS;            \
  size_t rows1 = (size_t)b * (j)->T * C + (size_t)h * (j)->HS;                \
  size_t slice = (size_t)(i) * (j)->T * (cpu_fused_attention((j)->T) ? 1 : (size_t)(j)->T)

static void attn_fwd_range(void *ctx, int64_t begin, int64_t end) {
  attn_job *j = ctx;
  for (int64_t i = begin; i < end; i++) {
    ATTN_PAIR(j, i);
    const float *q = j->qkv + rows3;
    float *o = j->out + rows1, *sv = j->saved + slice;
    if (!cpu_fused_attention(j->T))
      cpu_attention_forward(o, C, sv, NULL, q, 3 * C, q + C, q + 2 * C, 3 * C, j->T, j->T, 1,
                            j->HS);
    else if (cpu_flash_attention_forward(o, C, sv, q, 3 * C, q + C, q + 2 * C, 3 * C, j->T,
                                         j->HS) != CH_OK)
      atomic_store(&j->failed, 1);
  }
}

static void attn_bwd_range(void *ctx, int64_t begin, int64_t end) {
  attn_job *j = ctx;
  float *scratch = NULL; /* the blocked kernel's dS: 2 T T floats, for this range */
  if (!cpu_fused_attention(j->T)) {
    scratch = ch_alloc_aligned(sizeof *scratch * 2 * (size_t)j->T * j->T);
    if (!scratch) {
      atomic_store(&j->failed, 1);
      return;
    }
  }
  for (int64_t i = begin; i < end; i++) {
    ATTN_PAIR(j, i);
    const float *q = j->qkv + rows3, *dy = j->dout + rows1, *sv = j->saved_in + slice;
    float *dq = j->dqkv + rows3;
    if (scratch)
      cpu_attention_backward(dq, dq + C, dq + 2 * C, 3 * C, dy, C, q, q + C, q + 2 * C, 3 * C,
                             sv, scratch, j->T, 1, j->HS);
    else if (cpu_flash_attention_backward(dq, dq + C, dq + 2 * C, 3 * C, dy, C, j->y + rows1, C,
                                          q, q + C, q + 2 * C, 3 * C, sv, j->T, j->HS) != CH_OK)
      atomic_store(&j->failed, 1);
  }
  ch_free_aligned(scratch);
}
#undef ATTN_PAIR

static ch_status attn_run(attn_job *j, int B, cpu_range_fn fn) {
  if (B <= 0 || j->T <= 0 || j->NH <= 0) return CH_OK;
  cpu_parallel_for((int64_t)B * j->NH, 1, fn, j);
  return atomic_load(&j->failed)
             ? CH_FAIL(CH_ERR_NOMEM, "attention (T %d, %d heads): no memory for a workspace", j->T,
                       j->NH)
             : CH_OK;
}

static ch_status op_attention_fwd(const ch_backend *be, float *out, float *saved,
                                  const float *qkv, int B, int T, int NH, int HS) {
  (void)be;
  attn_job j = {.out = out, .qkv = qkv, .saved = saved, .T = T, .NH = NH, .HS = HS};
  return attn_run(&j, B, attn_fwd_range);
}

static ch_status op_attention_bwd(const ch_backend *be, float *dqkv, const float *dout,
                                  const float *qkv, const float *out, const float *saved, int B,
                                  int T, int NH, int HS) {
  (void)be;
  attn_job j = {.dqkv = dqkv, .qkv = qkv, .dout = dout, .y = out, .saved_in = saved, .T = T,
                .NH = NH, .HS = HS};
  return attn_run(&j, B, attn_bwd_range);
}

static ch_status op_attention_decode(const ch_backend *be, float *out, float *scratch,
                                     const float *qkv, float *kcache, float *vcache, int past,
                                     int n, int NH, int HS) {
  (void)be;
  size_t C = (size_t)NH * HS;
  if (C == 0) return CH_OK; /* a tensor-parallel rank without heads */
  for (int i = 0; i < n; i++) {
    const float *row = qkv + (size_t)i * 3 * C;
    memcpy(kcache + (size_t)(past + i) * C, row + C, sizeof(float) * C);
    memcpy(vcache + (size_t)(past + i) * C, row + 2 * C, sizeof(float) * C);
  }
  cpu_attention_forward(out, (int)C, NULL, scratch, qkv, 3 * (int)C, kcache, vcache, (int)C, n,
                        past + n, NH, HS);
  return CH_OK;
}

static ch_status op_embedding_fwd(const ch_backend *be, float *y, const int32_t *tokens,
                                  int64_t ldt, int pos0, const float *wte, const float *wpe,
                                  int B, int T, int C) {
  (void)be;
  cpu_par_embedding_forward(y, tokens, ldt, wte, wpe + (size_t)pos0 * C, B, T, C);
  return CH_OK;
}

static ch_status op_embedding_bwd(const ch_backend *be, float *dwte, float *dwpe,
                                  const float *dy, const int32_t *tokens, int64_t ldt, int B,
                                  int T, int C) {
  (void)be;
  for (int b = 0; b < B; b++)
    cpu_embedding_backward(dwte, dwpe, dy + (size_t)b * T * C, tokens + b * ldt, T, T, C);
  return CH_OK;
}

static ch_status op_xent_fwd(const ch_backend *be, const float *logits, const int32_t *labels,
                             int64_t ldl, int B, int T, int classes, double *loss,
                             int64_t *correct) {
  (void)be;
  *loss += cpu_par_xent_forward_seq(logits, labels, ldl, B, T, classes, correct);
  return CH_OK;
}

static ch_status op_xent_fused(const ch_backend *be, float *dlogits, const float *logits,
                               const int32_t *labels, int64_t ldl, int B, int T, int classes,
                               float scale, double *loss) {
  (void)be;
  *loss += cpu_par_xent_fused_seq(dlogits, logits, labels, ldl, B, T, classes, scale);
  return CH_OK;
}

static ch_status op_adamw(const ch_backend *be, const ch_span *spans, int nspans, float *p,
                          int p_flat, const float *g, int g_flat, float *m, float *v,
                          const ch_adamw_args *a) {
  (void)be;
  cpu_par_adamw(spans, nspans, p, p_flat, g, g_flat, m, v, a);
  return CH_OK;
}

static ch_status op_sgd(const ch_backend *be, const ch_span *spans, int nspans, float *p,
                        int p_flat, const float *g, int g_flat, float *m,
                        const ch_sgd_args *a) {
  (void)be;
  cpu_par_sgd(spans, nspans, p, p_flat, g, g_flat, m, a);
  return CH_OK;
}

static ch_status op_cast_f32_bf16(const ch_backend *be, uint16_t *y, const float *x, int64_t n) {
  (void)be;
  cpu_f32_to_bf16(y, x, n);
  return CH_OK;
}

static ch_status op_cast_bf16_f32(const ch_backend *be, float *y, const uint16_t *x, int64_t n) {
  (void)be;
  cpu_bf16_to_f32(y, x, n);
  return CH_OK;
}

/* Fused passes (kernels/cpu/fused.c). */
static ch_status op_matmul_gelu_fwd(const ch_backend *be, float *pre, float *y, const float *x,
                                    const float *w, const float *b, int64_t batch, int in,
                                    int out) {
  cpu_par_matmul_gelu_forward(cpu_bf16(be), pre, y, x, w, b, batch, in, out);
  return CH_OK;
}

static ch_status op_matmul_gelu_bwd(const ch_backend *be, float *dx, float *dw, float *db,
                                    float *dy, const float *pre, const float *x, const float *w,
                                    int64_t batch, int in, int out) {
  cpu_par_matmul_gelu_backward(cpu_bf16(be), dx, dw, db, dy, pre, x, w, batch, in, out);
  return CH_OK;
}

static ch_status op_add_layernorm_fwd(const ch_backend *be, float *res, float *y, float *mean,
                                      float *rstd, const float *a, const float *b,
                                      const float *w, const float *bias, int64_t rows, int dim,
                                      float eps) {
  (void)be;
  cpu_par_add_layernorm_forward(res, y, mean, rstd, a, b, w, bias, rows, dim, eps);
  return CH_OK;
}

static const ch_backend_ops cpu_ops = {
  .alloc = op_alloc, .free = op_free, .upload = op_copy, .download = op_copy,
  .stage = op_stage, .memset = op_memset, .sync = op_sync,
  .linear_fwd = op_linear_fwd, .linear_bwd = op_linear_bwd,
  .matmul_fwd = op_matmul_fwd, .matmul_bwd = op_matmul_bwd,
  .layernorm_fwd = op_layernorm_fwd, .layernorm_bwd = op_layernorm_bwd,
  .gelu_fwd = op_gelu_fwd, .gelu_bwd = op_gelu_bwd, .relu_fwd = op_relu_fwd,
  .relu_bwd = op_relu_bwd, .add = op_add, .scale = op_scale, .sumsq = op_sumsq,
  .attention_fwd = op_attention_fwd, .attention_bwd = op_attention_bwd,
  .attention_decode = op_attention_decode,
  .embedding_fwd = op_embedding_fwd, .embedding_bwd = op_embedding_bwd,
  .xent_fwd = op_xent_fwd, .xent_fused = op_xent_fused,
  .adamw = op_adamw, .sgd = op_sgd,
  .cast_f32_bf16 = op_cast_f32_bf16, .cast_bf16_f32 = op_cast_bf16_f32,
  .attention_saved = op_attention_saved,
  .matmul_gelu_fwd = op_matmul_gelu_fwd, .matmul_gelu_bwd = op_matmul_gelu_bwd,
  .add_layernorm_fwd = op_add_layernorm_fwd,
};

static const ch_backend cpu_backend = {.name = "cpu", .ops = &cpu_ops, .ctx = (void *)&g_fp32};
static const ch_backend cpu_backend_bf16 = {.name = "cpu bf16", .ops = &cpu_ops,
                                            .ctx = (void *)&g_bf16};

const ch_backend *ch_backend_cpu(void) { return &cpu_backend; }

const ch_backend *ch_backend_cpu_bf16(void) { return &cpu_backend_bf16; }
