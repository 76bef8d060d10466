/* Passes over activations on the CPU: what folding the bias (and GELU) into a GEMM's output
 * pass, and fusing LayerNorm with the residual add, buys (docs/gpt.md, "Fused passes").
 *
 * Part 1, the bias epilogue of y = x W + b (GPT-2 Conv1D, W [in, out]) with and without GELU:
 *   (a) copy b into every row of y, then the GEMM with beta = 1 (linear.c; one pass before);
 *   (b) the GEMM with beta = 0, then one pass adding b (and applying GELU);
 *   (c) the same over row panels of P rows, each panel's epilogue applied while it is still in
 *       L2 (OpenBLAS then repacks W once per panel).
 * Part 2, the backend ops of a GPT block's MLP and LayerNorms, one at a time, through the CPU
 * backend (the seam the model calls), then each fused op beside the composition it replaces.
 * (The residual buffers are reused across repetitions: the values drift, the work does not.)
 *
 * Each case runs after a warmup for --reps repetitions; the median and the best wall time and
 * the median CPU time of the calling thread are printed (ms). With one BLAS thread everything
 * runs on the calling thread, and on a shared machine its CPU time is the least disturbed
 * figure (the other processes' time slices are not counted; caches are still shared).
 *
 *   fused_ops [--rows 1024] [--dims 128,768] [--threads 1] [--reps 15] [--panels 32,64,128,256]
 *             [--epilogue 1]   (0: part 2 only)
 *
 * Output: "RESULT <part> <case> <C> <rows> <median_ms> <best_ms> <cpu_ms>" lines. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cohort/backend.h"
#include "cohort/kernels.h"
#include "common/bench_util.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/fastmath.h"
#include "kernels/cpu/simd.h"

#define MAX_LIST 16
#define MAX_REPS 200

static int g_reps = 15;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double thread_cpu(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int parse_list(const char *s, int *out) {
  int n = 0;
  char *copy = strdup(s), *save = NULL;
  for (char *t = strtok_r(copy, ",", &save); t && n < MAX_LIST; t = strtok_r(NULL, ",", &save))
    out[n++] = atoi(t);
  free(copy);
  return n;
}

static float *buf(size_t n, float scale) {
  float *x = ch_alloc_aligned(sizeof *x * (n ? n : 1));
  if (!x) {
    fprintf(stderr, "out of memory\n");
    exit(1);
  }
  for (size_t i = 0; i < n; i++) x[i] = scale * (float)((int)((i * 2654435761u) % 2001) - 1000) / 1000.0f;
  return x;
}

/* A case: one call of fn(ctx), timed. */
typedef void (*case_fn)(void *ctx);

static void timeit(const char *part, const char *name, int C, int rows, case_fn fn, void *ctx) {
  double t[MAX_REPS], cpu[MAX_REPS];
  fn(ctx); /* warmup: pages touched, OpenBLAS threads started */
  for (int r = 0; r < g_reps; r++) {
    double t0 = now(), c0 = thread_cpu();
    fn(ctx);
    cpu[r] = thread_cpu() - c0;
    t[r] = now() - t0;
  }
  bench_sort(t, g_reps);
  printf("RESULT %-9s %-28s %5d %6d %9.3f %9.3f %9.3f\n", part, name, C, rows,
         1e3 * bench_median(t, g_reps), 1e3 * t[0], 1e3 * bench_median(cpu, g_reps));
  fflush(stdout);
}

/* ---- part 1: the bias epilogue ----------------------------------------------------------- */

typedef struct epi {
  int rows, in, out, panel, gelu;
  float *x, *w, *b, *pre, *y;
} epi;

#define GELU_C 0.7978845608028654f
#define GELU_A 0.044715f

/* pre += b per row, and y = gelu(pre) when y: the one pass of (b) and (c). */
CH_VECTORIZE static void bias_gelu_rows(float *pre, float *y, const float *b, int rows, int out) {
  for (int r = 0; r < rows; r++) {
    float *p = pre + (size_t)r * out;
    for (int j = 0; j < out; j++) p[j] += b[j];
    if (!y) continue;
    float *q = y + (size_t)r * out;
    for (int j = 0; j < out; j++) {
      float v = p[j];
      q[j] = v / (1.0f + cpu_exp_f32(-2.0f * GELU_C * (v + GELU_A * v * v * v)));
    }
  }
}

