/* bf16 GEMM on CPUs with AVX-512 BF16 (cpu_gemm's bf16 branch, the CPU backend made with
 * precision=bf16). ch_sgemm's contract: row-major C[m,n] = alpha op(A) op(B) + beta C, with
 * op(A) and op(B) rounded to bf16 (round to nearest even) and every product summed in fp32.
 *
 * Why cohort's own: Debian's OpenBLAS 0.3.21 exports no sbgemm (checked with nm -D), and the
 * only bf16 instruction that pays here is VDPBF16PS, two bf16 products per fp32 lane added to
 * an fp32 accumulator: twice the multiply-adds of an fp32 FMA per instruction.
 *
 * Layout: the classic three cache blocks. For each KC-deep slice of k, B's KC x NC block is
 * rounded and packed into NR-column strips (L3), A's MC x KC block into MR-row strips (L2),
 * and an MR x NR register tile of C is summed by the microkernel from one strip of each, the
 * B strip staying in L1 while the A strips stream past it. Packing stores k in pairs: a 32-bit
 * word holds (k even, k odd) of one row of A or one column of B, which is what VDPBF16PS
 * multiplies lane by lane. An odd k's last pair and the rows/columns past m/n are zero.
 *
 * Determinism: every C element is the same sequence of operations whatever the thread count
 * or its tile's position: its k-pairs in order within a KC slice, slices in order, alpha
 * applied per slice (C = beta C + alpha s_0, then C += alpha s_i). Threads only split which
 * tiles each computes. */
#include <immintrin.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/cpu_kernels.h"
#include "cohort/log.h"

#define MR 12  /* rows of the register tile: 12 x 2 accumulators + 2 B vectors + 1 broadcast */
#define NR 32  /* columns: two zmm of 16 fp32 lanes */
#define KC 256 /* k per slice (even): a B strip of KC x NR bf16 is 16 KiB, half of Zen 4's L1 */
#define MC 384 /* rows per A block: 384 x 256 bf16 = 192 KiB of a 1 MiB L2 */
#define NC 3072 /* columns per B block: 256 x 3072 bf16 = 1.5 MiB, in L3 */

#define TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

int cpu_has_avx512bf16(void) {
  const char *off = getenv("COHORT_TEST_NO_AVX512BF16");
  if (off && *off && strcmp(off, "0") != 0) return 0;
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16");
}

/* fp32 -> bf16 bits, round to nearest even, NaN kept a quiet NaN: cpu_f32_to_bf16's rule, so
 * the tests can round their reference inputs with it. Written to vectorise in the pack loops. */
static inline uint32_t rne(float x) {
  uint32_t u;
  memcpy(&u, &x, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (u >> 16) | 0x40u;
  return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}

/* ---- packing ------------------------------------------------------------------------------ */
/* x[0, kc) rounded to bf16 as kp = ceil(kc / 2) pair words (x[kc] taken as 0), 32 values per
 * VCVTNE2PS2BF16: for a run contiguous in k (a row of A, a column of B^T), the words are just its
 * bf16 values in order. The instruction rounds to nearest even as rne() does and flushes
 * subnormals to zero, which VDPBF16PS does to rne()'s subnormal results anyway: the products,
 * hence C, are the same either way. */
TARGET static void round_pairs(uint32_t *w, const float *x, int kc) {
  int i = 0;
  for (; i + 32 <= kc; i += 32) {
    __m512bh h = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(x + i));
    _mm512_storeu_si512(w + i / 2, (__m512i)h);
  }
  if (i < kc) {
    int left = kc - i; /* 1 .. 31 */
    __mmask16 lo = left >= 16 ? 0xffff : (__mmask16)((1u << left) - 1);
    __mmask16 hi = left <= 16 ? 0 : (__mmask16)((1u << (left - 16)) - 1);
    __m512bh h = _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, x + i + 16),
                                     _mm512_maskz_loadu_ps(lo, x + i));
    _mm512_mask_storeu_epi32(w + i / 2, (__mmask16)((1u << ((left + 1) / 2)) - 1), (__m512i)h);
  }
}

/* A's rows [0, mc) by k [0, kc) (already offset to the block's corner) into MR-row strips:
 * strip s, pair p, row r at out[s * kp * MR + p * MR + r], kp = ceil(kc / 2). */
