/* The fused passes (kernels/cpu/fused.c, docs/gpt.md "Fused passes") against the compositions
 * they replace, and the reworked LayerNorm backward and GELU against the loops they replaced.
 *
 * Tolerance: none. Each fused op must give the SAME BITS as its composition of existing ops
 * (the same IEEE operations in the same order), so the GPT computes the same numbers with or
 * without fusion; the LayerNorm backward (restrict, vectorised) and GELU (exp's clamp
 * rewritten) must give the same bits as before. Checked:
 * - kernels: cpu_matmul_gelu_forward == cpu_matmul_forward + cpu_gelu_forward (pre and y);
 *   cpu_matmul_gelu_backward == cpu_gelu_backward (in place) + cpu_matmul_backward (dx, dW, db,
 *   the overwritten dy; gradients start non-zero; dx and db NULL too);
 *   cpu_add_layernorm_forward == cpu_add + cpu_layernorm_forward (res, y, mean, rstd; res
 *   aliasing a; mean/rstd NULL);
 * - the same through the backend seam (ch_op_* on the CPU backend);
 * - cpu_layernorm_backward and cpu_gelu_forward/backward against the previous loops, kept below
 *   as references (compiled with -ffp-contract=off, as the kernels), on inputs that include
 *   GELU's clamped ranges (|x| > 10), NaN and infinities.
 * Shapes are odd on purpose (not multiples of 8 or 16: the vector loops' tails). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/backend.h"
#include "kernels/cpu/cpu_kernels.h"
#include "testlib.h"

static int nchecks;

static float *rnd(size_t n, uint64_t stream, float scale, float offset) {
  float *x = ch_alloc_aligned(sizeof *x * (n ? n : 1));
  CHT_ASSERT(x, "out of memory");
  cht_fill_uniform(x, n, 5, stream);
  for (size_t i = 0; i < n; i++) x[i] = scale * x[i] + offset;
  return x;
}

static float *dup(const float *x, size_t n) {
  float *y = ch_alloc_aligned(sizeof *y * (n ? n : 1));
  CHT_ASSERT(y, "out of memory");
  memcpy(y, x, sizeof *y * n);
  return y;
}

/* Bitwise equality of n floats (NaNs compared as bits too). */
static void same(const float *a, const float *b, size_t n, const char *what, const char *cas) {
  size_t i = 0;
  while (i < n && memcmp(&a[i], &b[i], sizeof *a) == 0) i++;
  CHT_ASSERT(i == n, "%s (%s): element %zu differs: %.9g vs %.9g", what, cas, i, a[i], b[i]);
  nchecks++;
}

/* ---- the previous loops, as references ------------------------------------------------- */

/* kernels/cpu/fastmath.h's exp before its clamp was rewritten (the same values; the two
 * clamps in a row made GCC duplicate the function body per clamped path). */
static float ref_exp(float x) {
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = x - n * 0.693145751953125f;
  r = r - n * 1.42860682030941723e-6f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  uint32_t bits = (uint32_t)((int32_t)n + 127) << 23;
  float scale;
  memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

static void ref_gelu_forward(float *y, const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    float v = x[i];
    float e = ref_exp(-2.0f * 0.7978845608028654f * (v + 0.044715f * v * v * v));
    y[i] = v / (1.0f + e);
  }
}

static void ref_gelu_backward(float *dx, const float *dy, const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    float v = x[i];
    float e = ref_exp(-2.0f * 0.7978845608028654f * (v + 0.044715f * v * v * v));
    float s = 1.0f / (1.0f + e);
    float dgelu = s + 2.0f * v * (e * s) * s * 0.7978845608028654f * (1.0f + 3.0f * 0.044715f * v * v);
    dx[i] = dy[i] * dgelu;
  }
}

