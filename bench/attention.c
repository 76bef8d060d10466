/* Causal attention of one GPT layer on the CPU, forward + backward, three ways:
 *   blocked  today's kernel (kernels/cpu/attention.c): per sequence and head, OpenBLAS GEMMs over
 *            32-row blocks up to the diagonal; P [B, NH, T, T] kept for backward;
 *   fused    kernels/cpu/attention_flash.c: tiles in L1, online softmax, one log-sum-exp per
 *            query kept, P recomputed in backward; one call per (sequence, head);
 *   batched  (here only, a candidate) per (sequence, head) ONE GEMM of all queries against all
 *            keys, then masking: the full T x T rectangles, twice the causal work, in the
 *            largest GEMMs OpenBLAS can get from this layout; P kept as for blocked.
 * Each variant runs --reps times after a warmup; reported are the minimum wall time (on a
 * shared machine the slower runs measure the neighbours) and the median of the calling thread's
 * CPU time, forward and backward. With one BLAS thread (the default) OpenBLAS computes on the
 * calling thread, so the CPU time is the whole work and excludes the time the thread waited for
 * a core on a loaded machine; with more it is meaningless. The median, as bench/sgemm.c: in a
 * VM a thread's CPU clock occasionally under-reads, and a minimum would pick exactly that. The
 * fused and batched gradients are checked against the blocked ones (relative to the largest
 * entry, 1e-4: all are fp32 sums of the same terms in different orders), so a broken variant
 * is a failure (exit 1), not a number.
 *
 *   attention [--shapes B,T,NH,HS;...] [--reps 5] [--threads 1]
 *
 * --threads: OpenBLAS threads for blocked and batched (fused runs on the calling thread; a
 * thread pool over its (sequence, head) calls comes separately). Default shapes: gpt-tiny
 * (32,64,4,32), (4,256,12,64), (1,1024,12,64), (1,2048,12,64).
 * Output: one line per shape and variant, "RESULT B T NH HS variant fwd_ms bwd_ms total_ms
 * fwd_cpu_ms bwd_cpu_ms total_cpu_ms saved_MiB" (saved: what backward keeps, P or lse). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cohort/kernels.h"
#include "common/bench_util.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/fastmath.h"
#include "kernels/cpu/simd.h"

#define MAX_REPS 100

static double clock_s(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fill(float *x, size_t n, unsigned long long seed) {
  unsigned long long s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < n; i++) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    x[i] = (float)((double)(s >> 11) / 4503599627370496.0 - 1.0);
  }
}

typedef struct shape {
  int B, T, NH, HS;
} shape;

typedef struct bufs {
  float *qkv, *dout, *out, *saved, *dqkv, *scratch;
} bufs;

enum { BLOCKED, FUSED, BATCHED, NVAR };
static const char *names[NVAR] = {"blocked", "fused", "batched"};

/* ---- batched: whole-head GEMMs ------------------------------------------------------------ */

/* Row i of s [T, T]: causal softmax over j <= i, zeros beyond (exps vectorised as the kernels'). */
CH_VECTORIZE static void softmax_rows(float *s, int T) {
  for (int i = 0; i < T; i++) {
    float *r = s + (size_t)i * T, mx = r[0], sum = 0.0f;
    for (int j = 1; j <= i; j++) mx = r[j] > mx ? r[j] : mx;
    for (int j = 0; j <= i; j++) r[j] = cpu_exp_f32(r[j] - mx);
    for (int j = 0; j <= i; j++) sum += r[j];
    float inv = 1.0f / sum;
    for (int j = 0; j <= i; j++) r[j] *= inv;
    for (int j = i + 1; j < T; j++) r[j] = 0.0f;
  }
}

/* d <- P (d - rowsum(d P)) scale over j <= i, 0 beyond. */
CH_VECTORIZE static void softmax_bwd_rows(float *d, const float *p, int T, float scale) {
  for (int i = 0; i < T; i++) {
    float *dr = d + (size_t)i * T, dot = 0.0f;
    const float *pr = p + (size_t)i * T;
    for (int j = 0; j <= i; j++) dot += dr[j] * pr[j];
    for (int j = 0; j <= i; j++) dr[j] = pr[j] * (dr[j] - dot) * scale;
    for (int j = i + 1; j < T; j++) dr[j] = 0.0f;
  }
}

static void batched_fwd(const shape *s, bufs *b) {
  int T = s->T, HS = s->HS, C = s->NH * HS;
  float scale = 1.0f / sqrtf((float)HS);
  for (int bb = 0; bb < s->B; bb++)
    for (int h = 0; h < s->NH; h++) {
      const float *q = b->qkv + (size_t)bb * T * 3 * C + h * HS;
      float *p = b->saved + ((size_t)bb * s->NH + h) * T * T;
      ch_sgemm(0, 1, T, T, HS, scale, q, 3 * C, q + C, 3 * C, 0.0f, p, T);
      softmax_rows(p, T);
      ch_sgemm(0, 0, T, HS, T, 1.0f, p, T, q + 2 * C, 3 * C, 0.0f,
               b->out + (size_t)bb * T * C + h * HS, C);
    }
}