static void epi_a(void *ctx) {
  epi *e = ctx;
  for (int r = 0; r < e->rows; r++) memcpy(e->pre + (size_t)r * e->out, e->b, sizeof(float) * e->out);
  ch_sgemm(0, 0, e->rows, e->out, e->in, 1.0f, e->x, e->in, e->w, e->out, 1.0f, e->pre, e->out);
  if (e->gelu) cpu_gelu_forward(e->y, e->pre, (int64_t)e->rows * e->out);
}

static void epi_b(void *ctx) {
  epi *e = ctx;
  ch_sgemm(0, 0, e->rows, e->out, e->in, 1.0f, e->x, e->in, e->w, e->out, 0.0f, e->pre, e->out);
  bias_gelu_rows(e->pre, e->gelu ? e->y : NULL, e->b, e->rows, e->out);
}

static void epi_c(void *ctx) {
  epi *e = ctx;
  for (int r0 = 0; r0 < e->rows; r0 += e->panel) {
    int n = e->rows - r0 < e->panel ? e->rows - r0 : e->panel;
    size_t o = (size_t)r0 * e->out;
    ch_sgemm(0, 0, n, e->out, e->in, 1.0f, e->x + (size_t)r0 * e->in, e->in, e->w, e->out, 0.0f,
             e->pre + o, e->out);
    bias_gelu_rows(e->pre + o, e->gelu ? e->y + o : NULL, e->b, n, e->out);
  }
}

/* (c) with the bias copied into the panel first and beta = 1: today's arithmetic, panelled. */
static void epi_c1(void *ctx) {
  epi *e = ctx;
  for (int r0 = 0; r0 < e->rows; r0 += e->panel) {
    int n = e->rows - r0 < e->panel ? e->rows - r0 : e->panel;
    size_t o = (size_t)r0 * e->out;
    for (int r = 0; r < n; r++) memcpy(e->pre + o + (size_t)r * e->out, e->b, sizeof(float) * e->out);
    ch_sgemm(0, 0, n, e->out, e->in, 1.0f, e->x + (size_t)r0 * e->in, e->in, e->w, e->out, 1.0f,
             e->pre + o, e->out);
    if (e->gelu) cpu_gelu_forward(e->y + o, e->pre + o, (int64_t)n * e->out);
  }
}

static void gemm_only(void *ctx) {
  epi *e = ctx;
  ch_sgemm(0, 0, e->rows, e->out, e->in, 1.0f, e->x, e->in, e->w, e->out, 0.0f, e->pre, e->out);
}

static void part_epilogue(int rows, int C, const int *panels, int npanels) {
  char name[64];
  /* the fc layer (C -> 4C, GELU after) and the attention projection (C -> C, bias only) */
  for (int k = 0; k < 2; k++) {
    epi e = {.rows = rows, .in = C, .out = k == 0 ? 4 * C : C, .gelu = k == 0};
    e.x = buf((size_t)rows * e.in, 1.0f), e.w = buf((size_t)e.in * e.out, 0.05f);
    e.b = buf((size_t)e.out, 0.1f), e.pre = buf((size_t)rows * e.out, 0.0f);
    e.y = buf((size_t)rows * e.out, 0.0f);
    const char *tag = k == 0 ? "fc+gelu" : "proj";
    snprintf(name, sizeof name, "%s gemm only", tag);
    timeit("epilogue", name, C, rows, gemm_only, &e);
    snprintf(name, sizeof name, "%s (a) copy+beta1", tag);
    timeit("epilogue", name, C, rows, epi_a, &e);
    snprintf(name, sizeof name, "%s (b) beta0+pass", tag);
    timeit("epilogue", name, C, rows, epi_b, &e);
    for (int p = 0; p < npanels; p++) {
      e.panel = panels[p];
      snprintf(name, sizeof name, "%s (c) panel %d", tag, e.panel);
      timeit("epilogue", name, C, rows, epi_c, &e);
      snprintf(name, sizeof name, "%s (c') panel %d beta1", tag, e.panel);
      timeit("epilogue", name, C, rows, epi_c1, &e);
    }
    ch_free_aligned(e.x), ch_free_aligned(e.w), ch_free_aligned(e.b), ch_free_aligned(e.pre);
    ch_free_aligned(e.y);
  }
}

