/* The kernel thread pool (kernels/cpu/pool.c) and the ops on it (kernels/cpu/parallel_ops.c).
 *
 * The pool: cpu_parallel_for covers [0, n) exactly once with ranges of at least `grain`, for
 * many n, grains and thread counts; reductions give the same bits for 1..4 threads; two threads
 * calling at once (the server's case) and a call from inside a job both work.
 * The ops: each cpu_par_* wrapper against its serial kernel at 1, 2, 3 and 4 threads, with
 * sizes that split into many pieces. Bit-identical where the wrapper only cuts independent work
 * (elementwise ops, rows, row losses added in row order). sumsq and layernorm backward's dw/db
 * add fixed chunks in a fixed order: bit-identical across thread counts, and as close to the
 * exact sums as the serial kernel (sumsq within 1e-12 relative of a double sum; dw/db no more
 * than twice the serial kernel's own error against a double reference, and below 1e-5 of the
 * largest entry: both sum in float, in different orders, so neither is exact and they do not
 * agree to 1e-6). */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/parallel_ops.h"
#include "kernels/cpu/pool.h"
#include "testlib.h"

static const int THREADS[] = {1, 2, 3, 4};
#define NTHREADS ((int)(sizeof THREADS / sizeof *THREADS))

static float *rnd(size_t n, uint64_t stream) {
  float *x = malloc(sizeof *x * (n ? n : 1));
  cht_fill_uniform(x, n, 11, stream);
  return x;
}

static float *copyf(const float *x, size_t n) {
  float *y = malloc(sizeof *y * (n ? n : 1));
  memcpy(y, x, sizeof *y * n);
  return y;
}

/* max_i |a_i - r_i| / max_j |r_j|: fp32 sums err in proportion to their terms, not to the
 * result, so entries that cancel to near zero are judged on the tensor's scale. */
static double err_max(const float *a, const double *r, int n) {
  double num = 0, den = 0;
  for (int i = 0; i < n; i++) {
    double d = fabs((double)a[i] - r[i]);
    if (!(d <= num)) num = d;
    den = fmax(den, fabs(r[i]));
  }
  return num / fmax(den, 1e-300);
}

static void same_bits(const float *a, const float *b, size_t n, const char *what, int threads) {
  CHT_ASSERT(memcmp(a, b, sizeof *a * n) == 0, "%s at %d threads: differs from the serial kernel",
             what, threads);
}

/* ---- cpu_parallel_for -------------------------------------------------------------------- */

typedef struct {
  _Atomic int *seen;
  int64_t grain, n;
  _Atomic int short_range, calls;
} cover_job;

static void cover_run(void *p, int64_t b, int64_t e) {
  cover_job *j = p;
  atomic_fetch_add(&j->calls, 1);
  if (e - b < j->grain && !(b == 0 && e == j->n)) atomic_store(&j->short_range, 1);
  for (int64_t i = b; i < e; i++) atomic_fetch_add(&j->seen[i], 1);
}

static void test_cover(void) {
  const int64_t ns[] = {0, 1, 2, 3, 7, 64, 100, 1000, 4097, 123457};
  const int64_t grains[] = {1, 2, 3, 64, 1000, 100000};
  _Atomic int *seen = malloc(sizeof *seen * 123457);
  for (int t = 1; t <= 7; t++) {
    cpu_pool_set_threads(t);
    CHT_ASSERT(cpu_pool_threads() == t, "cpu_pool_threads %d, set %d", cpu_pool_threads(), t);
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
      for (size_t g = 0; g < sizeof grains / sizeof *grains; g++) {
        int64_t n = ns[a];
        for (int64_t i = 0; i < n; i++) atomic_init(&seen[i], 0);
        cover_job j = {.seen = seen, .grain = grains[g], .n = n};
        atomic_init(&j.short_range, 0);
        atomic_init(&j.calls, 0);
        cpu_parallel_for(n, grains[g], cover_run, &j);
        for (int64_t i = 0; i < n; i++)
          CHT_ASSERT(atomic_load(&seen[i]) == 1, "n %lld grain %lld threads %d: index %lld run %d times",
                     (long long)n, (long long)grains[g], t, (long long)i, atomic_load(&seen[i]));
        CHT_ASSERT(!atomic_load(&j.short_range), "n %lld grain %lld threads %d: a range below the grain",
                   (long long)n, (long long)grains[g], t);
        /* below two grains: one inline call (a small op pays no wake-up) */
        if (n > 0 && n < 2 * grains[g])
          CHT_ASSERT(atomic_load(&j.calls) == 1, "n %lld grain %lld: %d calls, want 1 (inline)",
                     (long long)n, (long long)grains[g], atomic_load(&j.calls));
        if (t > 1 && n >= 4 * grains[g] && n >= 4)
          CHT_ASSERT(atomic_load(&j.calls) > 1, "n %lld grain %lld threads %d: not split",
                     (long long)n, (long long)grains[g], t);
      }
  }
  free(seen);
}

