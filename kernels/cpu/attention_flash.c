/* Fused causal attention for training, one (sequence, head) per call: the T x T probability
 * matrix is never stored. The same math as kernels/cpu/attention.c (scale = 1/sqrt(HS)):
 *   forward:  S = scale q k^T, P = causal softmax(S), out = P v; saves lse_i = log sum_j e^S_ij
 *   backward: D_i = dout_i . out_i (= rowsum(dP * P), the softmax Jacobian's row term),
 *             P_ij = e^(S_ij - lse_i) recomputed, dv += P^T dout, dP = dout v^T,
 *             dS = P (dP - D) scale, dq += dS k, dk += dS^T q.
 *
 * Work goes by tiles of BQ queries x BK keys, only those on or below the diagonal. A tile's
 * scores live in a BQ x BK buffer (4 KiB: L1). Forward keeps a running max m_i and sum l_i per
 * query (online softmax): a new tile with a larger max rescales the running sum and output by
 * e^(m_old - m_new), so one pass over the keys suffices and out = acc / l at the end. Backward
 * goes key tile by key tile, summing dk and dv of the tile over the queries below it in a small
 * buffer, and adds each tile's dq into the output.
 *
 * Vectorisation without -ffast-math: GCC may not reorder a float sum, so no inner loop here is
 * a reduction. Every product is one micro-kernel of row updates (c[r][0..32) += a(r,t) b[t])
 * over a contiguous index, four rows at a time in registers: the scores over keys use k and v
 * transposed once per call ([HS, T], keys contiguous); the HS-wide updates (out, dq, dk, dv)
 * run over the head's columns. The few row reductions (max, sum, D) use eight fixed partial
 * sums, as softmax_row_causal. HS 16, 32, 64 and 128 get their own copy of the loops with HS a
 * constant (full unrolling); other HS run the same code with HS a variable. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/fastmath.h"
#include "kernels/cpu/simd.h"

/* The products here contract a*b+c into one fused multiply-add, unlike the rest of kernels/cpu
 * (built with -ffp-contract=off so that every clone rounds alike): on this kernel it measured
 * ~25-30% faster (bench/attention), and the kernel it replaces, OpenBLAS's, fuses them too and
 * differs between CPU families anyway. The AVX-512 and FMA clones (FMA: every x86 CPU since
 * 2013) contract the same expressions and do not reorder, so they should agree bit for bit
 * (not checked on an FMA-only CPU); the baseline clone, for CPUs without FMA, rounds each
 * product separately and differs in the last bits. */
#pragma GCC optimize("fp-contract=fast")
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define CH_VECTORIZE_FMA __attribute__((target_clones("avx512f", "fma", "default")))
#else
#define CH_VECTORIZE_FMA
#endif

#define BQ 32 /* queries per tile */
#define BK 32 /* keys per tile: the score rows' length, two AVX-512 vectors */

#define INLINE static inline __attribute__((always_inline))

static int imin(int a, int b) { return a < b ? a : b; }

/* dst[c * ldd + t] = src[t * lds + c] for t < T, c < hs; columns T..ldd-1 of dst zeroed
 * (the last key tile reads them as keys that score 0 and are masked). */
INLINE void transpose(float *dst, int ldd, const float *src, int lds, int T, int hs) {
  /* row by row: src is read in order, the hs destination lines being written stay in L1 */
  for (int t = 0; t < T; t++)
    for (int c = 0; c < hs; c++) dst[(size_t)c * ldd + t] = src[(size_t)t * lds + c];
  for (int c = 0; c < hs; c++)
    for (int t = T; t < ldd; t++) dst[(size_t)c * ldd + t] = 0.0f;
}

/* Sixteen floats, one AVX-512 register; the AVX2 and baseline clones split it into two or
 * four. Written explicitly (GCC vector extensions) so that the accumulators of a micro-tile
 * stay in registers across the whole inner sum, which the auto-vectoriser did not manage. */
typedef float v16 __attribute__((vector_size(64)));
/* GCC warns that passing v16 by value has another ABI without AVX-512; every function taking
 * or returning one here is always_inline, so no call with that ABI exists. */
