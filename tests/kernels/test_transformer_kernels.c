/* Transformer kernels (layernorm, causal attention, embedding, add) against naive double loops,
 * and every backward also against central finite differences in double.
 *
 * Error measure: max_i |got_i - ref_i| / max_j |ref_j|, the error relative to the tensor's
 * largest entry. fp32 rounding in a sum is proportional to the size of its terms, not of the
 * result, so entries that cancel to near zero carry absolute errors set by the tensor's scale;
 * judging each of them by its own size would fail correct code, while an absolute floor of 1
 * would let a wrong gradient of size 1e-2 pass. Inputs are U(-1,1) (never zero), sums run over
 * at most a few hundred terms, so correct fp32 kernels land at a few 1e-7 (the measured worst
 * cases are printed). TOL = 1e-5 leaves a margin of 10x and more, while any wrong index, mask,
 * transpose, stride or dropped term gives errors of order 1e-2 .. 1.
 * Finite differences: step 1e-5 on O(1) inputs in double: truncation ~h^2 = 1e-10 and
 * cancellation ~1e-16 |L| / h ~ 1e-10, so the difference quotient is exact to far below TOL and
 * the kernel (fp32) is judged against it with the same TOL. The naive analytic backward is also
 * checked against the finite differences (FD_REF_TOL), which validates the reference itself. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/backend.h"
#include "kernels/cpu/cpu_kernels.h"
#include "testlib.h"

#define TOL 1e-5
#define FD_H 1e-5
#define FD_REF_TOL 1e-7

static double worst_fwd, worst_bwd, worst_fd; /* measured maxima, printed at the end */

static float *rnd(size_t n, uint64_t stream) {
  float *x = malloc(sizeof *x * (n ? n : 1));
  cht_fill_uniform(x, n, 7, stream);
  return x;
}

static double *dbl(const float *x, size_t n) {
  double *d = malloc(sizeof *d * (n ? n : 1));
  for (size_t i = 0; i < n; i++) d[i] = x[i];
  return d;
}

/* max_i |a_i - r_i| / max_j |r_j| over a [rows, cols] view of a with row stride lda (r dense). */
static double err2d(const float *a, int64_t lda, const double *r, int64_t rows, int cols) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < rows; i++)
    for (int j = 0; j < cols; j++) {
      double d = fabs((double)a[i * lda + j] - r[i * cols + j]);
      if (!(d <= num)) num = d; /* NaN propagates */
      den = fmax(den, fabs(r[i * cols + j]));
    }
  return num / fmax(den, 1e-300);
}
static double err(const float *a, const double *r, int64_t n) { return err2d(a, n, r, 1, (int)n); }
static double errd(const double *a, const double *r, int64_t n) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; i++) {
    double d = fabs(a[i] - r[i]);
    if (!(d <= num)) num = d;
    den = fmax(den, fabs(r[i]));
  }
  return num / fmax(den, 1e-300);
}
static void note(double *worst, double e) { if (!(e <= *worst)) *worst = e; }

/* ---- attention references ---------------------------------------------------------------- */

/* out [Tq, NH*HS] dense, P [NH, Tq, Tk] (masked entries 0); q row stride ldq, k/v ldkv. */
static void ref_attn_fwd(double *out, double *P, const double *q, int ldq, const double *k,
                         const double *v, int ldkv, int Tq, int Tk, int NH, int HS) {
  int C = NH * HS, off = Tk - Tq;
  double scale = 1.0 / sqrt((double)HS);
  double *s = malloc(sizeof *s * (size_t)Tk);
  for (int h = 0; h < NH; h++)
    for (int i = 0; i < Tq; i++) {
      int n = off + i + 1;
      double mx = -INFINITY, sum = 0;
      for (int j = 0; j < n; j++) {
        double d = 0;
        for (int c = 0; c < HS; c++) d += q[(size_t)i * ldq + h * HS + c] * k[(size_t)j * ldkv + h * HS + c];
        s[j] = d * scale;
        mx = fmax(mx, s[j]);
      }
      for (int j = 0; j < n; j++) sum += (s[j] = exp(s[j] - mx));
      double *pr = P + ((size_t)h * Tq + i) * Tk;
      for (int j = 0; j < Tk; j++) pr[j] = j < n ? s[j] / sum : 0.0;
      for (int c = 0; c < HS; c++) {
        double o = 0;
        for (int j = 0; j < n; j++) o += pr[j] * v[(size_t)j * ldkv + h * HS + c];
        out[(size_t)i * C + h * HS + c] = o;
      }
    }
  free(s);
}

/* Gradients of L = sum dout * out for Tq == Tk == T, from the softmax Jacobian written out:
 * dP_ij = dout_i . v_j, dS_ij = P_ij (dP_ij - sum_l P_il dP_il), dq_i = scale sum_j dS_ij k_j,
 * dk_j = scale sum_i dS_ij q_i, dv_j = sum_i P_ij dout_i. Outputs dense [T, NH*HS]. */