/* A job whose ranges start a job of their own: the inner one finds the pool busy and runs
 * inline on the calling thread. */
static void nested_inner(void *p, int64_t b, int64_t e) {
  _Atomic int64_t *sum = p;
  for (int64_t i = b; i < e; i++) atomic_fetch_add(sum, i);
}
static void nested_outer(void *p, int64_t b, int64_t e) {
  for (int64_t i = b; i < e; i++) cpu_parallel_for(1000, 10, nested_inner, p);
}
static void test_nested(void) {
  cpu_pool_set_threads(3);
  _Atomic int64_t sum = 0;
  cpu_parallel_for(40, 1, nested_outer, &sum);
  CHT_ASSERT(atomic_load(&sum) == 40LL * 999 * 1000 / 2, "nested: sum %lld",
             (long long)atomic_load(&sum));
}

/* ---- reductions -------------------------------------------------------------------------- */

static double cube_sum(void *p, int64_t b, int64_t e) {
  const float *x = p;
  double s = 0;
  for (int64_t i = b; i < e; i++) s += (double)x[i] * x[i] * x[i];
  return s;
}

static void test_reductions(void) {
  const int64_t ns[] = {1, 1000, CPU_PAR_SUMSQ_CHUNK, CPU_PAR_SUMSQ_CHUNK + 1, 1000003};
  float *x = rnd(1000003, 1);
  for (size_t a = 0; a < sizeof ns / sizeof *ns; a++) {
    int64_t n = ns[a];
    double ref = 0, first = 0, cfirst = 0;
    for (int64_t i = 0; i < n; i++) ref += (double)x[i] * x[i];
    for (int t = 0; t < NTHREADS; t++) {
      cpu_pool_set_threads(THREADS[t]);
      double s = cpu_par_sumsq(x, n), c = cpu_parallel_sum(n, 777, cube_sum, x);
      if (t == 0) first = s, cfirst = c;
      CHT_ASSERT(memcmp(&s, &first, sizeof s) == 0 && memcmp(&c, &cfirst, sizeof c) == 0,
                 "n %lld: sums at %d threads differ from 1 thread", (long long)n, THREADS[t]);
      if (n <= CPU_PAR_SUMSQ_CHUNK) {
        double k = cpu_sumsq(x, n);
        CHT_ASSERT(memcmp(&s, &k, sizeof s) == 0, "n %lld: one chunk is not cpu_sumsq", (long long)n);
      }
      CHT_ASSERT(fabs(s - ref) <= 1e-12 * ref, "n %lld: sumsq %.17g, reference %.17g",
                 (long long)n, s, ref);
    }
  }
  free(x);
}

/* ---- the ops against their serial kernels ------------------------------------------------ */