#pragma GCC diagnostic ignored "-Wpsabi"

INLINE v16 vload(const float *p) {
  v16 v;
  memcpy(&v, p, sizeof v); /* unaligned: rows start anywhere in qkv */
  return v;
}
INLINE void vstore(float *p, v16 v) { memcpy(p, &v, sizeof v); }

/* The micro-kernel of every product here: for r < R (1..4) and 16 NV columns (NV 1 or 2),
 *   c[r][0..16 NV) = (acc ? c[r] : 0) + sum_{t < n} a(r, t) b[t][0..16 NV),
 * a(r, t) = a[r * ar + t * at] (a broadcast scalar), b row stride ldb, c row stride ldc. Each
 * b row loaded feeds R rows; the R x NV accumulators live in registers. */
INLINE void micro(float *c, int ldc, int acc, const float *a, int ar, int at, const float *b,
                  int ldb, int n, int R, int NV) {
  v16 s[4][2];
  for (int r = 0; r < R; r++)
    for (int u = 0; u < NV; u++) s[r][u] = acc ? vload(c + (size_t)r * ldc + 16 * u) : (v16){0};
  for (int t = 0; t < n; t++) {
    const float *bt = b + (size_t)t * ldb;
    v16 b0 = vload(bt), b1 = NV > 1 ? vload(bt + 16) : (v16){0};
    for (int r = 0; r < R; r++) {
      v16 x = (v16){0} + a[(size_t)r * ar + (size_t)t * at];
      s[r][0] += x * b0;
      if (NV > 1) s[r][1] += x * b1;
    }
  }
  for (int r = 0; r < R; r++)
    for (int u = 0; u < NV; u++) vstore(c + (size_t)r * ldc + 16 * u, s[r][u]);
}

/* Rows r < ny of c, four at a time, over 16 NV columns. */
INLINE void micro_rows(float *c, int ldc, int acc, const float *a, int ar, int at,
                       const float *b, int ldb, int n, int ny, int NV) {
  int r = 0;
  for (; r + 4 <= ny; r += 4)
    micro(c + (size_t)r * ldc, ldc, acc, a + (size_t)r * ar, ar, at, b, ldb, n, 4, NV);
  for (; r < ny; r++)
    micro(c + (size_t)r * ldc, ldc, acc, a + (size_t)r * ar, ar, at, b, ldb, n, 1, NV);
}

/* s[i][0..BK) = sum_c a[i][c] bt[c][0..BK) for i < na (a row stride lda, bt row stride ldb):
 * a tile of scores q k^T or dP = dout v^T. */
INLINE void tile_scores(float *s, const float *a, int lda, int na, const float *bt, int ldb,
                        int hs) {
  micro_rows(s, BK, 0, a, lda, 1, bt, ldb, hs, na, BK / 16);
}

/* y[r][0..hs) += sum_{b < nb} w(r, b) x[b][0..hs) for r < ny, where w(r, b) = w[r * wr + b * wc]:
 * the tile products P v, dS k (w a tile row by row: wr = BK, wc = 1) and P^T dout, dS^T q
 * (w read down the tile's columns: wr = 1, wc = BK). y row stride ldy, x row stride ldx.
 * Columns go 32 and 16 at a time; the last hs % 16 (HS not a multiple of 16) one by one. */
INLINE void tile_update(float *y, int ldy, int ny, const float *w, int wr, int wc, const float *x,
                        int ldx, int nb, int hs) {
  int c0 = 0;
  for (; c0 + 32 <= hs; c0 += 32) micro_rows(y + c0, ldy, 1, w, wr, wc, x + c0, ldx, nb, ny, 2);
  for (; c0 + 16 <= hs; c0 += 16) micro_rows(y + c0, ldy, 1, w, wr, wc, x + c0, ldx, nb, ny, 1);
  if (c0 == hs) return;
  for (int r = 0; r < ny; r++) {
    float *yr = y + (size_t)r * ldy;
    for (int b = 0; b < nb; b++) {
      const float *xb = x + (size_t)b * ldx;
      float cr = w[(size_t)r * wr + (size_t)b * wc];
      for (int c = c0; c < hs; c++) yr[c] += cr * xb[c];
    }
  }
}