/* cpu_layernorm_backward before restrict (the loop GCC left scalar). */
static void ref_layernorm_backward(float *dx, float *dw, float *db, const float *dy,
                                   const float *x, const float *mean, const float *rstd,
                                   const float *w, int64_t rows, int dim) {
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * dim, *dyr = dy + r * dim;
    float *dxr = dx + r * dim;
    float mf = mean[r], rs = rstd[r];
    double a1[8] = {0}, a2[8] = {0};
    int j = 0;
    for (; j + 8 <= dim; j += 8)
      for (int l = 0; l < 8; l++) {
        float xh = (xr[j + l] - mf) * rs, g = dyr[j + l] * w[j + l];
        a1[l] += (double)g;
        a2[l] += (double)g * (double)xh;
      }
    for (; j < dim; j++) {
      float xh = (xr[j] - mf) * rs, g = dyr[j] * w[j];
      a1[j % 8] += (double)g;
      a2[j % 8] += (double)g * (double)xh;
    }
    double s1 = ((a1[0] + a1[1]) + (a1[2] + a1[3])) + ((a1[4] + a1[5]) + (a1[6] + a1[7]));
    double s2 = ((a2[0] + a2[1]) + (a2[2] + a2[3])) + ((a2[4] + a2[5]) + (a2[6] + a2[7]));
    float m1 = (float)(s1 / dim), m2 = (float)(s2 / dim);
    for (j = 0; j < dim; j++) {
      float xh = (xr[j] - mf) * rs, g = dyr[j] * w[j];
      dxr[j] += rs * (g - m1 - xh * m2);
      dw[j] += dyr[j] * xh;
      db[j] += dyr[j];
    }
  }
}

/* ---- the rewritten kernels against the previous loops ----------------------------------- */

static void check_gelu(int64_t n) {
  char cas[64];
  snprintf(cas, sizeof cas, "n=%lld", (long long)n);
  float *x = rnd((size_t)n, 1, 12.0f, 0.0f), *dy = rnd((size_t)n, 2, 1.0f, 0.0f);
  /* the clamped ranges of exp's argument, the GELU tails, and non-finite inputs */
  const float special[] = {-100.0f, -9.0f, -8.5f, 8.5f, 9.0f, 100.0f, 0.0f, -0.0f,
                           INFINITY, -INFINITY, NAN, 1e-30f};
  for (size_t i = 0; i < sizeof special / sizeof *special && (int64_t)i < n; i++) x[i * 3 % n] = special[i];
  float *y = rnd((size_t)n, 3, 1, 0), *yr = rnd((size_t)n, 3, 1, 0);
  cpu_gelu_forward(y, x, n);
  ref_gelu_forward(yr, x, n);
  same(y, yr, (size_t)n, "gelu_forward vs the previous loop", cas);
  float *dx = dup(dy, (size_t)n), *dxr = dup(dy, (size_t)n);
  cpu_gelu_backward(dx, dx, x, n); /* in place, as the models call it */
  ref_gelu_backward(dxr, dy, x, n);
  same(dx, dxr, (size_t)n, "gelu_backward vs the previous loop", cas);
  ch_free_aligned(x), ch_free_aligned(dy), ch_free_aligned(y), ch_free_aligned(yr);
  ch_free_aligned(dx), ch_free_aligned(dxr);
}

static void check_layernorm_backward(int64_t rows, int dim) {
  char cas[64];
  snprintf(cas, sizeof cas, "rows=%lld dim=%d", (long long)rows, dim);
  size_t n = (size_t)rows * dim;
  float *x = rnd(n, 4, 2.0f, 0.3f), *w = rnd((size_t)dim, 5, 0.5f, 1.0f);
  float *b = rnd((size_t)dim, 6, 0.2f, 0.0f), *y = rnd(n, 7, 1, 0);
  float *mean = rnd((size_t)rows, 8, 1, 0), *rstd = rnd((size_t)rows, 9, 1, 0);
  cpu_layernorm_forward(y, mean, rstd, x, w, b, rows, dim, 1e-5f);
  float *dy = rnd(n, 10, 1.0f, 0.05f), *dx = rnd(n, 11, 0.5f, 0.0f);
  float *dw = rnd((size_t)dim, 12, 0.5f, 0), *db = rnd((size_t)dim, 13, 0.5f, 0);
  float *dxr = dup(dx, n), *dwr = dup(dw, (size_t)dim), *dbr = dup(db, (size_t)dim);
  cpu_layernorm_backward(dx, dw, db, dy, x, mean, rstd, w, rows, dim);
  ref_layernorm_backward(dxr, dwr, dbr, dy, x, mean, rstd, w, rows, dim);
  same(dx, dxr, n, "layernorm_backward dx vs the previous loop", cas);
  same(dw, dwr, (size_t)dim, "layernorm_backward dw vs the previous loop", cas);
  same(db, dbr, (size_t)dim, "layernorm_backward db vs the previous loop", cas);
  float *all[] = {x, w, b, y, mean, rstd, dy, dx, dw, db, dxr, dwr, dbr};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) ch_free_aligned(all[i]);
}

/* ---- fused ops against their compositions ----------------------------------------------- */