static void test_elementwise(void) {
  const int64_t n = 300007; /* odd: pieces end off any vector boundary */
  float *x = rnd(n, 2), *dy = rnd(n, 3), *b = rnd(n, 4);
  for (int64_t i = 0; i < n; i++) x[i] *= 4.0f; /* gelu over [-4, 4] */
  float *ref = malloc(sizeof *ref * n), *got = malloc(sizeof *got * n);
  for (int t = 0; t < NTHREADS; t++) {
    cpu_pool_set_threads(THREADS[t]);
    cpu_gelu_forward(ref, x, n), cpu_par_gelu_forward(got, x, n);
    same_bits(got, ref, n, "gelu forward", THREADS[t]);
    cpu_gelu_backward(ref, dy, x, n), cpu_par_gelu_backward(got, dy, x, n);
    same_bits(got, ref, n, "gelu backward", THREADS[t]);
    cpu_relu_forward(ref, x, n), cpu_par_relu_forward(got, x, n);
    same_bits(got, ref, n, "relu forward", THREADS[t]);
    cpu_relu_backward(ref, dy, x, n), cpu_par_relu_backward(got, dy, x, n);
    same_bits(got, ref, n, "relu backward", THREADS[t]);
    cpu_add(ref, x, b, n), cpu_par_add(got, x, b, n);
    same_bits(got, ref, n, "add", THREADS[t]);
    memcpy(got, b, sizeof *got * n), cpu_par_add(got, x, got, n); /* y aliases b */
    same_bits(got, ref, n, "add (aliased)", THREADS[t]);
    memcpy(ref, x, sizeof *ref * n), memcpy(got, x, sizeof *got * n);
    cpu_scale(ref, 0.37f, n), cpu_par_scale(got, 0.37f, n);
    same_bits(got, ref, n, "scale", THREADS[t]);
  }
  free(x), free(dy), free(b), free(ref), free(got);
}

static void test_layernorm(void) {
  const int dims[] = {7, 128, 768};
  const int64_t rowss[] = {3, 300, 1500};
  for (int d = 0; d < 3; d++)
    for (int r = 0; r < 3; r++) {
      int dim = dims[d];
      int64_t rows = rowss[r];
      size_t n = (size_t)rows * dim;
      float *x = rnd(n, 5), *dy = rnd(n, 6), *w = rnd(dim, 7), *b = rnd(dim, 8);
      float *y0 = malloc(sizeof *y0 * n), *y1 = malloc(sizeof *y1 * n);
      float *m0 = malloc(sizeof *m0 * rows), *m1 = malloc(sizeof *m1 * rows);
      float *s0 = malloc(sizeof *s0 * rows), *s1 = malloc(sizeof *s1 * rows);
      float *dx0 = rnd(n, 9), *dw0 = rnd(dim, 10), *db0 = rnd(dim, 11);
      cpu_layernorm_forward(y0, m0, s0, x, w, b, rows, dim, 1e-5f);
      cpu_layernorm_backward(dx0, dw0, db0, dy, x, m0, s0, w, rows, dim);
      int one_chunk = cpu_par_ln_chunk_rows(rows, dim) >= rows;
      /* dw, db in double from the same float xhat as the kernel's (and the same initial values) */
      double *wref = malloc(sizeof *wref * dim), *bref = malloc(sizeof *bref * dim);
      float *w_init = rnd(dim, 10), *b_init = rnd(dim, 11);
      for (int k = 0; k < dim; k++) wref[k] = w_init[k], bref[k] = b_init[k];
      for (int64_t i = 0; i < rows; i++)
        for (int k = 0; k < dim; k++) {
          float xh = (x[i * dim + k] - m0[i]) * s0[i];
          wref[k] += (double)dy[i * dim + k] * xh;
          bref[k] += dy[i * dim + k];
        }
      free(w_init), free(b_init);
      float *dw_first = NULL, *db_first = NULL;
      for (int t = 0; t < NTHREADS; t++) {
        cpu_pool_set_threads(THREADS[t]);
        cpu_par_layernorm_forward(y1, m1, s1, x, w, b, rows, dim, 1e-5f);
        same_bits(y1, y0, n, "layernorm forward y", THREADS[t]);
        same_bits(m1, m0, rows, "layernorm forward mean", THREADS[t]);
        same_bits(s1, s0, rows, "layernorm forward rstd", THREADS[t]);
        cpu_par_layernorm_forward(y1, NULL, NULL, x, w, b, rows, dim, 1e-5f);
        same_bits(y1, y0, n, "layernorm forward (no mean/rstd)", THREADS[t]);
        float *dx = rnd(n, 9), *dw = rnd(dim, 10), *db = rnd(dim, 11); /* accumulated into */
        cpu_par_layernorm_backward(dx, dw, db, dy, x, m0, s0, w, rows, dim);
        same_bits(dx, dx0, n, "layernorm backward dx", THREADS[t]);
        if (one_chunk) {
          same_bits(dw, dw0, dim, "layernorm backward dw (one chunk)", THREADS[t]);
          same_bits(db, db0, dim, "layernorm backward db (one chunk)", THREADS[t]);
        } else { /* other sums than the kernel's: as close to the exact ones as its are */
          double ew = err_max(dw, wref, dim), eb = err_max(db, bref, dim);
          double sw = err_max(dw0, wref, dim), sb = err_max(db0, bref, dim);
          CHT_ASSERT(ew <= 2 * sw + 1e-7 && eb <= 2 * sb + 1e-7 && ew < 1e-5 && eb < 1e-5,
                     "layernorm backward %lld x %d: dw/db error %g / %g, serial kernel's %g / %g",
                     (long long)rows, dim, ew, eb, sw, sb);
          if (t == 1)
            printf("layernorm backward %lld x %d, error relative to the largest entry of the "
                   "exact dw / db: chunked %.2g / %.2g, serial kernel %.2g / %.2g\n",
                   (long long)rows, dim, ew, eb, sw, sb);
        }
        if (t == 0) {
          dw_first = copyf(dw, dim), db_first = copyf(db, dim);
        } else {
          same_bits(dw, dw_first, dim, "layernorm backward dw vs 1 thread", THREADS[t]);
          same_bits(db, db_first, dim, "layernorm backward db vs 1 thread", THREADS[t]);
        }
        free(dx), free(dw), free(db);
      }
      free(dw_first), free(db_first), free(wref), free(bref);
      free(x), free(dy), free(w), free(b), free(y0), free(y1), free(m0), free(m1), free(s0);
      free(s1), free(dx0), free(dw0), free(db0);
    }
}