static void batched_bwd(const shape *s, bufs *b) {
  int T = s->T, HS = s->HS, C = s->NH * HS;
  float scale = 1.0f / sqrtf((float)HS), *ds = b->scratch;
  for (int bb = 0; bb < s->B; bb++)
    for (int h = 0; h < s->NH; h++) {
      size_t o = (size_t)bb * T * 3 * C + h * HS;
      const float *q = b->qkv + o, *dy = b->dout + (size_t)bb * T * C + h * HS;
      const float *p = b->saved + ((size_t)bb * s->NH + h) * T * T;
      float *dq = b->dqkv + o;
      ch_sgemm(0, 1, T, T, HS, 1.0f, dy, C, q + 2 * C, 3 * C, 0.0f, ds, T); /* dP */
      softmax_bwd_rows(ds, p, T, scale);
      ch_sgemm(0, 0, T, HS, T, 1.0f, ds, T, q + C, 3 * C, 0.0f, dq, 3 * C);
      ch_sgemm(1, 0, T, HS, T, 1.0f, ds, T, q, 3 * C, 0.0f, dq + C, 3 * C);
      ch_sgemm(1, 0, T, HS, T, 1.0f, p, T, dy, C, 0.0f, dq + 2 * C, 3 * C);
    }
}

/* ---- the kernels as the CPU backend calls them -------------------------------------------- */

static void run_fwd(int var, const shape *s, bufs *b) {
  int T = s->T, NH = s->NH, HS = s->HS, C = NH * HS;
  if (var == BATCHED) return batched_fwd(s, b);
  for (int bb = 0; bb < s->B; bb++) {
    const float *q = b->qkv + (size_t)bb * T * 3 * C;
    float *o = b->out + (size_t)bb * T * C;
    if (var == BLOCKED) {
      cpu_attention_forward(o, C, b->saved + (size_t)bb * NH * T * T, NULL, q, 3 * C, q + C,
                            q + 2 * C, 3 * C, T, T, NH, HS);
      continue;
    }
    for (int h = 0; h < NH; h++)
      (void)cpu_flash_attention_forward(o + h * HS, C, b->saved + ((size_t)bb * NH + h) * T,
                                        q + h * HS, 3 * C, q + C + h * HS, q + 2 * C + h * HS,
                                        3 * C, T, HS);
  }
}

static void run_bwd(int var, const shape *s, bufs *b) {
  int T = s->T, NH = s->NH, HS = s->HS, C = NH * HS;
  if (var == BATCHED) return batched_bwd(s, b);
  for (int bb = 0; bb < s->B; bb++) {
    size_t o = (size_t)bb * T * 3 * C;
    const float *q = b->qkv + o, *dy = b->dout + (size_t)bb * T * C;
    const float *y = b->out + (size_t)bb * T * C;
    float *dq = b->dqkv + o;
    if (var == BLOCKED) {
      cpu_attention_backward(dq, dq + C, dq + 2 * C, 3 * C, dy, C, q, q + C, q + 2 * C, 3 * C,
                             b->saved + (size_t)bb * NH * T * T, b->scratch, T, NH, HS);
      continue;
    }
    for (int h = 0; h < NH; h++)
      (void)cpu_flash_attention_backward(dq + h * HS, dq + C + h * HS, dq + 2 * C + h * HS, 3 * C,
                                         dy + h * HS, C, y + h * HS, C, q + h * HS,
                                         q + C + h * HS, q + 2 * C + h * HS, 3 * C,
                                         b->saved + ((size_t)bb * NH + h) * T, T, HS);
  }
}

/* max |a - r| / max |r| */
static double rel_err(const float *a, const float *r, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)a[i] - r[i]);
    if (!(d <= num)) num = d;
    den = fmax(den, fabs(r[i]));
  }
  return num / fmax(den, 1e-30);
}