/* `be` NULL: the kernels; else the ops of backend `be`. */
static void matmul_fwd(const ch_backend *be, float *y, const float *x, const float *w,
                       const float *b, int64_t B, int in, int out) {
  if (be) CHT_OK(ch_op_matmul_fwd(be, y, x, w, b, B, in, out));
  else cpu_matmul_forward(0, y, x, w, b, B, in, out);
}

static void check_matmul_gelu(const ch_backend *be, int64_t B, int in, int out, int bias) {
  char cas[96];
  snprintf(cas, sizeof cas, "%s B=%lld in=%d out=%d%s", be ? "op" : "kernel", (long long)B, in,
           out, bias ? "" : " no bias");
  size_t nx = (size_t)B * in, ny = (size_t)B * out, nw = (size_t)in * out;
  float *x = rnd(nx, 20, 1.0f, 0.1f), *w = rnd(nw, 21, 0.3f, 0.0f);
  float *b = bias ? rnd((size_t)out, 22, 0.5f, 0.0f) : NULL;
  /* forward */
  float *pre = rnd(ny, 23, 1, 0), *y = rnd(ny, 24, 1, 0);
  float *pre_r = rnd(ny, 25, 1, 0), *y_r = rnd(ny, 26, 1, 0);
  if (be) CHT_OK(ch_op_matmul_gelu_fwd(be, pre, y, x, w, b, B, in, out));
  else cpu_matmul_gelu_forward(0, pre, y, x, w, b, B, in, out);
  matmul_fwd(be, pre_r, x, w, b, B, in, out);
  if (be) CHT_OK(ch_op_gelu_fwd(be, y_r, pre_r, (int64_t)ny));
  else cpu_gelu_forward(y_r, pre_r, (int64_t)ny);
  same(pre, pre_r, ny, "matmul_gelu_fwd pre", cas);
  same(y, y_r, ny, "matmul_gelu_fwd y", cas);
  /* backward, with and without dx and db; gradients start non-zero (dW, db accumulate) */
  for (int variant = 0; variant < 3; variant++) {
    int want_dx = variant != 1, want_db = bias && variant != 2;
    float *dy = rnd(ny, 27, 1.0f, 0.02f), *dy_r = dup(dy, ny);
    float *dx = rnd(nx, 28, 1, 0), *dx_r = dup(dx, nx);
    float *dw = rnd(nw, 29, 0.1f, 0), *dw_r = dup(dw, nw);
    float *db = rnd((size_t)out, 30, 0.1f, 0), *db_r = dup(db, (size_t)out);
    if (be) {
      CHT_OK(ch_op_matmul_gelu_bwd(be, want_dx ? dx : NULL, dw, want_db ? db : NULL, dy, pre, x, w,
                                   B, in, out));
      CHT_OK(ch_op_gelu_bwd(be, dy_r, dy_r, pre, (int64_t)ny));
      CHT_OK(ch_op_matmul_bwd(be, want_dx ? dx_r : NULL, dw_r, want_db ? db_r : NULL, dy_r, x, w,
                              B, in, out));
    } else {
      cpu_matmul_gelu_backward(0, want_dx ? dx : NULL, dw, want_db ? db : NULL, dy, pre, x, w, B,
                               in, out);
      cpu_gelu_backward(dy_r, dy_r, pre, (int64_t)ny);
      cpu_matmul_backward(0, want_dx ? dx_r : NULL, dw_r, want_db ? db_r : NULL, dy_r, x, w, B,
                          in, out);
    }
    char c2[128];
    snprintf(c2, sizeof c2, "%s%s%s", cas, want_dx ? "" : " dx NULL", want_db ? "" : " db NULL");
    same(dy, dy_r, ny, "matmul_gelu_bwd dpre (dy overwritten)", c2);
    same(dx, dx_r, nx, "matmul_gelu_bwd dx", c2);
    same(dw, dw_r, nw, "matmul_gelu_bwd dw", c2);
    same(db, db_r, (size_t)out, "matmul_gelu_bwd db", c2);
    float *all[] = {dy, dy_r, dx, dx_r, dw, dw_r, db, db_r};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) ch_free_aligned(all[i]);
  }
  float *all[] = {x, w, b, pre, y, pre_r, y_r};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) ch_free_aligned(all[i]);
}

