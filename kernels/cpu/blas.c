/* OpenBLAS loaded at run time so that its CPU kernels can be chosen first.
 *
 * Why: OpenBLAS picks its kernels in a library constructor from cpuid. Debian's 0.3.21 does not
 * know the virtualised Xeons of these machines and falls back to "Prescott" (SSE3), which runs
 * sgemm about 5x below what the AVX-512 kernels reach. OPENBLAS_CORETYPE overrides the choice,
 * but only if it is in the environment before the constructor runs, i.e. before the library is
 * loaded. So cohort does not link OpenBLAS: it detects the CPU, sets OPENBLAS_CORETYPE, then
 * dlopen()s the library (path from pkg-config at build time) and resolves the few symbols it
 * uses. A user's explicit OPENBLAS_CORETYPE always wins. */
#include <cblas.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/pool.h"
#include "cohort/log.h"
#include "cohort_build.h"

typedef void (*sgemm_fn)(enum CBLAS_ORDER, enum CBLAS_TRANSPOSE, enum CBLAS_TRANSPOSE, blasint,
                         blasint, blasint, float, const float *, blasint, const float *, blasint,
                         float, float *, blasint);
typedef void (*set_threads_fn)(int);
typedef int (*get_threads_fn)(void);
typedef char *(*corename_fn)(void);

static struct {
  void *handle;
  sgemm_fn sgemm;
  set_threads_fn set_threads;
  get_threads_fn get_threads;
  corename_fn corename;
  const char *choice;
  _Atomic int threads; /* the thread count asked for (ch_blas_init) */
  _Atomic int running; /* the thread count OpenBLAS is set to now */
} g_blas;
static pthread_mutex_t g_blas_lock = PTHREAD_MUTEX_INITIALIZER;

/* The best OpenBLAS 0.3.21 kernel family for this CPU, from the ISA extensions it reports
 * (not from family/model numbers, which is what virtual machines get wrong). On a CPU that
 * OpenBLAS does recognise this picks what it would pick itself (an AMD EPYC with AVX-512 BF16
 * gets Cooperlake either way); on the misdetected Xeons it replaces Prescott. */
static const char *detect_coretype(void) {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
    return __builtin_cpu_supports("avx512bf16") ? "Cooperlake" : "SkylakeX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return __builtin_cpu_is("amd") ? "Zen" : "Haswell";
  if (__builtin_cpu_supports("avx")) return "Sandybridge";
  return NULL; /* older CPUs: OpenBLAS's own detection is as good as ours */
}

static ch_status load_locked(void) {
  if (g_blas.handle) return CH_OK;
  const char *user = getenv("OPENBLAS_CORETYPE");
  if (!user || !*user) {
    g_blas.choice = detect_coretype();
    if (g_blas.choice) setenv("OPENBLAS_CORETYPE", g_blas.choice, 1);
  }
  /* OpenBLAS's idle workers spin (sched_yield) for 2^28 cycles, about 0.1 s, after each
   * threaded GEMM before they sleep. A server's steps are mostly one-thread GEMMs (SERIAL_MNK)
   * with a threaded one now and then (a burst of prompts): each left a worker spinning on the
   * other core for 0.1 s, a third of a core taken from the HTTP threads and the clients at 32
   * sequences. 2^16 cycles (tens of us) still bridges the gaps between the GEMMs of one training
   * step. Read by the library's constructor, so set before loading it; the user's value wins. */
  const char *timeout = getenv("OPENBLAS_THREAD_TIMEOUT");
  if (!timeout || !*timeout) setenv("OPENBLAS_THREAD_TIMEOUT", "16", 1);
  const char *candidates[] = {COHORT_OPENBLAS_PATH, "libopenblas.so.0", "libopenblas.so"};
  for (size_t i = 0; i < sizeof candidates / sizeof *candidates && !g_blas.handle; i++)
    if (candidates[i][0]) g_blas.handle = dlopen(candidates[i], RTLD_NOW | RTLD_LOCAL);
  if (!g_blas.handle)
    return CH_FAIL(CH_ERR_UNSUPPORTED, "cannot load OpenBLAS (%s): %s", COHORT_OPENBLAS_PATH,
                   dlerror());
  g_blas.sgemm = (sgemm_fn)dlsym(g_blas.handle, "cblas_sgemm");
  g_blas.set_threads = (set_threads_fn)dlsym(g_blas.handle, "openblas_set_num_threads");
  g_blas.get_threads = (get_threads_fn)dlsym(g_blas.handle, "openblas_get_num_threads");
  g_blas.corename = (corename_fn)dlsym(g_blas.handle, "openblas_get_corename");
  if (!g_blas.sgemm) {
    dlclose(g_blas.handle);
    g_blas.handle = NULL;
    return CH_FAIL(CH_ERR_UNSUPPORTED, "OpenBLAS at %s has no cblas_sgemm", COHORT_OPENBLAS_PATH);
  }
  return CH_OK;
}

