/* The non-GEMM ops on the kernel thread pool: each splits the serial kernel's work over rows or
 * elements (cpu_parallel_for), or, for sums, over fixed chunks added in a fixed order
 * (cpu_parallel_chunks), so that no result depends on the thread count: cohort compares N
 * ranks with one rank, and resumed runs with uninterrupted ones, bit for bit.
 *
 * Grains: the least work of one piece, so that what is split takes well over a wake-up
 * (~10 us) per piece; smaller calls (a decoding step's rows) run inline. */
#include "kernels/cpu/parallel_ops.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/pool.h"

/* Elements per piece: streaming ops (an add, a scale, relu) do ~1 ns of memory traffic per
 * element at most; gelu's exp makes it a few; the optimizers read and write 4 arrays. */
#define GRAIN_STREAM ((int64_t)1 << 15)
#define GRAIN_EXP ((int64_t)1 << 13)
#define GRAIN_OPT ((int64_t)1 << 14)
/* Elements per piece of the row-wise ops (layernorm, xent, embedding): rows of this many. A
 * decoding step's LayerNorm (32 sequences of 768) stays inline. */
#define GRAIN_ROW_ELEMS ((int64_t)1 << 14)

static int64_t row_grain(int64_t row_len) {
  return row_len >= GRAIN_ROW_ELEMS ? 1 : GRAIN_ROW_ELEMS / (row_len > 0 ? row_len : 1);
}

/* ---- elementwise ----------------------------------------------------------------------- */

typedef struct {
  float *y;
  const float *a, *b;
  float s;
} ew_job;

static void gelu_fwd_run(void *p, int64_t i0, int64_t i1) {
  const ew_job *j = p;
  cpu_gelu_forward(j->y + i0, j->a + i0, i1 - i0);
}
static void gelu_bwd_run(void *p, int64_t i0, int64_t i1) {
  const ew_job *j = p;
  cpu_gelu_backward(j->y + i0, j->a + i0, j->b + i0, i1 - i0);
}
static void relu_fwd_run(void *p, int64_t i0, int64_t i1) {
  const ew_job *j = p;
  cpu_relu_forward(j->y + i0, j->a + i0, i1 - i0);
}
static void relu_bwd_run(void *p, int64_t i0, int64_t i1) {
  const ew_job *j = p;
  cpu_relu_backward(j->y + i0, j->a + i0, j->b + i0, i1 - i0);
}
static void add_run(void *p, int64_t i0, int64_t i1) {
  const ew_job *j = p;
  cpu_add(j->y + i0, j->a + i0, j->b + i0, i1 - i0);
}
static void scale_run(void *p, int64_t i0, int64_t i1) {
  const ew_job *j = p;
  cpu_scale(j->y + i0, j->s, i1 - i0);
}

void cpu_par_gelu_forward(float *y, const float *x, int64_t n) {
  cpu_parallel_for(n, GRAIN_EXP, gelu_fwd_run, &(ew_job){.y = y, .a = x});
}
void cpu_par_gelu_backward(float *dx, const float *dy, const float *x, int64_t n) {
  cpu_parallel_for(n, GRAIN_EXP, gelu_bwd_run, &(ew_job){.y = dx, .a = dy, .b = x});
}
void cpu_par_relu_forward(float *y, const float *x, int64_t n) {
  cpu_parallel_for(n, GRAIN_STREAM, relu_fwd_run, &(ew_job){.y = y, .a = x});
}
void cpu_par_relu_backward(float *dx, const float *dy, const float *x, int64_t n) {
  cpu_parallel_for(n, GRAIN_STREAM, relu_bwd_run, &(ew_job){.y = dx, .a = dy, .b = x});
}
void cpu_par_add(float *y, const float *a, const float *b, int64_t n) {
  cpu_parallel_for(n, GRAIN_STREAM, add_run, &(ew_job){.y = y, .a = a, .b = b});
}
void cpu_par_scale(float *x, float s, int64_t n) {
  cpu_parallel_for(n, GRAIN_STREAM, scale_run, &(ew_job){.y = x, .s = s});
}

static double sumsq_run(void *p, int64_t i0, int64_t i1) {
  return cpu_sumsq((const float *)p + i0, i1 - i0);
}
double cpu_par_sumsq(const float *x, int64_t n) {
  return cpu_parallel_sum(n, CPU_PAR_SUMSQ_CHUNK, sumsq_run, (void *)x);
}