/* Keys of the tile at c0 that query i sees: 0 when the tile is wholly above its diagonal. */
INLINE int visible(int i, int c0, int nk) {
  int n = i - c0 + 1;
  return n < 0 ? 0 : n < nk ? n : nk;
}

/* max of x[0..n), n >= 1, in eight fixed lanes (the same result on every instruction set). */
INLINE float row_max(const float *x, int n) {
  float part[8];
  for (int u = 0; u < 8; u++) part[u] = x[0];
  int j = 0;
  for (; j + 8 <= n; j += 8)
    for (int u = 0; u < 8; u++) part[u] = x[j + u] > part[u] ? x[j + u] : part[u];
  float mx = x[0];
  for (; j < n; j++) mx = x[j] > mx ? x[j] : mx;
  for (int u = 0; u < 8; u++) mx = part[u] > mx ? part[u] : mx;
  return mx;
}

/* sum of x[0..n) in eight fixed partial sums, as softmax_row_causal. */
INLINE float row_sum(const float *x, int n) {
  float part[8] = {0};
  int j = 0;
  for (; j + 8 <= n; j += 8)
    for (int u = 0; u < 8; u++) part[u] += x[j + u];
  float sum = 0.0f;
  for (; j < n; j++) sum += x[j];
  for (int u = 0; u < 8; u++) sum += part[u];
  return sum;
}

/* One query's row of a score tile, its n visible keys (n >= 1): scaled, then the online
 * softmax step: the running max m and sum l updated, the row turned into e^(s - m) (zeros past
 * n), the output accumulator acc [hs] rescaled by e^(m_old - m_new). */
INLINE void online_row(float *sr, int n, float scale, float *m, float *l, float *acc, int hs) {
  for (int j = 0; j < n; j++) sr[j] *= scale;
  float mx = row_max(sr, n), mnew = mx > *m ? mx : *m;
  /* e^(-inf) = 0 on the first tile: cpu_exp_f32 clamps to e^-87, so say it exactly */
  float alpha = *m == -INFINITY ? 0.0f : cpu_exp_f32(*m - mnew);
  for (int j = 0; j < n; j++) sr[j] = cpu_exp_f32(sr[j] - mnew);
  for (int j = n; j < BK; j++) sr[j] = 0.0f;
  *l = *l * alpha + row_sum(sr, n);
  *m = mnew;
  if (alpha != 1.0f)
    for (int c = 0; c < hs; c++) acc[c] *= alpha;
}

/* Backward's row of the tiles: p <- e^(s scale - lse) (P recomputed), ds <- p (dP - D) scale,
 * both zero past the n visible keys. */
INLINE void grad_row(float *pr, float *dr, int n, float scale, float li, float Di) {
  for (int j = 0; j < n; j++) pr[j] = cpu_exp_f32(pr[j] * scale - li);
  for (int j = 0; j < n; j++) dr[j] = pr[j] * (dr[j] - Di) * scale;
  for (int j = n; j < BK; j++) pr[j] = 0.0f, dr[j] = 0.0f;
}

/* Per-call buffers (floats): kt [hs, Tp], the tile s [BQ, BK], the output accumulator [BQ, hs]
 * and the running max and sum [BQ]. */