static void ref_attn_bwd(double *dq, double *dk, double *dv, const double *dout, const double *q,
                         const double *k, const double *v, int ld, int T, int NH, int HS) {
  int C = NH * HS;
  double scale = 1.0 / sqrt((double)HS);
  double *out = malloc(sizeof *out * (size_t)T * C), *P = malloc(sizeof *P * (size_t)NH * T * T);
  double *dS = malloc(sizeof *dS * (size_t)T);
  ref_attn_fwd(out, P, q, ld, k, v, ld, T, T, NH, HS);
  memset(dq, 0, sizeof *dq * (size_t)T * C);
  memset(dk, 0, sizeof *dk * (size_t)T * C);
  memset(dv, 0, sizeof *dv * (size_t)T * C);
  for (int h = 0; h < NH; h++)
    for (int i = 0; i < T; i++) {
      const double *pr = P + ((size_t)h * T + i) * T;
      double rs = 0;
      for (int j = 0; j <= i; j++) {
        double d = 0;
        for (int c = 0; c < HS; c++) d += dout[(size_t)i * C + h * HS + c] * v[(size_t)j * ld + h * HS + c];
        dS[j] = d;
        rs += pr[j] * d;
      }
      for (int j = 0; j <= i; j++) {
        double g = pr[j] * (dS[j] - rs) * scale;
        for (int c = 0; c < HS; c++) {
          dq[(size_t)i * C + h * HS + c] += g * k[(size_t)j * ld + h * HS + c];
          dk[(size_t)j * C + h * HS + c] += g * q[(size_t)i * ld + h * HS + c];
          dv[(size_t)j * C + h * HS + c] += pr[j] * dout[(size_t)i * C + h * HS + c];
        }
      }
    }
  free(out), free(P), free(dS);
}

/* L = sum dout * out(qkv) for a fused double qkv [T, 3C]. */
static double attn_loss(const double *qkv, const double *dout, double *out, double *P, int T,
                        int NH, int HS) {
  int C = NH * HS;
  ref_attn_fwd(out, P, qkv, 3 * C, qkv + C, qkv + 2 * C, 3 * C, T, T, NH, HS);
  double L = 0;
  for (size_t i = 0; i < (size_t)T * C; i++) L += dout[i] * out[i];
  return L;
}

/* ---- attention tests --------------------------------------------------------------------- */

/* Training shape Tq == Tk == T. fused: q/k/v/dq/dk/dv are views into [T, 3C] buffers and out has
 * a padded row stride; otherwise separate dense [T, C] arrays. */