/* ---- layernorm ------------------------------------------------------------------------- */

typedef struct {
  float *y, *mean, *rstd;
  const float *x, *w, *b;
  int dim;
  float eps;
} ln_fwd_job;

static void ln_fwd_run(void *p, int64_t r0, int64_t r1) {
  const ln_fwd_job *j = p;
  size_t o = (size_t)r0 * j->dim;
  cpu_layernorm_forward(j->y + o, j->mean ? j->mean + r0 : NULL, j->rstd ? j->rstd + r0 : NULL,
                        j->x + o, j->w, j->b, r1 - r0, j->dim, j->eps);
}

void cpu_par_layernorm_forward(float *y, float *mean, float *rstd, const float *x, const float *w,
                               const float *b, int64_t rows, int dim, float eps) {
  ln_fwd_job j = {y, mean, rstd, x, w, b, dim, eps};
  cpu_parallel_for(rows, row_grain(dim), ln_fwd_run, &j);
}

/* Chunks of at least 2^15 elements (a piece worth splitting), and at most 256 of them, which
 * bounds the partials (256 x 2 dim floats) and still feeds 64 threads. */
int64_t cpu_par_ln_chunk_rows(int64_t rows, int dim) {
  int64_t r = ((int64_t)1 << 15) / (dim > 0 ? dim : 1);
  int64_t cap = (rows + 255) / 256;
  r = r > cap ? r : cap;
  return r > 0 ? r : 1;
}

typedef struct {
  float *dx, *part; /* part: per chunk, dim floats of dw then dim of db */
  const float *dy, *x, *mean, *rstd, *w;
  int64_t chunk;
  int dim, nchunks;
  float *dw, *db;
} ln_bwd_job;

static void ln_bwd_run(void *p, int64_t r0, int64_t r1) {
  const ln_bwd_job *j = p;
  size_t o = (size_t)r0 * j->dim;
  float *pw = j->part + (size_t)(r0 / j->chunk) * 2 * j->dim, *pb = pw + j->dim;
  memset(pw, 0, sizeof *pw * 2 * (size_t)j->dim);
  cpu_layernorm_backward(j->dx + o, pw, pb, j->dy + o, j->x + o, j->mean + r0, j->rstd + r0, j->w,
                         r1 - r0, j->dim);
}

/* dw[k] += part_0[k], += part_1[k], ... in chunk order, column by column. */
static void ln_bwd_combine(void *p, int64_t k0, int64_t k1) {
  const ln_bwd_job *j = p;
  for (int c = 0; c < j->nchunks; c++) {
    const float *pw = j->part + (size_t)c * 2 * j->dim, *pb = pw + j->dim;
    for (int64_t k = k0; k < k1; k++) {
      j->dw[k] += pw[k];
      j->db[k] += pb[k];
    }
  }
}

void cpu_par_layernorm_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                                const float *mean, const float *rstd, const float *w,
                                int64_t rows, int dim) {
  int64_t chunk = cpu_par_ln_chunk_rows(rows, dim);
  int64_t nchunks = (rows + chunk - 1) / chunk;
  float *part = nchunks > 1 ? malloc(sizeof *part * 2 * (size_t)dim * (size_t)nchunks) : NULL;
  if (!part) { /* one chunk; or no memory for the partials: the serial kernel, also exact */
    cpu_layernorm_backward(dx, dw, db, dy, x, mean, rstd, w, rows, dim);
    return;
  }
  ln_bwd_job j = {dx, part, dy, x, mean, rstd, w, chunk, dim, (int)nchunks, dw, db};
  cpu_parallel_chunks(rows, chunk, ln_bwd_run, &j);
  cpu_parallel_for(dim, GRAIN_STREAM / nchunks + 1, ln_bwd_combine, &j);
  free(part);
}

/* ---- embedding ------------------------------------------------------------------------- */

typedef struct {
  float *y;
  const int32_t *tokens;
  int64_t ldt;
  const float *wte, *wpe;
  int T, C;
} emb_job;

/* Rows i = b T + t of the batch, cut at sequence boundaries into the kernel's calls. */
static void emb_fwd_run(void *p, int64_t i0, int64_t i1) {
  const emb_job *j = p;
  for (int64_t i = i0; i < i1;) {
    int64_t b = i / j->T, t = i % j->T, end = (b + 1) * j->T < i1 ? (b + 1) * j->T : i1;
    cpu_embedding_forward(j->y + (size_t)i * j->C, j->tokens + b * j->ldt + t, j->wte,
                          j->wpe + (size_t)t * j->C, end - i, j->T, j->C);
    i = end;
  }
}