static int bench_shape(const shape *s, int reps) {
  size_t C = (size_t)s->NH * s->HS, rows = (size_t)s->B * s->T, TT = (size_t)s->T * s->T;
  size_t nsaved[NVAR] = {(size_t)s->B * s->NH * TT, rows * s->NH, (size_t)s->B * s->NH * TT};
  bufs b = {0};
  b.qkv = ch_alloc_aligned(sizeof(float) * rows * 3 * C);
  b.dout = ch_alloc_aligned(sizeof(float) * rows * C);
  b.out = ch_alloc_aligned(sizeof(float) * rows * C);
  b.dqkv = ch_alloc_aligned(sizeof(float) * rows * 3 * C);
  b.saved = ch_alloc_aligned(sizeof(float) * nsaved[BLOCKED]);
  b.scratch = ch_alloc_aligned(sizeof(float) * 2 * TT);
  float *ref = malloc(sizeof(float) * rows * 4 * C);
  if (!b.qkv || !b.dout || !b.out || !b.dqkv || !b.saved || !b.scratch || !ref) {
    fprintf(stderr, "attention bench: out of memory\n");
    return 1;
  }
  fill(b.qkv, rows * 3 * C, 1), fill(b.dout, rows * C, 2);
  int bad = 0;
  for (int var = 0; var < NVAR; var++) {
    /* the minimum wall time and the median thread CPU time, forward and backward */
    double wall[2] = {INFINITY, INFINITY}, cpu[2][MAX_REPS];
    for (int r = -1; r < reps; r++) { /* r = -1: warmup */
      double w0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
      run_fwd(var, s, &b);
      double w1 = clock_s(CLOCK_MONOTONIC), c1 = clock_s(CLOCK_THREAD_CPUTIME_ID);
      run_bwd(var, s, &b);
      double w2 = clock_s(CLOCK_MONOTONIC), c2 = clock_s(CLOCK_THREAD_CPUTIME_ID);
      if (r < 0) continue;
      wall[0] = fmin(wall[0], w1 - w0), wall[1] = fmin(wall[1], w2 - w1);
      cpu[0][r] = c1 - c0, cpu[1][r] = c2 - c1;
    }
    double cf = bench_median(cpu[0], reps), cb = bench_median(cpu[1], reps);
    if (var == BLOCKED) {
      memcpy(ref, b.out, sizeof(float) * rows * C);
      memcpy(ref + rows * C, b.dqkv, sizeof(float) * rows * 3 * C);
    } else {
      double e = fmax(rel_err(b.out, ref, rows * C), rel_err(b.dqkv, ref + rows * C, rows * 3 * C));
      if (!(e < 1e-4)) {
        fprintf(stderr, "attention bench: %s differs from blocked by %g\n", names[var], e);
        bad = 1;
      }
    }
    printf("RESULT %d %d %d %d %s %.3f %.3f %.3f %.3f %.3f %.3f %.2f\n", s->B, s->T, s->NH,
           s->HS, names[var], 1e3 * wall[0], 1e3 * wall[1], 1e3 * (wall[0] + wall[1]), 1e3 * cf,
           1e3 * cb, 1e3 * (cf + cb),
           (double)nsaved[var] * sizeof(float) / 1048576.0);
    fflush(stdout);
  }
  ch_free_aligned(b.qkv), ch_free_aligned(b.dout), ch_free_aligned(b.out);
  ch_free_aligned(b.dqkv), ch_free_aligned(b.saved), ch_free_aligned(b.scratch);
  free(ref);
  return bad;
}

int main(int argc, char **argv) {
  const char *shapes = "32,64,4,32;4,256,12,64;1,1024,12,64;1,2048,12,64";
  int reps = 5, threads = 1;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--shapes") && i + 1 < argc) shapes = argv[++i];
    else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
    else {
      fprintf(stderr, "usage: attention [--shapes B,T,NH,HS;...] [--reps 5] [--threads 1]\n");
      return 2;
    }
  }
  if (reps < 1 || reps > MAX_REPS) {
    fprintf(stderr, "attention bench: --reps must be 1..%d\n", MAX_REPS);
    return 2;
  }
  if (ch_blas_init(threads) != CH_OK) {
    fprintf(stderr, "attention bench: %s\n", ch_error_message());
    return 1;
  }
  char model[256];
  bench_cpu_model(model, sizeof model);
  printf("# cpu %s, BLAS %s, %d BLAS thread(s), %d reps (wall: min, cpu: median)\n", model,
         ch_blas_corename(), threads, reps);
  printf("# RESULT B T NH HS variant fwd_ms bwd_ms total_ms fwd_cpu_ms bwd_cpu_ms total_cpu_ms "
         "saved_MiB\n");
  int bad = 0;
  char *copy = strdup(shapes), *save = NULL;
  for (char *tok = strtok_r(copy, ";", &save); tok; tok = strtok_r(NULL, ";", &save)) {
    shape s;
    if (sscanf(tok, "%d,%d,%d,%d", &s.B, &s.T, &s.NH, &s.HS) != 4 || s.B < 1 || s.T < 1 ||
        s.NH < 1 || s.HS < 1) {
      fprintf(stderr, "attention bench: bad shape '%s'\n", tok);
      return 2;
    }
    bad |= bench_shape(&s, reps);
  }
  free(copy);
  return bad;
}