static void test_attention(int T, int NH, int HS, int fused, int fd) {
  int C = NH * HS, ld = fused ? 3 * C : C, ldo = fused ? C + 5 : C;
  size_t TC = (size_t)T * C, TT = (size_t)T * T;
  float *qkv = rnd(TC * 3, 100 + T);
  float *q, *k, *v;
  if (fused) {
    q = qkv, k = qkv + C, v = qkv + 2 * C;
  } else {
    q = malloc(sizeof *q * TC), k = malloc(sizeof *k * TC), v = malloc(sizeof *v * TC);
    for (int t = 0; t < T; t++) {
      memcpy(q + (size_t)t * C, qkv + (size_t)t * 3 * C, sizeof *q * C);
      memcpy(k + (size_t)t * C, qkv + (size_t)t * 3 * C + C, sizeof *k * C);
      memcpy(v + (size_t)t * C, qkv + (size_t)t * 3 * C + 2 * C, sizeof *v * C);
    }
  }
  /* out, probs and the gradients start as garbage: the kernels must write every entry */
  float *out = rnd((size_t)T * ldo, 200), *out2 = malloc(sizeof *out2 * (size_t)T * ldo);
  memcpy(out2, out, sizeof *out2 * (size_t)T * ldo);
  /* scratch too: the kernels must not rely on it starting zeroed */
  float *probs = rnd((size_t)NH * TT, 201), *scratch = rnd(TT, 204);
  float *dout = rnd(TC, 202), *dqkv = rnd(TC * 3, 203), *bscratch = rnd(2 * TT, 205);
  float *dq, *dk, *dv;
  if (fused) {
    dq = dqkv, dk = dqkv + C, dv = dqkv + 2 * C;
  } else {
    dq = dqkv, dk = dqkv + TC, dv = dqkv + 2 * TC;
  }

  cpu_attention_forward(out, ldo, probs, NULL, q, ld, k, v, ld, T, T, NH, HS);
  cpu_attention_forward(out2, ldo, NULL, scratch, q, ld, k, v, ld, T, T, NH, HS);
  cpu_attention_backward(dq, dk, dv, ld, dout, C, q, k, v, ld, probs, bscratch, T, NH, HS);

  double *qkvd = dbl(qkv, TC * 3), *doutd = dbl(dout, TC);
  double *oref = malloc(sizeof *oref * TC), *Pref = malloc(sizeof *Pref * NH * TT);
  ref_attn_fwd(oref, Pref, qkvd, 3 * C, qkvd + C, qkvd + 2 * C, 3 * C, T, T, NH, HS);
  double eo = err2d(out, ldo, oref, T, C), ep = err(probs, Pref, (int64_t)NH * TT);
  note(&worst_fwd, eo), note(&worst_fwd, ep);
  CHT_ASSERT(eo < TOL && ep < TOL, "attention T=%d NH=%d HS=%d fused=%d: out %g probs %g", T, NH,
             HS, fused, eo, ep);
  CHT_ASSERT(memcmp(out, out2, sizeof *out * (size_t)T * ldo) == 0,
             "attention T=%d: probs=NULL (scratch) path differs", T);
  for (int h = 0; h < NH; h++)
    for (int i = 0; i < T; i++)
      for (int j = i + 1; j < T; j++)
        CHT_ASSERT(probs[((size_t)h * T + i) * T + j] == 0.0f, "masked prob %d,%d,%d not 0", h, i, j);
  if (fused) { /* padding columns of out untouched */
    float *orig = rnd((size_t)T * ldo, 200);
    for (int t = 0; t < T; t++)
      CHT_ASSERT(memcmp(out + (size_t)t * ldo + C, orig + (size_t)t * ldo + C, sizeof *out * 5) == 0,
                 "attention T=%d: out padding written", T);
    free(orig);
  }

  double *g = malloc(sizeof *g * TC * 3);
  ref_attn_bwd(g, g + TC, g + 2 * TC, doutd, qkvd, qkvd + C, qkvd + 2 * C, 3 * C, T, NH, HS);
  const float *got[3] = {dq, dk, dv};
  const char *name[3] = {"dq", "dk", "dv"};
  for (int w = 0; w < 3; w++) {
    double e = err2d(got[w], ld, g + w * TC, T, C);
    note(&worst_bwd, e);
    CHT_ASSERT(e < TOL, "attention backward T=%d NH=%d HS=%d fused=%d: %s vs analytic %g", T, NH,
               HS, fused, name[w], e);
  }
  if (fd) {
    double *fdg = malloc(sizeof *fdg * TC * 3), *o = malloc(sizeof *o * TC);
    double *P = malloc(sizeof *P * NH * TT);
    for (int t = 0; t < T; t++)
      for (int c = 0; c < 3 * C; c++) {
        double *x = qkvd + (size_t)t * 3 * C + c, x0 = *x;
        *x = x0 + FD_H;
        double lp = attn_loss(qkvd, doutd, o, P, T, NH, HS);
        *x = x0 - FD_H;
        double lm = attn_loss(qkvd, doutd, o, P, T, NH, HS);
        *x = x0;
        fdg[(size_t)(c / C) * TC + (size_t)t * C + c % C] = (lp - lm) / (2 * FD_H);
      }
    for (int w = 0; w < 3; w++) {
      double e = err2d(got[w], ld, fdg + w * TC, T, C), er = errd(g + w * TC, fdg + w * TC, TC);
      note(&worst_fd, e);
      CHT_ASSERT(e < TOL && er < FD_REF_TOL, "attention T=%d NH=%d HS=%d: %s vs finite diff %g (ref %g)",
                 T, NH, HS, name[w], e, er);
    }
    free(fdg), free(o), free(P);
  }
  printf("attention T=%d NH=%d HS=%d fused=%d: out %.2g probs %.2g, dq/dk/dv ok%s\n", T, NH, HS,
         fused, eo, ep, fd ? " (+finite diff)" : "");
  if (!fused) free(q), free(k), free(v);
  free(qkv), free(out), free(out2), free(probs), free(scratch), free(dout), free(dqkv), free(bscratch);
  free(qkvd), free(doutd), free(oref), free(Pref), free(g);
}

/* Tq < Tk: the queries are the last Tq rows of a sequence of Tk (decode: Tq = 1; chunked
 * prefill: Tq > 1). q comes from a fused [Tk, 3C] row (ldq = 3C), k and v from separate
 * [Tk, C] caches (ldkv = C). Results must match the same rows of the full causal forward. */