/* ---- part 2: backend ops --------------------------------------------------------------- */

typedef struct ops {
  const ch_backend *be;
  int rows, C;
  float *x, *res, *ln, *mean, *rstd, *lnw, *lnb, *dlnw, *dlnb, *dx, *dy;
  float *fcw, *fcb, *dfcw, *dfcb, *pre, *act, *dpre, *dln;
  float *gpre; /* the backward's GELU input: >= 8, where gelu' is 1.0f exactly, so the gradient
                * updated in place keeps its values (no drift into denormals over the reps) */
} ops;

#define OPS(nm) static void nm(void *ctx) { ops *o = ctx; const ch_backend *be = o->be; \
  int64_t N = o->rows; int C = o->C; (void)N, (void)C;
OPS(op_add) ch_op_add(be, o->res, o->res, o->x, N * C); }
OPS(op_ln_fwd) ch_op_layernorm_fwd(be, o->ln, o->mean, o->rstd, o->res, o->lnw, o->lnb, N, C, 1e-5f); }
OPS(op_ln_bwd) ch_op_layernorm_bwd(be, o->dx, o->dlnw, o->dlnb, o->dy, o->res, o->mean, o->rstd, o->lnw, N, C); }
OPS(op_fc_fwd) ch_op_matmul_fwd(be, o->pre, o->ln, o->fcw, o->fcb, N, C, 4 * C); }
OPS(op_gelu_fwd) ch_op_gelu_fwd(be, o->act, o->pre, N * 4 * C); }
OPS(op_gelu_bwd) ch_op_gelu_bwd(be, o->dpre, o->dpre, o->gpre, N * 4 * C); }
OPS(op_fc_bwd) ch_op_matmul_bwd(be, o->dln, o->dfcw, o->dfcb, o->dpre, o->ln, o->fcw, N, C, 4 * C); }
/* the fused ops and the compositions they replace */
OPS(op_add_ln) ch_op_add(be, o->res, o->res, o->x, N * C);
  ch_op_layernorm_fwd(be, o->ln, o->mean, o->rstd, o->res, o->lnw, o->lnb, N, C, 1e-5f); }
OPS(op_add_ln_fused) ch_op_add_layernorm_fwd(be, o->res, o->ln, o->mean, o->rstd, o->res, o->x,
                                            o->lnw, o->lnb, N, C, 1e-5f); }
OPS(op_fc_gelu) ch_op_matmul_fwd(be, o->pre, o->ln, o->fcw, o->fcb, N, C, 4 * C);
  ch_op_gelu_fwd(be, o->act, o->pre, N * 4 * C); }
OPS(op_fc_gelu_fused) ch_op_matmul_gelu_fwd(be, o->pre, o->act, o->ln, o->fcw, o->fcb, N, C, 4 * C); }
OPS(op_gelu_fc_bwd) ch_op_gelu_bwd(be, o->dpre, o->dpre, o->gpre, N * 4 * C);
  ch_op_matmul_bwd(be, o->dln, o->dfcw, o->dfcb, o->dpre, o->ln, o->fcw, N, C, 4 * C); }
OPS(op_gelu_fc_bwd_fused) ch_op_matmul_gelu_bwd(be, o->dln, o->dfcw, o->dfcb, o->dpre, o->gpre,
                                               o->ln, o->fcw, N, C, 4 * C); }
#undef OPS