static void test_embedding(void) {
  const int B = 9, T = 37, C = 200, V = 50, ldt = T + 3;
  int32_t *tokens = malloc(sizeof *tokens * B * ldt);
  for (int i = 0; i < B * ldt; i++) tokens[i] = (i * 7919) % V;
  float *wte = rnd((size_t)V * C, 12), *wpe = rnd((size_t)(T + 5) * C, 13);
  size_t n = (size_t)B * T * C;
  float *ref = malloc(sizeof *ref * n), *got = malloc(sizeof *got * n);
  for (int b = 0; b < B; b++) /* the backend's loop before the pool, at position offset 5 */
    cpu_embedding_forward(ref + (size_t)b * T * C, tokens + b * ldt, wte, wpe + 5 * C, T, T, C);
  for (int t = 0; t < NTHREADS; t++) {
    cpu_pool_set_threads(THREADS[t]);
    memset(got, 0, sizeof *got * n);
    cpu_par_embedding_forward(got, tokens, ldt, wte, wpe + 5 * C, B, T, C);
    same_bits(got, ref, n, "embedding forward", THREADS[t]);
  }
  /* no rows at all (a rank without sequences in a micro-step): nothing to do, no division */
  cpu_pool_set_threads(2);
  cpu_par_embedding_forward(ref, tokens, ldt, wte, wpe, 0, T, C);
  cpu_par_layernorm_forward(ref, NULL, NULL, wte, wte, wte, 0, C, 1e-5f);
  cpu_par_layernorm_backward(ref, got, got, ref, wte, wte, wte, wte, 0, C);
  CHT_ASSERT(cpu_par_xent_fused_seq(ref, wte, tokens, ldt, 0, T, C, 1.0f) == 0.0, "xent of 0 rows");
  free(tokens), free(wte), free(wpe), free(ref), free(got);
}