static void test_attention_tail(int Tq, int Tk, int NH, int HS) {
  int C = NH * HS, off = Tk - Tq;
  size_t TC = (size_t)Tk * C;
  float *qkv = rnd(TC * 3, 300 + Tq), *kc = malloc(sizeof *kc * TC), *vc = malloc(sizeof *vc * TC);
  for (int t = 0; t < Tk; t++) {
    memcpy(kc + (size_t)t * C, qkv + (size_t)t * 3 * C + C, sizeof *kc * C);
    memcpy(vc + (size_t)t * C, qkv + (size_t)t * 3 * C + 2 * C, sizeof *vc * C);
  }
  float *full = malloc(sizeof *full * TC), *pfull = malloc(sizeof *pfull * NH * Tk * Tk);
  cpu_attention_forward(full, C, pfull, NULL, qkv, 3 * C, qkv + C, qkv + 2 * C, 3 * C, Tk, Tk, NH,
                        HS);
  float *out = rnd((size_t)Tq * C, 301), *out2 = malloc(sizeof *out2 * (size_t)Tq * C);
  float *probs = rnd((size_t)NH * Tq * Tk, 302), *scratch = rnd((size_t)Tq * Tk, 303);
  const float *q = qkv + (size_t)off * 3 * C;
  cpu_attention_forward(out, C, probs, NULL, q, 3 * C, kc, vc, C, Tq, Tk, NH, HS);
  cpu_attention_forward(out2, C, NULL, scratch, q, 3 * C, kc, vc, C, Tq, Tk, NH, HS);

  double *qkvd = dbl(qkv, TC * 3), *oref = malloc(sizeof *oref * (size_t)Tq * C);
  double *Pref = malloc(sizeof *Pref * NH * Tq * Tk);
  ref_attn_fwd(oref, Pref, qkvd + (size_t)off * 3 * C, 3 * C, qkvd + C, qkvd + 2 * C, 3 * C, Tq, Tk, NH, HS);
  double eo = err(out, oref, (int64_t)Tq * C), ep = err(probs, Pref, (int64_t)NH * Tq * Tk);
  note(&worst_fwd, eo), note(&worst_fwd, ep);
  /* the same rows of the full forward, as doubles for err() */
  double *frows = malloc(sizeof *frows * (size_t)Tq * C), *prows = malloc(sizeof *prows * NH * Tq * Tk);
  for (size_t i = 0; i < (size_t)Tq * C; i++) frows[i] = full[(size_t)off * C + i];
  for (int h = 0; h < NH; h++)
    for (size_t i = 0; i < (size_t)Tq * Tk; i++)
      prows[(size_t)h * Tq * Tk + i] = pfull[((size_t)h * Tk + off) * Tk + i];
  double ef = err(out, frows, (int64_t)Tq * C), efp = err(probs, prows, (int64_t)NH * Tq * Tk);
  note(&worst_fwd, ef), note(&worst_fwd, efp);
  CHT_ASSERT(eo < TOL && ep < TOL && ef < TOL && efp < TOL,
             "attention Tq=%d Tk=%d NH=%d HS=%d: out %g probs %g; vs full forward rows: out %g probs %g",
             Tq, Tk, NH, HS, eo, ep, ef, efp);
  CHT_ASSERT(memcmp(out, out2, sizeof *out * (size_t)Tq * C) == 0, "Tq=%d Tk=%d: scratch path differs", Tq, Tk);
  for (int h = 0; h < NH; h++)
    for (int i = 0; i < Tq; i++)
      for (int j = off + i + 1; j < Tk; j++)
        CHT_ASSERT(probs[((size_t)h * Tq + i) * Tk + j] == 0.0f, "masked prob not 0");
  printf("attention Tq=%d Tk=%d NH=%d HS=%d: out %.2g probs %.2g; vs full forward %.2g %.2g\n", Tq,
         Tk, NH, HS, eo, ep, ef, efp);
  free(qkv), free(kc), free(vc), free(full), free(pfull), free(out), free(out2), free(probs);
  free(scratch), free(qkvd), free(oref), free(Pref), free(frows), free(prows);
}

/* ---- fused attention (attention_flash.c) -------------------------------------------------- */

/* The fused kernel, head by head, against the double reference (out, lse, dq/dk/dv) and against
 * the blocked kernel (attention.c) in fp32, on a fused qkv [T, 3C] with a padded out (ldo C+3)
 * and gradients in a [T, 3C] view. Same TOL: both kernels sum the same terms in fp32 (in other
 * orders, the fused one with its running max rescaling), so each lands within a few 1e-7 of the
 * exact values relative to the tensor's largest entry, and within 2 TOL of each other. */
