/* sgemm throughput of ch_sgemm (OpenBLAS loaded by kernels/cpu/blas.c).
 *
 * For each square size n and each thread count, C = A B (row-major fp32, alpha 1, beta 0) is
 * run after a warmup until at least --reps repetitions and --min-time seconds have passed;
 * the best repetition gives GFLOP/s = 2 n^3 / time. A few entries of C are checked against a
 * double-precision dot product, so a broken library is a failure (exit 1), not a number.
 *
 * Besides wall-clock time, the calling thread's CPU time of each call is recorded, and its
 * median over the reps reported (the median, not the minimum: in a VM the CPU clock of a thread
 * occasionally under-reads, and a minimum would pick exactly that). With one BLAS thread OpenBLAS computes on the calling thread, so 2 n^3 / CPU
 * time is the speed of the kernels while they held a core: on a machine shared with other
 * jobs it is far less disturbed than wall time (caches and memory bandwidth are still shared).
 * It is meaningless with more threads (the work runs on OpenBLAS's own threads).
 *
 * The kernel family OpenBLAS uses is fixed when the library loads, so one process measures one
 * OPENBLAS_CORETYPE; bench/sgemm.sh runs this program once per core type and compares.
 *
 *   sgemm [--sizes 256,512,1024,2048 | --shapes MxNxK[:ab][+],...] [--threads 1,0] [--reps 5]
 *         [--min-time 0.5] [--label X]
 *
 * --threads lists BLAS thread counts; 0 means all cores this process may run on.
 * --shapes replaces the square sizes by general GEMMs C[M,N] = op(A)[M,K] op(B)[K,N], as
 * ch_sgemm's arguments: ":ab" gives the transposes (a, b each n or t; default nn, e.g. ":nt" =
 * A B^T with B stored [N,K]) and a trailing "+" beta = 1 (C accumulates, as a weight gradient
 * or a GEMM onto a bias does) instead of 0. bench/gpt124m.sh measures a training step's GEMMs
 * this way. GFLOP/s = 2 M N K / time; the check is done after a beta-0 call.
 * Output: a header (corename, choice, machine) then one line per (threads, n or shape):
 *   "RESULT <label> <corename> <threads> <n|shape> <reps> <best_ms> <gflops> <median_cpu_gflops>"
 * which bench/sgemm.sh and bench/gpt124m.sh parse (shape as given, e.g. 1024x2304x768:nn+). */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include "cohort/kernels.h"
#include "cohort/runtime.h"
#include "cohort/status.h"
#include "common/bench_util.h"

#define MAX_LIST 32
#define MAX_REPS 1000

static int parse_list(const char *s, int *out) {
  int n = 0;
  char *copy = strdup(s), *save = NULL;
  for (char *tok = strtok_r(copy, ",", &save); tok && n < MAX_LIST; tok = strtok_r(NULL, ",", &save))
    out[n++] = atoi(tok);
  free(copy);
  return n;
}

static double thread_cpu_time(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cores_available(void) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set);
  return 1;
}

/* xorshift: uniform floats in [-1, 1), never all zero. */
static void fill_random(float *x, size_t n, unsigned long long seed) {
  unsigned long long s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    x[i] = (float)((double)(s >> 11) / 4503599627370496.0 - 1.0);
  }
}

/* One GEMM to time: C[m,n] = op(A)[m,k] op(B)[k,n] (+ beta C), row-major, packed. */
typedef struct gemm_shape {
  int m, n, k, ta, tb;
  float beta;
  char name[64];
} gemm_shape;

/* "MxNxK[:ab][+]" -> *s; 0 when malformed. */
static int parse_shape(const char *tok, gemm_shape *s) {
  char ab[3] = "nn";
  int used = 0;
  memset(s, 0, sizeof *s);
  if (sscanf(tok, "%dx%dx%d%n", &s->m, &s->n, &s->k, &used) != 3 || s->m <= 0 || s->n <= 0 ||
      s->k <= 0)
    return 0;
  const char *rest = tok + used;
  if (*rest == ':') {
    if (!strchr("nNtT", rest[1]) || !rest[1] || !rest[2] || !strchr("nNtT", rest[2])) return 0;
    ab[0] = rest[1];
    ab[1] = rest[2];
    rest += 3;
  }
  if (*rest == '+') {
    s->beta = 1.0f;
    rest++;
  }
  if (*rest) return 0;
  s->ta = ab[0] == 't' || ab[0] == 'T';
  s->tb = ab[1] == 't' || ab[1] == 'T';
  snprintf(s->name, sizeof s->name, "%s", tok);
  return 1;
}