static void test_xent(void) {
  const int Bs[] = {1, 6, 40}, T = 50, ldl = T + 1;
  const int Cs[] = {10, 256, 1000};
  for (int bi = 0; bi < 3; bi++)
    for (int ci = 0; ci < 3; ci++) {
      int B = Bs[bi], C = Cs[ci];
      size_t n = (size_t)B * T * C;
      float *z = rnd(n, 14);
      for (size_t i = 0; i < n; i++) z[i] *= 5.0f;
      int32_t *labels = malloc(sizeof *labels * B * ldl);
      for (int i = 0; i < B * ldl; i++) labels[i] = (i * 31) % C;
      int64_t c0 = 3;
      double l0 = cpu_xent_forward_seq(z, labels, ldl, B, T, C, &c0);
      float *d0 = malloc(sizeof *d0 * n), *d1 = malloc(sizeof *d1 * n);
      double f0 = cpu_xent_fused_seq(d0, z, labels, ldl, B, T, C, 0.01f);
      for (int t = 0; t < NTHREADS; t++) {
        cpu_pool_set_threads(THREADS[t]);
        int64_t c1 = 3;
        double l1 = cpu_par_xent_forward_seq(z, labels, ldl, B, T, C, &c1);
        double l2 = cpu_par_xent_forward_seq(z, labels, ldl, B, T, C, NULL);
        CHT_ASSERT(memcmp(&l1, &l0, sizeof l0) == 0 && memcmp(&l2, &l0, sizeof l0) == 0 && c1 == c0,
                   "xent forward %dx%dx%d at %d threads: %.17g (%lld correct), serial %.17g (%lld)",
                   B, T, C, THREADS[t], l1, (long long)c1, l0, (long long)c0);
        double f1 = cpu_par_xent_fused_seq(d1, z, labels, ldl, B, T, C, 0.01f);
        CHT_ASSERT(memcmp(&f1, &f0, sizeof f0) == 0, "xent fused %dx%dx%d at %d threads: %.17g vs %.17g",
                   B, T, C, THREADS[t], f1, f0);
        same_bits(d1, d0, n, "xent fused gradient", THREADS[t]);
        float *z2 = copyf(z, n); /* dlogits aliasing logits */
        double f2 = cpu_par_xent_fused_seq(z2, z2, labels, ldl, B, T, C, 0.01f);
        CHT_ASSERT(memcmp(&f2, &f0, sizeof f0) == 0, "xent fused in place: %.17g vs %.17g", f2, f0);
        same_bits(z2, d0, n, "xent fused gradient in place", THREADS[t]);
        free(z2);
      }
      free(z), free(labels), free(d0), free(d1);
    }
}

/* The backend's optimizer loops before the pool: one kernel call per span. */
static void adamw_serial(const ch_span *spans, int nspans, float *p, int p_flat, const float *g,
                         int g_flat, float *m, float *v, const ch_adamw_args *a) {
  for (int s = 0; s < nspans; s++) {
    const ch_span *sp = &spans[s];
    float wd = sp->decay ? a->weight_decay : 0.0f;
    cpu_adamw_span(p + (p_flat ? sp->flat : sp->local), g + (g_flat ? sp->flat : sp->local),
                   m + sp->local, v + sp->local, sp->n, 1.0f - a->lr * wd, a->beta1, a->beta2,
                   a->lr / a->bc1, a->sqrt_bc2, a->eps);
  }
}
static void sgd_serial(const ch_span *spans, int nspans, float *p, int p_flat, const float *g,
                       int g_flat, float *m, const ch_sgd_args *a) {
  for (int s = 0; s < nspans; s++) {
    const ch_span *sp = &spans[s];
    cpu_sgd_span(p + (p_flat ? sp->flat : sp->local), g + (g_flat ? sp->flat : sp->local),
                 m + sp->local, sp->n, a->lr, sp->decay ? a->weight_decay : 0.0f, a->momentum,
                 a->first);
  }
}