static void test_flash(int T, int NH, int HS) {
  int C = NH * HS, ldo = C + 3;
  size_t TC = (size_t)T * C;
  float *qkv = rnd(TC * 3, 600 + T), *dout = rnd(TC, 601);
  const float *q = qkv, *k = qkv + C, *v = qkv + 2 * C;
  /* outputs start as garbage: every entry must be written */
  float *out = rnd((size_t)T * ldo, 602), *lse = rnd((size_t)NH * T, 603);
  float *dqkv = rnd(TC * 3, 604), *bout = malloc(sizeof *bout * TC), *bdqkv = malloc(sizeof *bdqkv * TC * 3);
  float *probs = malloc(sizeof *probs * NH * (size_t)T * T), *scr = malloc(sizeof *scr * 2 * (size_t)T * T);
  for (int h = 0; h < NH; h++)
    CHT_OK(cpu_flash_attention_forward(out + h * HS, ldo, lse + (size_t)h * T, q + h * HS, 3 * C,
                                       k + h * HS, v + h * HS, 3 * C, T, HS));
  for (int h = 0; h < NH; h++)
    CHT_OK(cpu_flash_attention_backward(dqkv + h * HS, dqkv + C + h * HS, dqkv + 2 * C + h * HS,
                                        3 * C, dout + h * HS, C, out + h * HS, ldo, q + h * HS,
                                        k + h * HS, v + h * HS, 3 * C, lse + (size_t)h * T, T, HS));
  cpu_attention_forward(bout, C, probs, NULL, q, 3 * C, k, v, 3 * C, T, T, NH, HS);
  cpu_attention_backward(bdqkv, bdqkv + C, bdqkv + 2 * C, 3 * C, dout, C, q, k, v, 3 * C, probs,
                         scr, T, NH, HS);

  double *qkvd = dbl(qkv, TC * 3), *doutd = dbl(dout, TC);
  double *oref = malloc(sizeof *oref * TC), *P = malloc(sizeof *P * NH * (size_t)T * T);
  double *lref = malloc(sizeof *lref * NH * (size_t)T), *g = malloc(sizeof *g * TC * 3);
  ref_attn_fwd(oref, P, qkvd, 3 * C, qkvd + C, qkvd + 2 * C, 3 * C, T, T, NH, HS);
  ref_attn_bwd(g, g + TC, g + 2 * TC, doutd, qkvd, qkvd + C, qkvd + 2 * C, 3 * C, T, NH, HS);
  double scale = 1.0 / sqrt((double)HS);
  for (int h = 0; h < NH; h++) /* lse_i = log sum_j e^(scale q_i . k_j) */
    for (int i = 0; i < T; i++) {
      double mx = -INFINITY, *sj = malloc(sizeof *sj * (i + 1)), sum = 0;
      for (int j = 0; j <= i; j++) {
        double d = 0;
        for (int c = 0; c < HS; c++) d += qkvd[(size_t)i * 3 * C + h * HS + c] * qkvd[(size_t)j * 3 * C + C + h * HS + c];
        sj[j] = d * scale, mx = fmax(mx, sj[j]);
      }
      for (int j = 0; j <= i; j++) sum += exp(sj[j] - mx);
      lref[(size_t)h * T + i] = mx + log(sum);
      free(sj);
    }
  double eo = err2d(out, ldo, oref, T, C), el = err(lse, lref, (int64_t)NH * T);
  double *bo = dbl(bout, TC);
  double eb = err2d(out, ldo, bo, T, C);
  note(&worst_fwd, eo), note(&worst_fwd, el);
  CHT_ASSERT(eo < TOL && el < TOL && eb < 2 * TOL, "flash T=%d NH=%d HS=%d: out %g lse %g vs blocked %g",
             T, NH, HS, eo, el, eb);
  for (int t = 0; t < T; t++) { /* padding columns of out untouched */
    float *orig = rnd((size_t)T * ldo, 602);
    CHT_ASSERT(memcmp(out + (size_t)t * ldo + C, orig + (size_t)t * ldo + C, sizeof *out * 3) == 0,
               "flash T=%d: out padding written", T);
    free(orig);
  }
  const char *name[3] = {"dq", "dk", "dv"};
  double worst_b = 0;
  for (int w = 0; w < 3; w++) {
    double e = err2d(dqkv + w * C, 3 * C, g + w * TC, T, C);
    if (T == 1 && w < 2) {
      /* One key: the softmax is constant 1, so dq = dk = 0 exactly, and the kernel's
       * dP - D (two fp32 dot products of HS O(1) terms) leaves rounding noise of ~HS 1e-7
       * that no relative measure can judge: it is judged absolutely. */
      e = 0;
      for (int c = 0; c < C; c++) e = fmax(e, fabs(dqkv[w * C + c]));
      CHT_ASSERT(e < TOL, "flash T=1: %s not ~0 (%g)", name[w], e);
      continue;
    }
    double *bw = malloc(sizeof *bw * TC);
    for (int t = 0; t < T; t++)
      for (int c = 0; c < C; c++) bw[(size_t)t * C + c] = bdqkv[(size_t)t * 3 * C + w * C + c];
    double ebw = err2d(dqkv + w * C, 3 * C, bw, T, C);
    note(&worst_bwd, e);
    worst_b = fmax(worst_b, e);
    CHT_ASSERT(e < TOL && ebw < 2 * TOL, "flash backward T=%d NH=%d HS=%d: %s vs analytic %g, vs blocked %g",
               T, NH, HS, name[w], e, ebw);
    free(bw);
  }
  printf("flash attention T=%d NH=%d HS=%d: out %.2g lse %.2g (vs blocked %.2g), dq/dk/dv %.2g\n", T,
         NH, HS, eo, el, eb, worst_b);
  free(qkv), free(dout), free(out), free(lse), free(dqkv), free(bout), free(bdqkv), free(probs), free(scr);
  free(qkvd), free(doutd), free(oref), free(P), free(lref), free(g), free(bo);
}

/* The CPU backend's attention ops, B sequences, at a T below and one above the fused kernel's
 * threshold (CPU_FLASH_MIN_T, backend_cpu.c): saved's size says which kernel ran (P or lse),
 * and out, dqkv match the double reference sequence by sequence. */