TARGET static void pack_a(uint32_t *out, const float *a, int lda, int trans, int mc, int kc) {
  int kp = (kc + 1) / 2;
  for (int s = 0; s < mc; s += MR) {
    int rows = mc - s < MR ? mc - s : MR;
    uint32_t *o = out + (size_t)(s / MR) * kp * MR;
    if (rows < MR) memset(o, 0, sizeof *o * (size_t)kp * MR);
    if (!trans) { /* A(i, p) = a[i lda + p]: each row is contiguous in k: round it, transpose */
      uint32_t run[MR][KC / 2];
      for (int r = 0; r < rows; r++) round_pairs(run[r], a + (size_t)(s + r) * lda, kc);
      for (int p = 0; p < kp; p++)
        for (int r = 0; r < rows; r++) o[p * MR + r] = run[r][p];
    } else { /* A(i, p) = a[p lda + i]: each k is a contiguous run of rows */
      for (int p = 0; p < kc / 2; p++) {
        const float *k0 = a + (size_t)(2 * p) * lda + s, *k1 = k0 + lda;
        for (int r = 0; r < rows; r++) o[p * MR + r] = rne(k0[r]) | rne(k1[r]) << 16;
      }
      if (kc & 1) {
        const float *k0 = a + (size_t)(kc - 1) * lda + s;
        for (int r = 0; r < rows; r++) o[(kp - 1) * MR + r] = rne(k0[r]);
      }
    }
  }
}

/* One NR-column strip of a row-major B (k rows [0, kc), columns [0, cols)): for each k pair,
 * 16 columns of both rows rounded by one VCVTNE2PS2BF16 ([row 2p | row 2p+1] halves) and
 * interleaved into pair words by one VPERMW. A decoding step's GEMM (a few rows of A) is mostly
 * this packing, which the scalar rne() loop did at ~1 cycle per value. Missing columns and an
 * odd k's last row read as zero (masked loads). Same bits as rne() in the products (see
 * round_pairs). */
TARGET static void pack_b_rows(uint32_t *o, const float *b, int ldb, int kc, int cols) {
  /* word c of the result = (row0[c], row1[c]): u16 index c, then 16 + c */
  const __m512i pairs = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9,
                                         24, 8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1,
                                         16, 0);
  __mmask16 m[2];
  m[0] = cols >= 16 ? 0xffff : (__mmask16)((1u << cols) - 1);
  m[1] = cols >= 32 ? 0xffff : cols <= 16 ? 0 : (__mmask16)((1u << (cols - 16)) - 1);
  for (int p = 0; p < (kc + 1) / 2; p++) {
    const float *r0 = b + (size_t)(2 * p) * ldb, *r1 = r0 + ldb;
    int odd = 2 * p + 1 == kc; /* the last pair of an odd k has no second row */
    for (int h = 0; h < 2; h++) {
      __m512 x0 = _mm512_maskz_loadu_ps(m[h], r0 + 16 * h);
      __m512 x1 = odd ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m[h], r1 + 16 * h);
      __m512i w = (__m512i)_mm512_cvtne2ps_pbh(x1, x0);
      _mm512_store_si512(o + (size_t)p * NR + 16 * h, _mm512_permutexvar_epi16(pairs, w));
    }
  }
}

/* B's k [0, kc) by columns [0, nc) into NR-column strips: strip s, pair p, column c at
 * out[s * kp * NR + p * NR + c]. */
TARGET static void pack_b(uint32_t *out, const float *b, int ldb, int trans, int kc, int nc) {
  int kp = (kc + 1) / 2;
  for (int s = 0; s < nc; s += NR) {
    int cols = nc - s < NR ? nc - s : NR;
    uint32_t *o = out + (size_t)(s / NR) * kp * NR;
    if (cols < NR) memset(o, 0, sizeof *o * (size_t)kp * NR);
    if (!trans) { /* B(p, j) = b[p ldb + j]: each k is a contiguous run of columns */
      pack_b_rows(o, b + s, ldb, kc, cols);
    } else { /* B(p, j) = b[j ldb + p]: each column is contiguous in k: round it, transpose */
      uint32_t run[NR][KC / 2];
      for (int c = 0; c < cols; c++) round_pairs(run[c], b + (size_t)(s + c) * ldb, kc);
      for (int p = 0; p < kp; p++)
        for (int c = 0; c < cols; c++) o[p * NR + c] = run[c][p];
    }
  }
}

/* ---- microkernel -------------------------------------------------------------------------- */
/* The tile at c (rows < mr, columns < nr written) from kp pairs of an A strip and a B strip,
 * summing the strip's first `rows` rows (a constant once inlined: rows >= mr). first:
 * C = alpha s + beta C (beta == 0 reads no C: it may hold NaN); else C += alpha s. */