static void test_optim(void) {
  /* Spans of very different sizes (a weight, a bias, ...), with gaps in the flat layout. */
  const size_t sizes[] = {100000, 7, 65536, 1, 3000, 50001, 128};
  enum { NS = sizeof sizes / sizeof *sizes };
  ch_span spans[NS];
  size_t flat = 0, local = 0;
  for (int s = 0; s < NS; s++) {
    spans[s] = (ch_span){.flat = flat + 13, .local = local, .n = sizes[s], .decay = s % 2 == 0};
    flat += sizes[s] + 13, local += sizes[s];
  }
  size_t nf = flat + 13;
  float *g = rnd(nf, 15), *p0 = rnd(nf, 16), *m0 = rnd(nf, 17), *v0 = rnd(nf, 18);
  for (size_t i = 0; i < nf; i++) v0[i] = fabsf(v0[i]);
  ch_adamw_args aa = {.lr = 1e-3f, .weight_decay = 0.1f, .beta1 = 0.9f, .beta2 = 0.99f,
                      .bc1 = 0.19f, .sqrt_bc2 = 0.14f, .eps = 1e-8f};
  ch_sgd_args sa = {.lr = 0.05f, .weight_decay = 0.01f, .momentum = 0.9f, .first = 0};
  for (int flat_p = 0; flat_p < 2; flat_p++) {
    float *pr = copyf(p0, nf), *mr = copyf(m0, nf), *vr = copyf(v0, nf);
    adamw_serial(spans, NS, pr, flat_p, g, 1, mr, vr, &aa);
    float *ps = copyf(p0, nf), *ms = copyf(m0, nf);
    sgd_serial(spans, NS, ps, flat_p, g, 1, ms, &sa);
    for (int t = 0; t < NTHREADS; t++) {
      cpu_pool_set_threads(THREADS[t]);
      float *p = copyf(p0, nf), *m = copyf(m0, nf), *v = copyf(v0, nf);
      cpu_par_adamw(spans, NS, p, flat_p, g, 1, m, v, &aa);
      same_bits(p, pr, nf, "adamw p", THREADS[t]);
      same_bits(m, mr, nf, "adamw m", THREADS[t]);
      same_bits(v, vr, nf, "adamw v", THREADS[t]);
      memcpy(p, p0, sizeof *p * nf), memcpy(m, m0, sizeof *m * nf);
      cpu_par_sgd(spans, NS, p, flat_p, g, 1, m, &sa);
      same_bits(p, ps, nf, "sgd p", THREADS[t]);
      same_bits(m, ms, nf, "sgd m", THREADS[t]);
      free(p), free(m), free(v);
    }
    free(pr), free(mr), free(vr), free(ps), free(ms);
  }
  free(g), free(p0), free(m0), free(v0);
}

/* ---- two callers at once ------------------------------------------------------------------ */

typedef struct {
  int id;
  const float *x, *ref_gelu;
  double ref_sumsq;
  int64_t n;
  int bad;
} caller_arg;

static void *caller_main(void *p) {
  caller_arg *a = p;
  float *y = malloc(sizeof *y * a->n);
  for (int it = 0; it < 200 && !a->bad; it++) {
    memset(y, 0, sizeof *y * a->n);
    cpu_par_gelu_forward(y, a->x, a->n);
    double s = cpu_par_sumsq(a->x, a->n);
    if (memcmp(y, a->ref_gelu, sizeof *y * a->n) != 0 || memcmp(&s, &a->ref_sumsq, sizeof s) != 0)
      a->bad = it + 1;
  }
  free(y);
  return NULL;
}

static void test_concurrent(void) {
  cpu_pool_set_threads(3);
  const int64_t n = 200003;
  caller_arg args[2];
  pthread_t th[2];
  for (int i = 0; i < 2; i++) {
    float *x = rnd(n, 20 + i), *ref = malloc(sizeof *ref * n);
    cpu_gelu_forward(ref, x, n);
    args[i] = (caller_arg){.id = i, .x = x, .ref_gelu = ref, .n = n,
                           .ref_sumsq = cpu_par_sumsq(x, n)};
  }
  for (int i = 0; i < 2; i++) CHT_ASSERT(pthread_create(&th[i], NULL, caller_main, &args[i]) == 0, "pthread_create");
  for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < 2; i++) {
    CHT_ASSERT(!args[i].bad, "caller %d: wrong result at iteration %d", i, args[i].bad);
    free((void *)args[i].x), free((void *)args[i].ref_gelu);
  }
}

/* The fused passes on the pool against the serial fused kernels (kernels/cpu/fused.c), which
 * test_fused_ops holds to the unfused compositions: bit for bit at every thread count, with db
 * and without, over shapes where the GELU pass splits by columns and add+LN by rows. */