ch_status ch_blas_init(int threads) {
  pthread_mutex_lock(&g_blas_lock);
  ch_status st = load_locked();
  pthread_mutex_unlock(&g_blas_lock);
  CH_CHECK(st);
  if (threads > 0 && g_blas.set_threads) g_blas.set_threads(threads);
  int now = g_blas.get_threads ? g_blas.get_threads() : 1;
  atomic_store(&g_blas.threads, now);
  atomic_store(&g_blas.running, now);
  cpu_pool_set_threads(now); /* the non-GEMM kernels' threads: as many as the GEMMs' */
  return CH_OK;
}

const char *ch_blas_corename(void) {
  return g_blas.corename ? g_blas.corename() : "";
}

const char *ch_blas_coretype_choice(void) { return g_blas.choice; }

/* Multiply-adds (m n k) up to which a GEMM runs on one thread. OpenBLAS 0.3.21 threads every
 * GEMM above 2^18 of them, but a decoding step's GEMMs (a few dozen rows against a weight
 * matrix: 32 x 512 x 128 = 2^21 for gpt-tiny's MLP at 32 sequences) take tens of
 * microseconds, about what a fork/join of its threads costs; on cores shared with the HTTP
 * threads and other processes, its threads then spin and yield waiting for each other (a
 * measured 32-sequence server step went from ~1.5 ms to several). Training's GEMMs (a
 * thousand rows and more) are far above and keep every thread. */
#define SERIAL_MNK (1LL << 22)

/* Sets OpenBLAS to `want` threads unless it already is (the setting is global; a race between
 * two calling threads only costs speed, never a result: the kernels do not depend on it). */
static void use_threads(int want) {
  if (g_blas.set_threads && atomic_load(&g_blas.running) != want) {
    g_blas.set_threads(want);
    atomic_store(&g_blas.running, want);
  }
}

int cpu_blas_threads_in_use(void) { return atomic_load(&g_blas.running); }

void ch_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
              const float *b, int ldb, float beta, float *c, int ldc) {
  if (!g_blas.sgemm && ch_blas_init(0) != CH_OK) {
    CH_ERROR("%s", ch_error_message());
    abort(); /* no BLAS at all: nothing sensible can run */
  }
  int threads = atomic_load(&g_blas.threads);
  if (threads > 1) use_threads((long long)m * n * k <= SERIAL_MNK ? 1 : threads);
  g_blas.sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
               trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void cpu_gemm(int bf16, int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
              int lda, const float *b, int ldb, float beta, float *c, int ldc) {
  if (bf16) {
    /* cohort's own kernel (gemm_bf16.c), at sgemm's thread rule: the ch_blas_init count, one
     * thread up to SERIAL_MNK. device.c makes a bf16 CPU backend only where the CPU has the
     * instructions, so reaching here without them is a bug, not a configuration. */
    if (!g_blas.sgemm && ch_blas_init(0) != CH_OK) {
      CH_ERROR("%s", ch_error_message());
      abort();
    }
    int threads = (long long)m * n * k <= SERIAL_MNK ? 1 : atomic_load(&g_blas.threads);
    cpu_gemm_bf16(threads, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  ch_sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