static void test_attention_op(int B, int T, int NH, int HS, int want_fused) {
  const ch_backend *be = ch_backend_cpu();
  int C = NH * HS;
  size_t rows = (size_t)B * T, saved;
  CHT_OK(ch_op_attention_saved(be, B, T, NH, HS, &saved));
  CHT_ASSERT(saved == (want_fused ? rows * NH : rows * NH * T), "T=%d: saved %zu floats", T, saved);
  float *qkv = rnd(rows * 3 * C, 700 + T), *dout = rnd(rows * C, 701), *out = rnd(rows * C, 702);
  float *sv = rnd(saved, 703), *dqkv = rnd(rows * 3 * C, 704);
  CHT_OK(ch_op_attention_fwd(be, out, sv, qkv, B, T, NH, HS));
  CHT_OK(ch_op_attention_bwd(be, dqkv, dout, qkv, out, sv, B, T, NH, HS));
  size_t TC = (size_t)T * C;
  double *o = malloc(sizeof *o * TC), *P = malloc(sizeof *P * NH * (size_t)T * T), *g = malloc(sizeof *g * 3 * TC);
  double worst = 0;
  for (int b = 0; b < B; b++) {
    double *x = dbl(qkv + b * 3 * TC, 3 * TC), *dy = dbl(dout + b * TC, TC);
    ref_attn_fwd(o, P, x, 3 * C, x + C, x + 2 * C, 3 * C, T, T, NH, HS);
    ref_attn_bwd(g, g + TC, g + 2 * TC, dy, x, x + C, x + 2 * C, 3 * C, T, NH, HS);
    double e = err(out + b * TC, o, (int64_t)TC);
    for (int w = 0; w < 3; w++) e = fmax(e, err2d(dqkv + b * 3 * TC + w * C, 3 * C, g + w * TC, T, C));
    worst = fmax(worst, e);
    free(x), free(dy);
  }
  note(&worst_bwd, worst);
  CHT_ASSERT(worst < TOL, "attention op B=%d T=%d NH=%d HS=%d (%s): %g", B, T, NH, HS,
             saved == rows * NH ? "fused" : "blocked", worst);
  printf("attention op B=%d T=%d NH=%d HS=%d (%s kernel): worst %.2g\n", B, T, NH, HS,
         saved == rows * NH ? "fused" : "blocked", worst);
  free(qkv), free(dout), free(out), free(sv), free(dqkv), free(o), free(P), free(g);
}

/* ---- layernorm --------------------------------------------------------------------------- */

static void ref_ln(double *y, double *mean, double *rstd, const double *x, const double *w,
                   const double *b, int rows, int dim, double eps) {
  for (int r = 0; r < rows; r++) {
    const double *xr = x + (size_t)r * dim;
    double m = 0, var = 0;
    for (int j = 0; j < dim; j++) m += xr[j];
    m /= dim;
    for (int j = 0; j < dim; j++) var += (xr[j] - m) * (xr[j] - m);
    double rs = 1.0 / sqrt(var / dim + eps);
    for (int j = 0; j < dim; j++) y[(size_t)r * dim + j] = (xr[j] - m) * rs * w[j] + b[j];
    if (mean) mean[r] = m, rstd[r] = rs;
  }
}

static double ln_loss(const double *x, const double *w, const double *b, const double *dy,
                      double *y, int rows, int dim) {
  ref_ln(y, NULL, NULL, x, w, b, rows, dim, 1e-5);
  double L = 0;
  for (size_t i = 0; i < (size_t)rows * dim; i++) L += dy[i] * y[i];
  return L;
}