static void part_ops(int rows, int C) {
  ops o = {.be = ch_backend_cpu(), .rows = rows, .C = C};
  size_t n = (size_t)rows * C, f = 4 * n;
  o.x = buf(n, 1.0f), o.res = buf(n, 1.0f), o.ln = buf(n, 0), o.mean = buf(rows, 0);
  o.rstd = buf(rows, 0), o.lnw = buf(C, 1.0f), o.lnb = buf(C, 0.1f), o.dlnw = buf(C, 0);
  o.dlnb = buf(C, 0), o.dx = buf(n, 0), o.dy = buf(n, 1.0f), o.fcw = buf(4 * (size_t)C * C, 0.05f);
  o.fcb = buf(4 * (size_t)C, 0.1f), o.dfcw = buf(4 * (size_t)C * C, 0), o.dfcb = buf(4 * (size_t)C, 0);
  o.pre = buf(f, 0), o.act = buf(f, 0), o.dpre = buf(f, 0.01f), o.dln = buf(n, 0);
  o.gpre = buf(f, 1.0f);
  for (size_t i = 0; i < f; i++) o.gpre[i] += 9.0f;
  op_ln_fwd(&o); /* mean, rstd for the backward */
  timeit("ops", "add", C, rows, op_add, &o);
  timeit("ops", "layernorm_fwd", C, rows, op_ln_fwd, &o);
  timeit("ops", "layernorm_bwd", C, rows, op_ln_bwd, &o);
  timeit("ops", "matmul_fwd fc", C, rows, op_fc_fwd, &o);
  timeit("ops", "gelu_fwd", C, rows, op_gelu_fwd, &o);
  timeit("ops", "gelu_bwd", C, rows, op_gelu_bwd, &o);
  timeit("ops", "matmul_bwd fc", C, rows, op_fc_bwd, &o);
  timeit("ops", "add + layernorm_fwd", C, rows, op_add_ln, &o);
  timeit("ops", "add_layernorm_fwd (fused)", C, rows, op_add_ln_fused, &o);
  timeit("ops", "matmul_fwd + gelu_fwd", C, rows, op_fc_gelu, &o);
  timeit("ops", "matmul_gelu_fwd (fused)", C, rows, op_fc_gelu_fused, &o);
  timeit("ops", "gelu_bwd + matmul_bwd", C, rows, op_gelu_fc_bwd, &o);
  timeit("ops", "matmul_gelu_bwd (fused)", C, rows, op_gelu_fc_bwd_fused, &o);
  float *all[] = {o.x, o.res, o.ln, o.mean, o.rstd, o.lnw, o.lnb, o.dlnw, o.dlnb, o.dx, o.dy,
                  o.fcw, o.fcb, o.dfcw, o.dfcb, o.pre, o.act, o.dpre, o.dln, o.gpre};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) ch_free_aligned(all[i]);
}

int main(int argc, char **argv) {
  int rows = 1024, threads = 1, dims[MAX_LIST] = {128, 768}, ndims = 2, epilogue = 1;
  int panels[MAX_LIST] = {32, 64, 128, 256}, npanels = 4;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--rows")) rows = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--dims")) ndims = parse_list(argv[i + 1], dims);
    else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--reps")) g_reps = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--panels")) npanels = parse_list(argv[i + 1], panels);
    else if (!strcmp(argv[i], "--epilogue")) epilogue = atoi(argv[i + 1]);
    else {
      fprintf(stderr, "unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (g_reps < 1 || g_reps > MAX_REPS || rows < 1) {
    fprintf(stderr, "--reps in [1, %d], --rows >= 1\n", MAX_REPS);
    return 2;
  }
  if (ch_blas_init(threads) != CH_OK) {
    fprintf(stderr, "%s\n", ch_error_message());
    return 1;
  }
  char model[256];
  bench_cpu_model(model, sizeof model);
  printf("# fused_ops: %s, OpenBLAS %s, %d BLAS thread(s), %d reps\n", model, ch_blas_corename(),
         threads, g_reps);
  printf("# RESULT part case C rows median_ms best_ms cpu_ms\n");
  for (int d = 0; d < ndims; d++) {
    part_ops(rows, dims[d]);
    if (epilogue) part_epilogue(rows, dims[d], panels, npanels);
  }
  return 0;
}
