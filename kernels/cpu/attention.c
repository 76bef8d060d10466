/* Causal multi-head self-attention for one sequence, forward and backward, on OpenBLAS.
 *
 * Per head h (q_h, k_h, v_h are the HS columns of head h, scale = 1/sqrt(HS)):
 *   S = scale q_h k_h^T                       [Tq, Tk]
 *   P_ij = exp(S_ij - max_i) / sum_j' ...     over j <= Tk-Tq+i only; masked P_ij = 0
 *   out_h = P v_h                             [Tq, HS]
 * Backward (Tq == Tk == T):
 *   dP = dout_h v_h^T,  dv_h = P^T dout_h,
 *   dS = P * (dP - rowsum(dP * P)) * scale    (softmax Jacobian, with the scale of S folded in)
 *   dq_h = dS k_h,  dk_h = dS^T q_h.
 *
 * Causality halves the work, and the GEMMs skip most of the masked half: the queries are cut
 * into row blocks of BLOCK, and block [r0, r1) only multiplies the keys its last row can see
 * (0 .. Tk-Tq+r1-1). In backward, dv and dk go by the same blocks over keys: key block [c0, c1)
 * only meets queries c0 .. T-1. Masked entries inside a block's rectangle are zero in P and dS,
 * so the rectangles give the exact causal sums. */
#include <math.h>
#include <stddef.h>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/fastmath.h"
#include "kernels/cpu/simd.h"

/* Rows per GEMM block. Large enough that each GEMM stays efficient, small enough that the
 * computed rectangles waste little above the diagonal (about BLOCK/2 of T columns per row). */
#define BLOCK 32

static int imin(int a, int b) { return a < b ? a : b; }

/* s[0..n) <- softmax(s[0..n)) in fp32 with the max subtracted; s[n..len) <- 0. The exps of the
 * masked entries are never computed. */
CH_VECTORIZE static void softmax_row_causal(float *s, int n, int len) {
  float mx = s[0];
  for (int j = 1; j < n; j++) mx = s[j] > mx ? s[j] : mx;
  for (int j = 0; j < n; j++) s[j] = cpu_exp_f32(s[j] - mx);
  /* Eight partial sums in a fixed order: the same result on every instruction set. */
  float part[8] = {0};
  int j = 0;
  for (; j + 8 <= n; j += 8)
    for (int u = 0; u < 8; u++) part[u] += s[j + u];
  float sum = 0.0f;
  for (; j < n; j++) sum += s[j];
  for (int u = 0; u < 8; u++) sum += part[u];
  float inv = 1.0f / sum; /* sum >= 1: the max term is exp(0) */
  for (j = 0; j < n; j++) s[j] *= inv;
  for (j = n; j < len; j++) s[j] = 0.0f;
}

void cpu_attention_forward(float *out, int ldo, float *probs, float *scratch, const float *q,
                           int ldq, const float *k, const float *v, int ldkv, int Tq, int Tk,
                           int NH, int HS) {
  const float scale = 1.0f / sqrtf((float)HS);
  const int off = Tk - Tq; /* absolute position of query 0 */
  for (int h = 0; h < NH; h++) {
    float *p = probs ? probs + (size_t)h * Tq * Tk : scratch;
    const float *qh = q + (size_t)h * HS, *kh = k + (size_t)h * HS, *vh = v + (size_t)h * HS;
    float *oh = out + (size_t)h * HS;
    for (int r0 = 0; r0 < Tq; r0 += BLOCK) {
      int r1 = imin(r0 + BLOCK, Tq), nk = off + r1; /* keys visible to the block's last row */
      float *pb = p + (size_t)r0 * Tk;
      /* S[r0:r1, 0:nk] = scale q_h[r0:r1] k_h[0:nk]^T */
      ch_sgemm(0, 1, r1 - r0, nk, HS, scale, qh + (size_t)r0 * ldq, ldq, kh, ldkv, 0.0f, pb, Tk);
      for (int i = r0; i < r1; i++) softmax_row_causal(p + (size_t)i * Tk, off + i + 1, Tk);
      /* out_h[r0:r1] = P[r0:r1, 0:nk] v_h[0:nk] */
      ch_sgemm(0, 0, r1 - r0, HS, nk, 1.0f, pb, Tk, vh, ldkv, 0.0f, oh + (size_t)r0 * ldo, ldo);
    }
  }
}

void cpu_attention_backward(float *dq, float *dk, float *dv, int ld, const float *dout, int ldo,
                            const float *q, const float *k, const float *v, int ldq,
                            const float *probs, float *scratch, int T, int NH, int HS) {
  const float scale = 1.0f / sqrtf((float)HS);
  float *ds = scratch; /* dP, then dS in place: T*T floats of the 2*T*T allowed */
  for (int h = 0; h < NH; h++) {
    const float *p = probs + (size_t)h * T * T;
    const float *qh = q + (size_t)h * HS, *kh = k + (size_t)h * HS, *vh = v + (size_t)h * HS;
    const float *doh = dout + (size_t)h * HS;
    float *dqh = dq + (size_t)h * HS, *dkh = dk + (size_t)h * HS, *dvh = dv + (size_t)h * HS;
    for (int r0 = 0; r0 < T; r0 += BLOCK) {
      int r1 = imin(r0 + BLOCK, T); /* rows r0..r1-1 see keys 0..r1-1 */
      float *dsb = ds + (size_t)r0 * T;
      /* dP[r0:r1, 0:r1] = dout_h[r0:r1] v_h[0:r1]^T */
      ch_sgemm(0, 1, r1 - r0, r1, HS, 1.0f, doh + (size_t)r0 * ldo, ldo, vh, ldq, 0.0f, dsb, T);
      for (int i = r0; i < r1; i++) {
        const float *pr = p + (size_t)i * T;
        float *dr = ds + (size_t)i * T;
        float dot = 0.0f;
        for (int j = 0; j <= i; j++) dot += dr[j] * pr[j];
        for (int j = 0; j <= i; j++) dr[j] = pr[j] * (dr[j] - dot) * scale;
        /* the key-block GEMMs below read this block's rectangle up to column r1-1 */
        for (int j = i + 1; j < r1; j++) dr[j] = 0.0f;
      }
      /* dq_h[r0:r1] = dS[r0:r1, 0:r1] k_h[0:r1] */
      ch_sgemm(0, 0, r1 - r0, HS, r1, 1.0f, dsb, T, kh, ldq, 0.0f, dqh + (size_t)r0 * ld, ld);
    }
    for (int c0 = 0; c0 < T; c0 += BLOCK) {
      int c1 = imin(c0 + BLOCK, T); /* keys c0..c1-1 are seen by queries c0..T-1 */
      /* dv_h[c0:c1] = P[c0:T, c0:c1]^T dout_h[c0:T];  dk_h[c0:c1] = dS[c0:T, c0:c1]^T q_h[c0:T] */
      ch_sgemm(1, 0, c1 - c0, HS, T - c0, 1.0f, p + (size_t)c0 * T + c0, T, doh + (size_t)c0 * ldo,
               ldo, 0.0f, dvh + (size_t)c0 * ld, ld);
      ch_sgemm(1, 0, c1 - c0, HS, T - c0, 1.0f, ds + (size_t)c0 * T + c0, T, qh + (size_t)c0 * ldq,
               ldq, 0.0f, dkh + (size_t)c0 * ld, ld);
    }
  }
}