static void test_layernorm(int rows, int dim, int fd) {
  size_t n = (size_t)rows * dim;
  float *x = rnd(n, 400), *w = rnd(dim, 401), *b = rnd(dim, 402), *dy = rnd(n, 403);
  for (size_t i = 0; i < n; i++) x[i] = 2.0f * x[i] + 0.75f; /* a mean to subtract */
  float *y = rnd(n, 404), *mean = rnd(rows, 405), *rstd = rnd(rows, 406);
  /* gradients start random: all three accumulate */
  float *dx = rnd(n, 407), *dw = rnd(dim, 408), *db = rnd(dim, 409);
  double *dx0 = dbl(dx, n), *dw0 = dbl(dw, dim), *db0 = dbl(db, dim);
  cpu_layernorm_forward(y, mean, rstd, x, w, b, rows, dim, 1e-5f);
  cpu_layernorm_backward(dx, dw, db, dy, x, mean, rstd, w, rows, dim);

  double *xd = dbl(x, n), *wd = dbl(w, dim), *bd = dbl(b, dim), *dyd = dbl(dy, n);
  double *yr = malloc(sizeof *yr * n), *mr = malloc(sizeof *mr * rows), *rr = malloc(sizeof *rr * rows);
  ref_ln(yr, mr, rr, xd, wd, bd, rows, dim, 1e-5);
  double ey = err(y, yr, (int64_t)n), em = err(mean, mr, rows), er = err(rstd, rr, rows);
  note(&worst_fwd, ey), note(&worst_fwd, em), note(&worst_fwd, er);
  CHT_ASSERT(ey < TOL && em < TOL && er < TOL, "layernorm %dx%d: y %g mean %g rstd %g", rows, dim, ey, em, er);

  /* analytic gradients (the increments), then expected final values = start + increment */
  double *gx = calloc(n, sizeof *gx), *gw = calloc(dim, sizeof *gw), *gb = calloc(dim, sizeof *gb);
  for (int r = 0; r < rows; r++) {
    double s1 = 0, s2 = 0;
    for (int j = 0; j < dim; j++) {
      double xh = (xd[(size_t)r * dim + j] - mr[r]) * rr[r], gg = dyd[(size_t)r * dim + j] * wd[j];
      s1 += gg, s2 += gg * xh;
      gw[j] += dyd[(size_t)r * dim + j] * xh;
      gb[j] += dyd[(size_t)r * dim + j];
    }
    for (int j = 0; j < dim; j++) {
      double xh = (xd[(size_t)r * dim + j] - mr[r]) * rr[r], gg = dyd[(size_t)r * dim + j] * wd[j];
      gx[(size_t)r * dim + j] = rr[r] * (gg - s1 / dim - xh * s2 / dim);
    }
  }
  double *gsets[3] = {gx, gw, gb}, *starts[3] = {dx0, dw0, db0};
  float *got[3] = {dx, dw, db};
  size_t lens[3] = {n, (size_t)dim, (size_t)dim};
  const char *name[3] = {"dx", "dw", "db"};
  double *fdg = NULL;
  if (fd) { /* finite differences of L = sum dy * y over x, w, b */
    fdg = malloc(sizeof *fdg * (n + 2 * (size_t)dim));
    double *params[3] = {xd, wd, bd};
    size_t at = 0;
    for (int p = 0; p < 3; p++)
      for (size_t i = 0; i < lens[p]; i++, at++) {
        double x0 = params[p][i];
        params[p][i] = x0 + FD_H;
        double lp = ln_loss(xd, wd, bd, dyd, yr, rows, dim);
        params[p][i] = x0 - FD_H;
        double lm = ln_loss(xd, wd, bd, dyd, yr, rows, dim);
        params[p][i] = x0;
        fdg[at] = (lp - lm) / (2 * FD_H);
      }
  }
  size_t at = 0;
  for (int p = 0; p < 3; p++) {
    /* judge the increment got - start (exact in double up to the fp32 rounding of the sum) */
    double *inc = malloc(sizeof *inc * lens[p]);
    for (size_t i = 0; i < lens[p]; i++) inc[i] = (double)got[p][i] - starts[p][i];
    double e = errd(inc, gsets[p], (int64_t)lens[p]);
    note(&worst_bwd, e);
    CHT_ASSERT(e < TOL, "layernorm %dx%d backward: %s vs analytic %g", rows, dim, name[p], e);
    if (fd) {
      double ef = errd(inc, fdg + at, (int64_t)lens[p]), er = errd(gsets[p], fdg + at, (int64_t)lens[p]);
      note(&worst_fd, ef);
      CHT_ASSERT(ef < TOL && er < FD_REF_TOL, "layernorm %dx%d: %s vs finite diff %g (ref %g)", rows,
                 dim, name[p], ef, er);
    }
    at += lens[p];
    free(inc);
  }
  printf("layernorm %dx%d: y %.2g mean %.2g rstd %.2g, dx/dw/db ok%s\n", rows, dim, ey, em, er,
         fd ? " (+finite diff)" : "");
  free(x), free(w), free(b), free(dy), free(y), free(mean), free(rstd), free(dx), free(dw), free(db);
  free(dx0), free(dw0), free(db0), free(xd), free(wd), free(bd), free(dyd), free(yr), free(mr), free(rr);
  free(gx), free(gw), free(gb), free(fdg);
}

/* ---- embedding and add ------------------------------------------------------------------- */

static void test_embedding(int V, int B, int T, int C) {
  int64_t n = (int64_t)B * T;
  int32_t *tok = malloc(sizeof *tok * n);
  for (int64_t i = 0; i < n; i++) tok[i] = (int32_t)((i * 5 + i / 3) % V); /* n > V: repeats */
  float *wte = rnd((size_t)V * C, 500), *wpe = rnd((size_t)T * C, 501), *dy = rnd((size_t)n * C, 502);
  float *y = rnd((size_t)n * C, 503), *dwte = rnd((size_t)V * C, 504), *dwpe = rnd((size_t)T * C, 505);
  double *dwte0 = dbl(dwte, (size_t)V * C), *dwpe0 = dbl(dwpe, (size_t)T * C);
  cpu_embedding_forward(y, tok, wte, wpe, n, T, C);
  cpu_embedding_backward(dwte, dwpe, dy, tok, n, T, C);

  double *yr = malloc(sizeof *yr * n * C), *gte = calloc((size_t)V * C, sizeof *gte);
  double *gpe = calloc((size_t)T * C, sizeof *gpe);
  for (int64_t i = 0; i < n; i++)
    for (int c = 0; c < C; c++) {
      yr[i * C + c] = (double)wte[(size_t)tok[i] * C + c] + wpe[(i % T) * C + c];
      gte[(size_t)tok[i] * C + c] += dy[i * C + c];
      gpe[(i % T) * C + c] += dy[i * C + c];
    }
  /* finite differences of L = sum dy * y: perturbing wte[t, c] changes every row with token t */
  double *fte = malloc(sizeof *fte * V * C), *fpe = malloc(sizeof *fpe * T * C);
  double *ted = dbl(wte, (size_t)V * C), *ped = dbl(wpe, (size_t)T * C);
  for (int p = 0; p < 2; p++) {
    double *tab = p ? ped : ted, *res = p ? fpe : fte;
    int rowsN = p ? T : V;
    for (size_t e = 0; e < (size_t)rowsN * C; e++) {
      double L[2];
      for (int s = 0; s < 2; s++) {
        double x0 = tab[e];
        tab[e] = x0 + (s ? -FD_H : FD_H);
        L[s] = 0;
        for (int64_t i = 0; i < n; i++)
          for (int c = 0; c < C; c++)
            L[s] += dy[i * C + c] * (ted[(size_t)tok[i] * C + c] + ped[(i % T) * C + c]);
        tab[e] = x0;
      }
      res[e] = (L[0] - L[1]) / (2 * FD_H);
    }
  }
  double ey = err(y, yr, n * C);
  note(&worst_fwd, ey);
  CHT_ASSERT(ey < 1e-7, "embedding forward %g", ey); /* one fp32 add per entry */
  double *inc = malloc(sizeof *inc * ((size_t)V + T) * C);
  for (size_t i = 0; i < (size_t)V * C; i++) inc[i] = (double)dwte[i] - dwte0[i];
  for (size_t i = 0; i < (size_t)T * C; i++) inc[(size_t)V * C + i] = (double)dwpe[i] - dwpe0[i];
  double e1 = errd(inc, gte, (int64_t)V * C), e2 = errd(inc + (size_t)V * C, gpe, (int64_t)T * C);
  double f1 = errd(inc, fte, (int64_t)V * C), f2 = errd(inc + (size_t)V * C, fpe, (int64_t)T * C);
  note(&worst_bwd, e1), note(&worst_bwd, e2), note(&worst_fd, f1), note(&worst_fd, f2);
  CHT_ASSERT(e1 < TOL && e2 < TOL && f1 < TOL && f2 < TOL,
             "embedding backward: dwte %g dwpe %g; vs finite diff %g %g", e1, e2, f1, f2);
  printf("embedding V=%d B=%d T=%d C=%d: y %.2g dwte %.2g dwpe %.2g (+finite diff)\n", V, B, T, C,
         ey, e1, e2);
  free(tok), free(wte), free(wpe), free(dy), free(y), free(dwte), free(dwpe), free(dwte0);
  free(dwpe0), free(yr), free(gte), free(gpe), free(fte), free(fpe), free(ted), free(ped), free(inc);
}