INLINE void fwd_body(float *out, int ldo, float *lse, const float *q, int ldq, const float *k,
                     const float *v, int ldkv, int T, int hs, float *ws) {
  const float scale = 1.0f / sqrtf((float)hs);
  const int Tp = (T + BK - 1) / BK * BK;
  float *kt = ws, *s = kt + (size_t)hs * Tp, *acc = s + BQ * BK, *m = acc + BQ * hs, *l = m + BQ;
  transpose(kt, Tp, k, ldkv, T, hs);
  for (int r0 = 0; r0 < T; r0 += BQ) {
    int nq = imin(BQ, T - r0);
    memset(acc, 0, sizeof *acc * (size_t)nq * hs);
    for (int i = 0; i < nq; i++) m[i] = -INFINITY, l[i] = 0.0f;
    for (int c0 = 0; c0 < r0 + nq; c0 += BK) { /* key tiles up to the last query's diagonal */
      int nk = imin(BK, T - c0);
      tile_scores(s, q + (size_t)r0 * ldq, ldq, nq, kt + c0, Tp, hs);
      for (int i = 0; i < nq; i++) {
        int n = visible(r0 + i, c0, nk);
        float *sr = s + (size_t)i * BK, *ar = acc + (size_t)i * hs;
        /* a full row (all but the diagonal tile) with n a constant: no loop tails */
        if (n == BK) online_row(sr, BK, scale, &m[i], &l[i], ar, hs);
        else if (n > 0) online_row(sr, n, scale, &m[i], &l[i], ar, hs);
      }
      /* rows with no visible key in this tile (only in a diagonal tile) contribute nothing */
      for (int i = 0; i < nq; i++)
        if (visible(r0 + i, c0, nk) == 0) memset(s + (size_t)i * BK, 0, sizeof *s * BK);
      tile_update(acc, hs, nq, s, BK, 1, v + (size_t)c0 * ldkv, ldkv, nk, hs);
    }
    for (int i = 0; i < nq; i++) {
      float inv = 1.0f / l[i]; /* l >= 1: the max term is e^0 */
      float *o = out + (size_t)(r0 + i) * ldo;
      for (int c = 0; c < hs; c++) o[c] = acc[(size_t)i * hs + c] * inv;
      lse[r0 + i] = m[i] + logf(l[i]);
    }
  }
}

/* Per-call buffers (floats): kt, vt [hs, Tp], D [T], tiles p, ds [BQ, BK], dk, dv [BK, hs]. */
INLINE void bwd_body(float *dq, float *dk, float *dv, int ld, const float *dout, int ldo,
                     const float *out, int ldout, const float *q, const float *k, const float *v,
                     int ldq, const float *lse, int T, int hs, float *ws) {
  const float scale = 1.0f / sqrtf((float)hs);
  const int Tp = (T + BK - 1) / BK * BK;
  float *kt = ws, *vt = kt + (size_t)hs * Tp, *D = vt + (size_t)hs * Tp, *p = D + Tp,
        *ds = p + BQ * BK, *dkb = ds + BQ * BK, *dvb = dkb + BK * hs;
  transpose(kt, Tp, k, ldq, T, hs);
  transpose(vt, Tp, v, ldq, T, hs);
  float prod[8 * 16];
  for (int i = 0; i < T; i++) { /* D_i = dout_i . out_i */
    const float *a = dout + (size_t)i * ldo, *b = out + (size_t)i * ldout;
    float d = 0.0f;
    int c = 0;
    for (; c + 128 <= hs; c += 128) {
      for (int u = 0; u < 128; u++) prod[u] = a[c + u] * b[c + u];
      d += row_sum(prod, 128);
    }
    for (int u = 0; u < hs - c; u++) prod[u] = a[c + u] * b[c + u];
    D[i] = d + row_sum(prod, hs - c);
  }
  for (int i = 0; i < T; i++) memset(dq + (size_t)i * ld, 0, sizeof *dq * hs);
  for (int c0 = 0; c0 < T; c0 += BK) {
    int nk = imin(BK, T - c0);
    memset(dkb, 0, sizeof *dkb * BK * hs);
    memset(dvb, 0, sizeof *dvb * BK * hs);
    for (int r0 = c0 / BQ * BQ; r0 < T; r0 += BQ) { /* query tiles from the diagonal down */
      int nq = imin(BQ, T - r0);
      const float *qb = q + (size_t)r0 * ldq, *dob = dout + (size_t)r0 * ldo;
      tile_scores(p, qb, ldq, nq, kt + c0, Tp, hs);
      tile_scores(ds, dob, ldo, nq, vt + c0, Tp, hs);
      for (int i = 0; i < nq; i++) {
        float *pr = p + (size_t)i * BK, *dr = ds + (size_t)i * BK;
        int n = visible(r0 + i, c0, nk);
        if (n == BK) grad_row(pr, dr, BK, scale, lse[r0 + i], D[r0 + i]); /* no loop tails */
        else grad_row(pr, dr, n, scale, lse[r0 + i], D[r0 + i]);
      }
      tile_update(dvb, hs, nk, p, 1, BK, dob, ldo, nq, hs);  /* dv += P^T dout */
      tile_update(dkb, hs, nk, ds, 1, BK, qb, ldq, nq, hs);  /* dk += dS^T q */
      tile_update(dq + (size_t)r0 * ld, ld, nq, ds, BK, 1, k + (size_t)c0 * ldq, ldq, nk, hs);
    }
    for (int j = 0; j < nk; j++) {
      memcpy(dk + (size_t)(c0 + j) * ld, dkb + (size_t)j * hs, sizeof *dk * hs);
      memcpy(dv + (size_t)(c0 + j) * ld, dvb + (size_t)j * hs, sizeof *dv * hs);
    }
  }
}