void cpu_par_embedding_forward(float *y, const int32_t *tokens, int64_t ldt, const float *wte,
                               const float *wpe, int B, int T, int C) {
  emb_job j = {y, tokens, ldt, wte, wpe, T, C};
  cpu_parallel_for((int64_t)B * T, row_grain(C), emb_fwd_run, &j);
}

/* ---- cross-entropy --------------------------------------------------------------------- */

/* Each row's loss is the kernel's own (a one-row call returns 0.0 + that row's loss, exactly)
 * and goes to loss[i]; the caller adds them in row order, as the kernel's loop does. */
typedef struct {
  float *d;
  const float *z;
  const int32_t *labels;
  int64_t ldl;
  int T, C;
  float scale;
  double *loss;
  _Atomic int64_t correct;
  int count;
} xent_job;

static void xent_fwd_run(void *p, int64_t i0, int64_t i1) {
  xent_job *j = p;
  int64_t correct = 0;
  for (int64_t i = i0; i < i1; i++)
    j->loss[i] = cpu_xent_forward_seq(j->z + (size_t)i * j->C,
                                      j->labels + (i / j->T) * j->ldl + i % j->T, 1, 1, 1, j->C,
                                      j->count ? &correct : NULL);
  if (j->count) atomic_fetch_add(&j->correct, correct);
}

static void xent_fused_run(void *p, int64_t i0, int64_t i1) {
  xent_job *j = p;
  for (int64_t i = i0; i < i1; i++)
    j->loss[i] = cpu_xent_fused_seq(j->d + (size_t)i * j->C, j->z + (size_t)i * j->C,
                                    j->labels + (i / j->T) * j->ldl + i % j->T, 1, 1, 1, j->C,
                                    j->scale);
}

/* Runs fn over the rows into j->loss and sets *total to their sum in row order. Returns 0 when
 * the rows are too few to split (or there is no memory): the caller runs the serial kernel. */
static int xent_split(xent_job *j, int64_t rows, cpu_range_fn fn, double *total) {
  int64_t grain = row_grain(j->C);
  if (cpu_pool_threads() < 2 || rows < 2 * grain) return 0;
  j->loss = malloc(sizeof *j->loss * (size_t)rows);
  if (!j->loss) return 0;
  cpu_parallel_for(rows, grain, fn, j);
  double sum = 0.0;
  for (int64_t i = 0; i < rows; i++) sum += j->loss[i];
  free(j->loss);
  *total = sum;
  return 1;
}

double cpu_par_xent_forward_seq(const float *logits, const int32_t *labels, int64_t ldl, int B,
                                int T, int classes, int64_t *correct) {
  xent_job j = {.z = logits, .labels = labels, .ldl = ldl, .T = T, .C = classes,
                .count = correct != NULL};
  double total;
  if (!xent_split(&j, (int64_t)B * T, xent_fwd_run, &total))
    return cpu_xent_forward_seq(logits, labels, ldl, B, T, classes, correct);
  if (correct) *correct += atomic_load(&j.correct);
  return total;
}

double cpu_par_xent_fused_seq(float *dlogits, const float *logits, const int32_t *labels,
                              int64_t ldl, int B, int T, int classes, float scale) {
  xent_job j = {.d = dlogits, .z = logits, .labels = labels, .ldl = ldl, .T = T, .C = classes,
                .scale = scale};
  double total;
  if (!xent_split(&j, (int64_t)B * T, xent_fused_run, &total))
    return cpu_xent_fused_seq(dlogits, logits, labels, ldl, B, T, classes, scale);
  return total;
}

/* ---- optimizers ------------------------------------------------------------------------ */

/* The spans, laid end to end, are one range of elements; a piece runs the parts of the spans
 * it overlaps (elementwise updates: any cut gives the same bits). */
typedef struct {
  const ch_span *spans;
  int nspans, p_flat, g_flat;
  float *p, *m, *v;
  const float *g;
  const ch_adamw_args *adamw;
  const ch_sgd_args *sgd;
} opt_job;