static void test_add(int64_t n) {
  float *a = rnd(n, 600), *b = rnd(n, 601), *y = rnd(n, 602), *ref = malloc(sizeof *ref * n);
  for (int64_t i = 0; i < n; i++) ref[i] = a[i] + b[i]; /* one IEEE add: exact match expected */
  cpu_add(y, a, b, n);
  CHT_ASSERT(memcmp(y, ref, sizeof *y * n) == 0, "add n=%lld", (long long)n);
  cpu_add(a, a, b, n); /* y aliasing a */
  CHT_ASSERT(memcmp(a, ref, sizeof *a * n) == 0, "add aliased n=%lld", (long long)n);
  free(a), free(b), free(y), free(ref);
}

int main(void) {
  CHT_OK(ch_blas_init(1));
  test_add(1), test_add(37), test_add(1000);
  test_embedding(5, 3, 4, 7);
  test_embedding(11, 2, 16, 33);
  test_layernorm(1, 1, 1);
  test_layernorm(3, 5, 1);
  test_layernorm(7, 37, 1);
  test_layernorm(4, 200, 0);
  test_layernorm(64, 771, 0);
  /* T, NH, HS, fused, finite differences. T = 70 and 130 cross the kernels' 64-row blocks. */
  int cases[][5] = {{1, 1, 4, 1, 1},   {1, 3, 16, 0, 1},  {7, 1, 4, 1, 1},    {7, 3, 4, 0, 1},
                    {7, 3, 16, 1, 1},  {33, 1, 4, 1, 1},  {33, 3, 16, 1, 0},  {33, 3, 16, 0, 0},
                    {33, 1, 16, 0, 0}, {70, 1, 4, 1, 1},  {130, 2, 16, 1, 0}, {130, 3, 4, 0, 0}};
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
    test_attention(cases[i][0], cases[i][1], cases[i][2], cases[i][3], cases[i][4]);
  /* decode (Tq = 1), chunks, and chunks that cross blocks with an offset */
  int tails[][4] = {{1, 9, 1, 4}, {1, 9, 3, 16}, {3, 10, 1, 16}, {3, 10, 3, 4}, {1, 1, 2, 4},
                    {70, 100, 2, 16}, {1, 200, 3, 16}};
  for (size_t i = 0; i < sizeof tails / sizeof *tails; i++)
    test_attention_tail(tails[i][0], tails[i][1], tails[i][2], tails[i][3]);
  /* T, NH, HS: T = 1, T within one tile, T not a multiple of the 32-row tiles, several tiles */
  int flash[][3] = {{1, 1, 16}, {1, 2, 64}, {5, 2, 16}, {32, 1, 32}, {33, 2, 16}, {70, 3, 32},
                    {100, 2, 64}, {130, 1, 24}, {67, 2, 128}, {64, 1, 8}};
  for (size_t i = 0; i < sizeof flash / sizeof *flash; i++) test_flash(flash[i][0], flash[i][1], flash[i][2]);
  test_attention_op(2, 40, 3, 16, 0);  /* below the threshold: blocked */
  test_attention_op(2, 530, 1, 32, 1); /* above: fused; 530 = 16 tiles of 32 + 18 */
  printf("worst errors (relative to each tensor's max): forward %.2g, backward vs analytic %.2g, "
         "vs finite differences %.2g; tolerance %g\n", worst_fwd, worst_bwd, worst_fd, TOL);
  printf("transformer kernels: all checks passed\n");
  return 0;
}