static int parse_shapes(const char *list, gemm_shape *out) {
  int n = 0;
  char *copy = strdup(list), *save = NULL;
  for (char *tok = strtok_r(copy, ",", &save); tok && n < MAX_LIST; tok = strtok_r(NULL, ",", &save)) {
    if (!parse_shape(tok, &out[n])) {
      fprintf(stderr, "sgemm: bad shape '%s' (MxNxK[:ab][+], a and b n or t)\n", tok);
      free(copy);
      return -1;
    }
    n++;
  }
  free(copy);
  return n;
}

static void call_gemm(const gemm_shape *s, const float *a, const float *b, float *c, float beta) {
  ch_sgemm(s->ta, s->tb, s->m, s->n, s->k, 1.0f, a, s->ta ? s->m : s->k, b, s->tb ? s->k : s->n,
           beta, c, s->n);
}

/* Compares 16 entries of C (from a beta-0 call) with double-precision dot products; relative
 * to sum |a||b|. */
static int check_result(const gemm_shape *s, const float *a, const float *b, const float *c) {
  int lda = s->ta ? s->m : s->k, ldb = s->tb ? s->k : s->n;
  for (int t = 0; t < 16; t++) {
    int i = (int)((t * 7919L) % s->m), j = (int)((t * 104729L + 13) % s->n);
    double ref = 0, mag = 0;
    for (int p = 0; p < s->k; p++) {
      double x = s->ta ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p];
      double y = s->tb ? b[(size_t)j * ldb + p] : b[(size_t)p * ldb + j];
      ref += x * y;
      mag += fabs(x * y);
    }
    double err = fabs(c[(size_t)i * s->n + j] - ref);
    if (!(err <= 1e-5 * mag + 1e-6)) {
      fprintf(stderr, "sgemm: wrong result at %s C[%d,%d] = %g, expected %g (err %g)\n",
              s->name, i, j, c[(size_t)i * s->n + j], ref, err);
      return 0;
    }
  }
  return 1;
}