TARGET static inline __attribute__((always_inline)) void
micro_rows(const int rows, int kp, const uint32_t *ap, const uint32_t *bp, float *c, int ldc,
           int mr, int nr, float alpha, float beta, int first) {
  __m512 acc[MR][2];
#pragma GCC unroll 12
  for (int r = 0; r < rows; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int p = 0; p < kp; p++) {
    __m512bh b0 = (__m512bh)_mm512_load_si512(bp), b1 = (__m512bh)_mm512_load_si512(bp + 16);
#pragma GCC unroll 12
    for (int r = 0; r < rows; r++) {
      __m512bh ar = (__m512bh)_mm512_set1_epi32((int)ap[r]);
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], ar, b0);
      acc[r][1] = _mm512_dpbf16_ps(acc[r][1], ar, b1);
    }
    ap += MR;
    bp += NR;
  }
  __mmask16 m0 = nr >= 16 ? 0xffff : (__mmask16)((1u << nr) - 1);
  __mmask16 m1 = nr >= 32 ? 0xffff : nr <= 16 ? 0 : (__mmask16)((1u << (nr - 16)) - 1);
  __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 12
  for (int r = 0; r < rows; r++) {
    if (r >= mr) break;
    float *row = c + (size_t)r * ldc;
    __m512 s0 = _mm512_mul_ps(va, acc[r][0]), s1 = _mm512_mul_ps(va, acc[r][1]);
    if (!first || beta != 0.0f) {
      __m512 c0 = _mm512_maskz_loadu_ps(m0, row), c1 = _mm512_maskz_loadu_ps(m1, row + 16);
      if (first) c0 = _mm512_mul_ps(vb, c0), c1 = _mm512_mul_ps(vb, c1);
      s0 = _mm512_add_ps(c0, s0), s1 = _mm512_add_ps(c1, s1);
    }
    _mm512_mask_storeu_ps(row, m0, s0);
    _mm512_mask_storeu_ps(row + 16, m1, s1);
  }
}

/* A short tile (the last strip of a block, a decoding step's few rows) sums only the rows it
 * has, rounded up to 1, 2, 4 or 8: a 1-row GEMM would otherwise do 12 rows of work. Each C
 * element's operations are the same in every variant, so the bits do not depend on which runs. */
TARGET static void micro(int kp, const uint32_t *ap, const uint32_t *bp, float *c, int ldc,
                         int mr, int nr, float alpha, float beta, int first) {
  if (mr > 8) micro_rows(MR, kp, ap, bp, c, ldc, mr, nr, alpha, beta, first);
  else if (mr > 4) micro_rows(8, kp, ap, bp, c, ldc, mr, nr, alpha, beta, first);
  else if (mr > 2) micro_rows(4, kp, ap, bp, c, ldc, mr, nr, alpha, beta, first);
  else if (mr > 1) micro_rows(2, kp, ap, bp, c, ldc, mr, nr, alpha, beta, first);
  else micro_rows(1, kp, ap, bp, c, ldc, mr, nr, alpha, beta, first);
}

/* ---- per-thread pack scratch -------------------------------------------------------------- */
/* A block and a B block per computing thread, kept between calls on a free list so that no
 * GEMM pays for fresh pages (2 MiB of page faults per thread per call otherwise). */
typedef struct scratch {
  struct scratch *next;
  uint32_t *a, *b;
} scratch;
static scratch *g_free;
static pthread_mutex_t g_free_lock = PTHREAD_MUTEX_INITIALIZER;

static scratch *scratch_get(void) {
  pthread_mutex_lock(&g_free_lock);
  scratch *s = g_free;
  if (s) g_free = s->next;
  pthread_mutex_unlock(&g_free_lock);
  if (s) return s;
  s = calloc(1, sizeof *s);
  if (s) {
    s->a = aligned_alloc(64, sizeof(uint32_t) * (size_t)MC * (KC / 2));
    s->b = aligned_alloc(64, sizeof(uint32_t) * (size_t)NC * (KC / 2));
  }
  if (!s || !s->a || !s->b) {
    CH_ERROR("bf16 GEMM: no memory for its pack buffers");
    abort(); /* as ch_sgemm without a BLAS: a GEMM has no error path */
  }
  return s;
}

static void scratch_put(scratch *s) {
  pthread_mutex_lock(&g_free_lock);
  s->next = g_free;
  g_free = s;
  pthread_mutex_unlock(&g_free_lock);
}