/* One clone per instruction set; HS 16/32/64/128 with the loops' HS a constant. */
CH_VECTORIZE_FMA static void fwd_dispatch(float *out, int ldo, float *lse, const float *q,
                                          int ldq, const float *k, const float *v, int ldkv,
                                          int T, int HS, float *ws) {
  switch (HS) {
  case 16: fwd_body(out, ldo, lse, q, ldq, k, v, ldkv, T, 16, ws); break;
  case 32: fwd_body(out, ldo, lse, q, ldq, k, v, ldkv, T, 32, ws); break;
  case 64: fwd_body(out, ldo, lse, q, ldq, k, v, ldkv, T, 64, ws); break;
  case 128: fwd_body(out, ldo, lse, q, ldq, k, v, ldkv, T, 128, ws); break;
  default: fwd_body(out, ldo, lse, q, ldq, k, v, ldkv, T, HS, ws); break;
  }
}

CH_VECTORIZE_FMA static void bwd_dispatch(float *dq, float *dk, float *dv, int ld,
                                          const float *dout, int ldo, const float *out,
                                          int ldout, const float *q, const float *k,
                                          const float *v, int ldq, const float *lse, int T,
                                          int HS, float *ws) {
  switch (HS) {
#define CASE(h) \
  case h: bwd_body(dq, dk, dv, ld, dout, ldo, out, ldout, q, k, v, ldq, lse, T, h, ws); break;
  CASE(16) CASE(32) CASE(64) CASE(128)
#undef CASE
  default: bwd_body(dq, dk, dv, ld, dout, ldo, out, ldout, q, k, v, ldq, lse, T, HS, ws); break;
  }
}

static size_t padded(int T) { return (size_t)(T + BK - 1) / BK * BK; }

ch_status cpu_flash_attention_forward(float *out, int ldo, float *lse, const float *q, int ldq,
                                      const float *k, const float *v, int ldkv, int T, int HS) {
  if (T <= 0 || HS <= 0) return CH_OK;
  size_t n = (size_t)HS * padded(T) + BQ * BK + (size_t)BQ * HS + 2 * BQ;
  float *ws = ch_alloc_aligned(sizeof *ws * n);
  if (!ws) return CH_FAIL(CH_ERR_NOMEM, "attention: %zu floats of workspace", n);
  fwd_dispatch(out, ldo, lse, q, ldq, k, v, ldkv, T, HS, ws);
  ch_free_aligned(ws);
  return CH_OK;
}

ch_status cpu_flash_attention_backward(float *dq, float *dk, float *dv, int ld, const float *dout,
                                       int ldo, const float *out, int ldout, const float *q,
                                       const float *k, const float *v, int ldq, const float *lse,
                                       int T, int HS) {
  if (T <= 0 || HS <= 0) return CH_OK;
  size_t n = 2 * (size_t)HS * padded(T) + padded(T) + 2 * BQ * BK + 2 * (size_t)BK * HS;
  float *ws = ch_alloc_aligned(sizeof *ws * n);
  if (!ws) return CH_FAIL(CH_ERR_NOMEM, "attention: %zu floats of workspace", n);
  bwd_dispatch(dq, dk, dv, ld, dout, ldo, out, ldout, q, k, v, ldq, lse, T, HS, ws);
  ch_free_aligned(ws);
  return CH_OK;
}