static void opt_run(void *ctx, int64_t i0, int64_t i1) {
  const opt_job *j = ctx;
  int64_t off = 0;
  for (int s = 0; s < j->nspans && off < i1; s++) {
    const ch_span *sp = &j->spans[s];
    int64_t a = i0 > off ? i0 - off : 0, e = (int64_t)sp->n < i1 - off ? (int64_t)sp->n : i1 - off;
    off += (int64_t)sp->n;
    if (a >= e) continue;
    float *p = j->p + (j->p_flat ? sp->flat : sp->local) + a;
    const float *g = j->g + (j->g_flat ? sp->flat : sp->local) + a;
    float *m = j->m + sp->local + a;
    if (j->adamw) {
      const ch_adamw_args *o = j->adamw;
      float wd = sp->decay ? o->weight_decay : 0.0f;
      cpu_adamw_span(p, g, m, j->v + sp->local + a, (size_t)(e - a), 1.0f - o->lr * wd, o->beta1,
                     o->beta2, o->lr / o->bc1, o->sqrt_bc2, o->eps);
    } else {
      const ch_sgd_args *o = j->sgd;
      cpu_sgd_span(p, g, m, (size_t)(e - a), o->lr, sp->decay ? o->weight_decay : 0.0f,
                   o->momentum, o->first);
    }
  }
}

static void opt_all(opt_job *j) {
  int64_t total = 0;
  for (int s = 0; s < j->nspans; s++) total += (int64_t)j->spans[s].n;
  cpu_parallel_for(total, GRAIN_OPT, opt_run, j);
}

void cpu_par_adamw(const ch_span *spans, int nspans, float *p, int p_flat, const float *g,
                   int g_flat, float *m, float *v, const ch_adamw_args *a) {
  opt_job j = {.spans = spans, .nspans = nspans, .p_flat = p_flat, .g_flat = g_flat, .p = p,
               .m = m, .v = v, .g = g, .adamw = a};
  opt_all(&j);
}

void cpu_par_sgd(const ch_span *spans, int nspans, float *p, int p_flat, const float *g,
                 int g_flat, float *m, const ch_sgd_args *a) {
  opt_job j = {.spans = spans, .nspans = nspans, .p_flat = p_flat, .g_flat = g_flat, .p = p,
               .m = m, .g = g, .sgd = a};
  opt_all(&j);
}

/* ---- fused passes ---------------------------------------------------------------------- */

void cpu_par_matmul_gelu_forward(int bf16, float *pre, float *y, const float *x, const float *w,
                                 const float *b, int64_t batch, int in, int out) {
  cpu_matmul_forward(bf16, pre, x, w, b, batch, in, out);
  cpu_par_gelu_forward(y, pre, batch * out);
}

/* One thread: the fused pass (db summed while dpre is written). More: GELU's gradient split
 * over elements, then db summed by the GEMM backward as the unfused ops did. The same bits
 * either way; a split of the fused pass over columns measured slower than both (gpt-tiny's
 * fc, 2048 x 512, 2 threads: 5.8 ms against 5.2 ms for the two passes), each thread striding
 * over every row. */
void cpu_par_matmul_gelu_backward(int bf16, float *dx, float *dw, float *db, float *dy,
                                  const float *pre, const float *x, const float *w,
                                  int64_t batch, int in, int out) {
  if (batch <= 0) return;
  if (cpu_pool_threads() <= 1) {
    cpu_matmul_gelu_backward(bf16, dx, dw, db, dy, pre, x, w, batch, in, out);
    return;
  }
  cpu_par_gelu_backward(dy, dy, pre, batch * out);
  cpu_matmul_backward(bf16, dx, dw, db, dy, x, w, batch, in, out);
}

typedef struct {
  float *res, *y, *mean, *rstd;
  const float *a, *b, *w, *bias;
  int dim;
  float eps;
} add_ln_job;

static void add_ln_run(void *p, int64_t r0, int64_t r1) {
  const add_ln_job *j = p;
  size_t o = (size_t)r0 * j->dim;
  cpu_add_layernorm_forward(j->res + o, j->y + o, j->mean ? j->mean + r0 : NULL,
                            j->rstd ? j->rstd + r0 : NULL, j->a + o, j->b + o, j->w, j->bias,
                            r1 - r0, j->dim, j->eps);
}

void cpu_par_add_layernorm_forward(float *res, float *y, float *mean, float *rstd, const float *a,
                                   const float *b, const float *w, const float *bias,
                                   int64_t rows, int dim, float eps) {
  add_ln_job j = {res, y, mean, rstd, a, b, w, bias, dim, eps};
  cpu_parallel_for(rows, row_grain(dim), add_ln_run, &j);
}