/* ---- one thread's share: C rows [m0, m1) x columns [n0, n1) ------------------------------- */
typedef struct {
  int trans_a, trans_b, m, n, k, lda, ldb, ldc;
  float alpha, beta;
  const float *a, *b;
  float *c;
} job;

typedef struct {
  const job *j;
  int m0, m1, n0, n1;
} part;

TARGET static void run_part(const job *j, int m0, int m1, int n0, int n1) {
  scratch *s = scratch_get();
  for (int jc = n0; jc < n1; jc += NC) {
    int nc = n1 - jc < NC ? n1 - jc : NC;
    for (int pc = 0; pc < j->k; pc += KC) {
      int kc = j->k - pc < KC ? j->k - pc : KC, kp = (kc + 1) / 2;
      const float *bb = j->trans_b ? j->b + (size_t)jc * j->ldb + pc
                                   : j->b + (size_t)pc * j->ldb + jc;
      pack_b(s->b, bb, j->ldb, j->trans_b, kc, nc);
      for (int ic = m0; ic < m1; ic += MC) {
        int mc = m1 - ic < MC ? m1 - ic : MC;
        const float *ab = j->trans_a ? j->a + (size_t)pc * j->lda + ic
                                     : j->a + (size_t)ic * j->lda + pc;
        pack_a(s->a, ab, j->lda, j->trans_a, mc, kc);
        for (int jr = 0; jr < nc; jr += NR)
          for (int ir = 0; ir < mc; ir += MR)
            micro(kp, s->a + (size_t)(ir / MR) * kp * MR, s->b + (size_t)(jr / NR) * kp * NR,
                  j->c + (size_t)(ic + ir) * j->ldc + jc + jr, j->ldc,
                  mc - ir < MR ? mc - ir : MR, nc - jr < NR ? nc - jr : NR, j->alpha, j->beta,
                  pc == 0);
      }
    }
  }
  scratch_put(s);
}

static void *run_thread(void *arg) {
  const part *p = arg;
  run_part(p->j, p->m0, p->m1, p->n0, p->n1);
  return NULL;
}

/* k == 0 or alpha == 0: C = beta C, and beta == 0 writes zeros without reading C. */
static void scale_c(float *c, int ldc, int m, int n, float beta) {
  for (int i = 0; i < m; i++) {
    float *row = c + (size_t)i * ldc;
    if (beta == 0.0f) memset(row, 0, sizeof *row * (size_t)n);
    else if (beta != 1.0f) for (int x = 0; x < n; x++) row[x] *= beta;
  }
}

#define MAX_THREADS 64

void cpu_gemm_bf16(int threads, int trans_a, int trans_b, int m, int n, int k, float alpha,
                   const float *a, int lda, const float *b, int ldb, float beta, float *c,
                   int ldc) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0 || alpha == 0.0f) {
    scale_c(c, ldc, m, n, beta);
    return;
  }
  job j = {trans_a, trans_b, m, n, k, lda, ldb, ldc, alpha, beta, a, b, c};
  /* Split the larger of m and n into tile-aligned shares, so that every thread packs a whole
   * side once and its share of the other; no more threads than shares of one tile. */
  int split_m = m >= n, unit = split_m ? MR : NR, tiles = ((split_m ? m : n) + unit - 1) / unit;
  if (threads > MAX_THREADS) threads = MAX_THREADS;
  if (threads > tiles) threads = tiles;
  if (threads <= 1) {
    run_part(&j, 0, m, 0, n);
    return;
  }
  part parts[MAX_THREADS];
  pthread_t tid[MAX_THREADS];
  int started[MAX_THREADS] = {0};
  for (int t = 0; t < threads; t++) {
    int lo = (int)((long long)tiles * t / threads) * unit;
    int hi = t + 1 == threads ? (split_m ? m : n)
                              : (int)((long long)tiles * (t + 1) / threads) * unit;
    parts[t] = split_m ? (part){&j, lo, hi, 0, n} : (part){&j, 0, m, lo, hi};
  }
  /* Thread 0's share runs on the caller; a thread that cannot start runs there too. */
  for (int t = 1; t < threads; t++)
    started[t] = pthread_create(&tid[t], NULL, run_thread, &parts[t]) == 0;
  run_thread(&parts[0]);
  for (int t = 1; t < threads; t++) {
    if (started[t]) pthread_join(tid[t], NULL);
    else run_thread(&parts[t]);
  }
}