int main(int argc, char **argv) {
  int sizes[MAX_LIST], nsizes = parse_list("256,512,1024,2048", sizes);
  gemm_shape shapes[MAX_LIST];
  int nshapes = 0;
  int threads[MAX_LIST], nthreads = parse_list("1,0", threads);
  int min_reps = 5;
  double min_time = 0.5;
  const char *label = "cohort";
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--sizes") && i + 1 < argc) nsizes = parse_list(argv[++i], sizes);
    else if (!strcmp(argv[i], "--threads") && i + 1 < argc) nthreads = parse_list(argv[++i], threads);
    else if (!strcmp(argv[i], "--reps") && i + 1 < argc) min_reps = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--min-time") && i + 1 < argc) min_time = atof(argv[++i]);
    else if (!strcmp(argv[i], "--label") && i + 1 < argc) label = argv[++i];
    else if (!strcmp(argv[i], "--shapes") && i + 1 < argc) {
      if ((nshapes = parse_shapes(argv[++i], shapes)) < 0) return 2;
    } else {
      fprintf(stderr, "usage: %s [--sizes 256,512,... | --shapes MxNxK[:ab][+],...] "
                      "[--threads 1,0] [--reps N] [--min-time S] [--label NAME]\n", argv[0]);
      return 2;
    }
  }
  if (!nshapes) { /* the square sizes as shapes */
    for (int i = 0; i < nsizes; i++) {
      if (sizes[i] <= 0) continue;
      gemm_shape *sh = &shapes[nshapes++];
      memset(sh, 0, sizeof *sh);
      sh->m = sh->n = sh->k = sizes[i];
      snprintf(sh->name, sizeof sh->name, "%d", sizes[i]);
    }
  }
  if (min_reps < 1) min_reps = 1;
  if (min_reps > MAX_REPS) min_reps = MAX_REPS;
  static double cpu[MAX_REPS];

  const char *user_env = getenv("OPENBLAS_CORETYPE");
  char user_coretype[64] = "";
  if (user_env) snprintf(user_coretype, sizeof user_coretype, "%s", user_env);
  if (ch_blas_init(1) != CH_OK) {
    fprintf(stderr, "sgemm: %s\n", ch_error_message());
    return 1;
  }
  int ncores = cores_available();
  char model[256];
  bench_cpu_model(model, sizeof model);
  const char *choice = ch_blas_coretype_choice();
  const char *corename = ch_blas_corename();
  printf("# sgemm via ch_sgemm, row-major fp32, C = op(A) op(B), best of >= %d reps / %.2f s after warmup\n",
         min_reps, min_time);
  printf("# cpu: %s, %d cores available\n", model, ncores);
  printf("# OPENBLAS_CORETYPE: %s\n",
         user_coretype[0] ? user_coretype : (choice ? choice : "(unset: OpenBLAS's own detection)"));
  printf("# set by: %s\n", user_coretype[0] ? "user environment" : (choice ? "cohort" : "nobody"));
  printf("corename: %s\n", corename[0] ? corename : "?");
  printf("# %-12s %-12s %7s %6s %5s %10s %9s %9s\n", "label", "corename", "threads", "n", "reps",
         "best ms", "GFLOP/s", "cpuGF/s");
  printf("# GFLOP/s from the best wall-clock rep; cpuGF/s from the median CPU time of the calling "
         "thread (meaningful with 1 thread only)\n");

  size_t max_a = 0, max_b = 0, max_c = 0;
  for (int s = 0; s < nshapes; s++) {
    size_t sa = (size_t)shapes[s].m * shapes[s].k, sb = (size_t)shapes[s].k * shapes[s].n,
           sc = (size_t)shapes[s].m * shapes[s].n;
    if (sa > max_a) max_a = sa;
    if (sb > max_b) max_b = sb;
    if (sc > max_c) max_c = sc;
  }
  float *a = ch_alloc_aligned(max_a * sizeof(float));
  float *b = ch_alloc_aligned(max_b * sizeof(float));
  float *c = ch_alloc_aligned(max_c * sizeof(float));
  if (!a || !b || !c) {
    fprintf(stderr, "sgemm: out of memory (%zu + %zu + %zu floats)\n", max_a, max_b, max_c);
    return 1;
  }

  int failed = 0;
  for (int t = 0; t < nthreads; t++) {
    int nt = threads[t] > 0 ? threads[t] : ncores;
    ch_blas_init(nt);
    for (int s = 0; s < nshapes; s++) {
      const gemm_shape *sh = &shapes[s];
      size_t seed = (size_t)sh->m * 31 + (size_t)sh->n * 7 + (size_t)sh->k;
      fill_random(a, (size_t)sh->m * sh->k, 1000 + seed);
      fill_random(b, (size_t)sh->k * sh->n, 2000 + seed);
      double flops = 2.0 * sh->m * (double)sh->n * sh->k;
      /* warmup: two calls (thread pool start-up, page faults, caches); the check after a
       * beta-0 call */
      call_gemm(sh, a, b, c, 0.0f);
      if (!check_result(sh, a, b, c)) {
        failed = 1;
        continue;
      }
      call_gemm(sh, a, b, c, sh->beta);
      double best = 1e30, start = ch_time();
      int reps = 0;
      while (reps < min_reps || (ch_time() - start < min_time && reps < MAX_REPS)) {
        double t0 = ch_time(), c0 = thread_cpu_time();
        call_gemm(sh, a, b, c, sh->beta);
        double dt = ch_time() - t0;
        cpu[reps] = thread_cpu_time() - c0;
        if (dt < best) best = dt;
        if (++reps == MAX_REPS) break;
      }
      bench_sort(cpu, reps);
      double med_cpu = reps % 2 ? cpu[reps / 2] : 0.5 * (cpu[reps / 2 - 1] + cpu[reps / 2]);
      printf("RESULT %-12s %-12s %7d %6s %5d %10.3f %9.1f %9.1f\n", label,
             corename[0] ? corename : "?", nt, sh->name, reps, best * 1e3, flops / best * 1e-9,
             flops / med_cpu * 1e-9);
      fflush(stdout);
    }
  }
  ch_free_aligned(a);
  ch_free_aligned(b);
  ch_free_aligned(c);
  return failed ? 1 : 0;
}