static void check_add_layernorm(const ch_backend *be, int64_t rows, int dim) {
  char cas[96];
  snprintf(cas, sizeof cas, "%s rows=%lld dim=%d", be ? "op" : "kernel", (long long)rows, dim);
  size_t n = (size_t)rows * dim;
  const float eps = 1e-5f;
  float *a = rnd(n, 40, 2.0f, 0.3f), *b = rnd(n, 41, 1.0f, -0.1f);
  float *w = rnd((size_t)dim, 42, 0.5f, 1.0f), *bias = rnd((size_t)dim, 43, 0.2f, 0.0f);
  /* reference: add, then LayerNorm */
  float *res_r = rnd(n, 44, 1, 0), *y_r = rnd(n, 45, 1, 0);
  float *mean_r = rnd((size_t)rows, 46, 1, 0), *rstd_r = rnd((size_t)rows, 47, 1, 0);
  if (be) {
    CHT_OK(ch_op_add(be, res_r, a, b, (int64_t)n));
    CHT_OK(ch_op_layernorm_fwd(be, y_r, mean_r, rstd_r, res_r, w, bias, rows, dim, eps));
  } else {
    cpu_add(res_r, a, b, (int64_t)n);
    cpu_layernorm_forward(y_r, mean_r, rstd_r, res_r, w, bias, rows, dim, eps);
  }
  /* out of place, then in place (res == a, as the GPT calls it), then without mean/rstd */
  for (int variant = 0; variant < 3; variant++) {
    float *ain = dup(a, n), *res = variant == 1 ? ain : rnd(n, 48, 1, 0), *y = rnd(n, 49, 1, 0);
    float *mean = rnd((size_t)rows, 50, 1, 0), *rstd = rnd((size_t)rows, 51, 1, 0);
    float *m = variant == 2 ? NULL : mean, *r = variant == 2 ? NULL : rstd;
    if (be) CHT_OK(ch_op_add_layernorm_fwd(be, res, y, m, r, ain, b, w, bias, rows, dim, eps));
    else cpu_add_layernorm_forward(res, y, m, r, ain, b, w, bias, rows, dim, eps);
    char c2[128];
    snprintf(c2, sizeof c2, "%s%s", cas,
             variant == 1 ? " res = a" : variant == 2 ? " mean, rstd NULL" : "");
    same(res, res_r, n, "add_layernorm_fwd res", c2);
    same(y, y_r, n, "add_layernorm_fwd y", c2);
    if (variant < 2) {
      same(mean, mean_r, (size_t)rows, "add_layernorm_fwd mean", c2);
      same(rstd, rstd_r, (size_t)rows, "add_layernorm_fwd rstd", c2);
    }
    if (res != ain) ch_free_aligned(res);
    ch_free_aligned(ain), ch_free_aligned(y), ch_free_aligned(mean), ch_free_aligned(rstd);
  }
  float *all[] = {a, b, w, bias, res_r, y_r, mean_r, rstd_r};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) ch_free_aligned(all[i]);
}

int main(void) {
  const int64_t ns[] = {1, 7, 17, 1000, 4099};
  for (size_t i = 0; i < sizeof ns / sizeof *ns; i++) check_gelu(ns[i]);
  const int ln_shapes[][2] = {{1, 7}, {5, 8}, {37, 33}, {9, 64}, {70, 768}, {3, 771}};
  for (size_t i = 0; i < sizeof ln_shapes / sizeof *ln_shapes; i++)
    check_layernorm_backward(ln_shapes[i][0], ln_shapes[i][1]);
  /* in above OpenBLAS's K block (several hundred) too, where today's bias-first order and a
   * bias-last epilogue would round differently */
  const int mm[][3] = {{1, 3, 5}, {13, 17, 35}, {64, 64, 256}, {37, 520, 131}};
  for (int k = 0; k < 2; k++) {
    const ch_backend *be = k ? ch_backend_cpu() : NULL;
    for (size_t i = 0; i < sizeof mm / sizeof *mm; i++)
      for (int bias = 0; bias < 2; bias++) check_matmul_gelu(be, mm[i][0], mm[i][1], mm[i][2], bias);
    for (size_t i = 0; i < sizeof ln_shapes / sizeof *ln_shapes; i++)
      check_add_layernorm(be, ln_shapes[i][0], ln_shapes[i][1]);
  }
  /* no rows: nothing written, nothing read */
  CHT_OK(ch_op_matmul_gelu_fwd(ch_backend_cpu(), NULL, NULL, NULL, NULL, NULL, 0, 4, 4));
  CHT_OK(ch_op_matmul_gelu_bwd(ch_backend_cpu(), NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, 4, 4));
  CHT_OK(ch_op_add_layernorm_fwd(ch_backend_cpu(), NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                                 0, 4, 1e-5f));
  printf("ok fused ops: %d bitwise checks\n", nchecks);
  return 0;
}