static void test_fused(void) {
  const int shapes[][3] = {{1, 8, 5}, {64, 32, 96}, {300, 48, 512}}; /* batch, in, out */
  for (int si = 0; si < 3; si++) {
    int B = shapes[si][0], in = shapes[si][1], out = shapes[si][2];
    size_t nx = (size_t)B * in, ny = (size_t)B * out;
    float *x = rnd(nx, 21), *w = rnd((size_t)in * out, 22), *b = rnd(out, 23);
    float *pre0 = rnd(ny, 24), *y0 = rnd(ny, 25), *pre1 = rnd(ny, 26), *y1 = rnd(ny, 27);
    cpu_pool_set_threads(1);
    cpu_matmul_gelu_forward(0, pre0, y0, x, w, b, B, in, out);
    float *dy = rnd(ny, 28), *dy0 = copyf(dy, ny), *dx0 = rnd(nx, 29), *dw0 = rnd((size_t)in * out, 30);
    float *db0 = rnd(out, 31), *dw_init = copyf(dw0, (size_t)in * out), *db_init = copyf(db0, out);
    cpu_matmul_gelu_backward(0, dx0, dw0, db0, dy0, pre0, x, w, B, in, out);
    /* add + LayerNorm over rows of `out` */
    float *a = rnd(ny, 32), *c = rnd(ny, 33), *lw = rnd(out, 34), *lb = rnd(out, 35);
    float *res0 = rnd(ny, 36), *ln0 = rnd(ny, 37), *m0 = rnd(B, 38), *r0 = rnd(B, 39);
    cpu_add_layernorm_forward(res0, ln0, m0, r0, a, c, lw, lb, B, out, 1e-5f);
    for (int t = 0; t < NTHREADS; t++) {
      cpu_pool_set_threads(THREADS[t]);
      cpu_par_matmul_gelu_forward(0, pre1, y1, x, w, b, B, in, out);
      same_bits(pre1, pre0, ny, "matmul_gelu forward pre", THREADS[t]);
      same_bits(y1, y0, ny, "matmul_gelu forward y", THREADS[t]);
      float *d1 = copyf(dy, ny), *dx1 = rnd(nx, 40), *dw1 = copyf(dw_init, (size_t)in * out);
      float *db1 = copyf(db_init, out);
      cpu_par_matmul_gelu_backward(0, dx1, dw1, db1, d1, pre0, x, w, B, in, out);
      same_bits(d1, dy0, ny, "matmul_gelu backward dpre", THREADS[t]);
      same_bits(dx1, dx0, nx, "matmul_gelu backward dx", THREADS[t]);
      same_bits(dw1, dw0, (size_t)in * out, "matmul_gelu backward dw", THREADS[t]);
      same_bits(db1, db0, out, "matmul_gelu backward db", THREADS[t]);
      memcpy(d1, dy, sizeof *d1 * ny);
      cpu_par_matmul_gelu_backward(0, NULL, dw1, NULL, d1, pre0, x, w, B, in, out);
      same_bits(d1, dy0, ny, "matmul_gelu backward dpre (no db)", THREADS[t]);
      float *res1 = copyf(a, ny), *ln1 = rnd(ny, 41), *m1 = rnd(B, 42), *r1 = rnd(B, 43);
      cpu_par_add_layernorm_forward(res1, ln1, m1, r1, res1, c, lw, lb, B, out, 1e-5f); /* res aliases a */
      same_bits(res1, res0, ny, "add_layernorm res", THREADS[t]);
      same_bits(ln1, ln0, ny, "add_layernorm y", THREADS[t]);
      same_bits(m1, m0, B, "add_layernorm mean", THREADS[t]);
      same_bits(r1, r0, B, "add_layernorm rstd", THREADS[t]);
      free(d1), free(dx1), free(dw1), free(db1), free(res1), free(ln1), free(m1), free(r1);
    }
    free(x), free(w), free(b), free(pre0), free(y0), free(pre1), free(y1), free(dy), free(dy0);
    free(dx0), free(dw0), free(db0), free(dw_init), free(db_init), free(a), free(c), free(lw);
    free(lb), free(res0), free(ln0), free(m0), free(r0);
  }
}

int main(void) {
  unsetenv("COHORT_KERNEL_THREADS"); /* the test sets the counts itself */
  test_cover();
  test_nested();
  test_reductions();
  test_elementwise();
  test_layernorm();
  test_embedding();
  test_xent();
  test_optim();
  test_fused();
  test_concurrent();
  /* back to one thread and up again: the workers are restarted */
  cpu_pool_set_threads(1);
  test_elementwise();
  cpu_pool_set_threads(2);
  printf("test_pool: ok\n");
  return 0;
}
