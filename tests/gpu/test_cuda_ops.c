/* The CUDA backend's ops other than GEMMs and attention (test_cuda_gemm_ops covers those),
 * against the CPU backend, the reference: each op runs through the ch_op_* wrappers on both
 * backends on the same random inputs (U(-1,1) scaled, never zeros), and the results are
 * compared. Without a device (real build) it exits 77; under the emulation it always runs.
 *
 * Shapes are odd on purpose: lengths not a multiple of 4, 32 or a block, rows not a multiple
 * of a block's rows, views 4 bytes past an aligned address (the kernels' scalar paths), and
 * gradients that start non-zero (accumulate vs overwrite). Measures and tolerances:
 * - exact (tol 0, compared bit for bit): add, scale, ReLU (one IEEE operation or a select),
 *   the embedding forward and dwpe (the same float additions in the same order), the casts
 *   (round to nearest even on the bit pattern is a function), AdamW and SGD (the kernels use
 *   the CPU loop's operations in its order with IEEE rounding, kernels/cuda/optim.cu).
 * - fp32, TOL = 1e-5, relative to the tensor's largest entry (max_i |got_i - ref_i| /
 *   max_j |ref_j|): GELU (expf against the CPU's polynomial exp, a few ulp), LayerNorm (fp32
 *   lane-strided sums and shuffle trees against 8 double accumulators; dw/db by float
 *   atomics), dwte (float atomics: repeated tokens sum in another order), the losses (fp32
 *   sum of exponentials per row; the row sum in double). fp32 rounding in a sum scales with
 *   its terms, so entries that cancel towards zero carry absolute errors set by the tensor's
 *   scale; this measure judges them by that scale. For the sizes here the two orders differ
 *   by 1e-7..1e-6 of it; a wrong index, stride, mask or term gives 1e-2 and more.
 * - xent gradient: per-element relative error, TOL: off-label entries are scale p_j, ~1/classes
 *   of the largest entry, which the measure above would not see; they are products of
 *   positive terms (no cancellation), so each is accurate to a few ulp. The label's entry
 *   scale (p - 1) cancels as p -> 1 and is judged relative to scale (err_xent_grad).
 * - sumsq: relative, 1e-12: both sides add the same exact double products (a float times a
 *   float fits in a double), in other orders: ~log2(n) 2^-53. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/backend.h"
#include "cohort/cuda.h"
#include "cohort/device.h"
#include "testlib.h"

#define TOL 1e-5

static const ch_backend *CPU, *GPU;
static int nchecks;

/* ---- buffers ------------------------------------------------------------------------------ */

/* Every device allocation, freed at the end. */
static void *dev_allocs[4096];
static int ndev_allocs;

/* `bytes` of device memory at byte offset `mis` past a 256-aligned allocation, filled with
 * 0x5A bytes (floats of 1.5e16): an op that should overwrite its output but adds to it, or
 * leaves part of it, shows. */
static void *dalloc(size_t bytes, size_t mis) {
  void *p = NULL;
  CHT_OK(ch_op_alloc(GPU, bytes + mis + 16, &p));
  CHT_OK(ch_op_memset(GPU, p, 0x5A, bytes + mis + 16));
  CHT_ASSERT(ndev_allocs < 4096, "too many device buffers");
  dev_allocs[ndev_allocs++] = p;
  return (char *)p + mis;
}

/* A device copy of host x (bytes), `mis` bytes past an aligned address. */
static void *dcopy(const void *x, size_t bytes, size_t mis) {
  void *d = dalloc(bytes, mis);
  CHT_OK(ch_op_upload(GPU, d, x, bytes));
  return d;
}

/* A host copy of device x: malloc'd, freed by the caller. */
static void *hcopy(const void *dev, size_t bytes) {
  void *h = malloc(bytes ? bytes : 1);
  CHT_ASSERT(h, "out of memory");
  CHT_OK(ch_op_download(GPU, h, dev, bytes));
  return h;
}

static void *dup(const void *x, size_t bytes) {
  void *y = malloc(bytes ? bytes : 1);
  CHT_ASSERT(y, "out of memory");
  memcpy(y, x, bytes);
  return y;
}

/* n floats of scale U(-1,1) + offset, from random stream `stream`. */
static float *rnd(size_t n, uint64_t stream, float scale, float offset) {
  float *x = malloc(sizeof *x * (n ? n : 1));
  CHT_ASSERT(x, "out of memory");
  cht_fill_uniform(x, n, 13, stream);
  for (size_t i = 0; i < n; i++) x[i] = scale * x[i] + offset;
  return x;
}

/* ---- measures ----------------------------------------------------------------------------- */

/* max_i |a_i - r_i| / max_j |r_j| (a NaN fails). */
static double err_max(const float *a, const float *r, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)a[i] - (double)r[i]);
    if (!(d <= num)) num = d;
    den = fmax(den, fabs((double)r[i]));
  }
  return num / fmax(den, 1e-300);
}

/* The xent gradient's error: max_j |a_j - r_j| / (|r_j| + scale [j == label]). Off-label
 * entries are scale p_j, products of positive terms, judged relative to themselves; the label
 * entry scale (p_t - 1) cancels when p_t is near 1, so it is judged by the size of its terms. */
static double err_xent_grad(const float *a, const float *r, const int32_t *labels, int64_t ldl,
                            int T, size_t rows, int classes, float scale) {
  double e = 0;
  for (size_t i = 0; i < rows; i++) {
    int32_t t = labels[(i / T) * ldl + i % T];
    for (int j = 0; j < classes; j++) {
      size_t k = i * classes + j;
      double d = fabs((double)a[k] - (double)r[k]) / (fabs((double)r[k]) + (j == t ? scale : 0.0));
      if (!(d <= e)) e = d;
    }
  }
  return e;
}

static double err_rel(double a, double r) { return fabs(a - r) / fmax(fabs(r), 1e-300); }

/* Prints one row and fails when e is above tol (or NaN). */
static void report(const char *op, const char *cas, double e, double tol) {
  printf("| %-16s | %-40s | %9.2e | %7.0e |\n", op, cas, e, tol);
  fflush(stdout);
  nchecks++;
  CHT_ASSERT(e <= tol, "%s (%s): error %.3e above %.0e", op, cas, e, tol);
}

/* Exact: the same bits (error 0), else the measured error and a failure. */
static void report_exact(const char *op, const char *cas, const float *a, const float *r,
                         size_t n) {
  report(op, cas, memcmp(a, r, sizeof *a * n) ? fmax(err_max(a, r, n), 1e-300) : 0.0, 0.0);
}

/* Downloads n floats of device d and checks them against host r (tol 0: bitwise). */
static void check_f(const char *op, const char *cas, const float *d, const float *r, size_t n,
                    double tol) {
  float *g = hcopy(d, sizeof *g * n);
  if (tol == 0)
    report_exact(op, cas, g, r, n);
  else
    report(op, cas, err_max(g, r, n), tol);
  free(g);
}

/* ---- memory ops --------------------------------------------------------------------------- */

static void test_memory(void) {
  enum { N = 1001 };
  unsigned char h[N], back[N], want[N];
  for (int i = 0; i < N; i++) h[i] = (unsigned char)(i * 37 + 11);
  unsigned char *d = dalloc(N, 0);
  CHT_ASSERT(((uintptr_t)d & 63) == 0, "alloc: not 64-byte aligned");
  CHT_OK(ch_op_upload(GPU, d, h, N));
  CHT_OK(ch_op_download(GPU, back, d, N));
  report("upload/download", "1001 bytes", memcmp(h, back, N) ? 1 : 0, 0);
  /* memset of an odd range in the middle, then a sync */
  CHT_OK(ch_op_memset(GPU, d + 3, 0xAB, 500));
  CHT_OK(ch_op_sync(GPU));
  memcpy(want, h, N);
  memset(want + 3, 0xAB, 500);
  CHT_OK(ch_op_download(GPU, back, d, N));
  report("memset", "500 bytes at +3", memcmp(want, back, N) ? 1 : 0, 0);
  CHT_OK(ch_op_memset(GPU, d, 0, 0)); /* zero bytes: a no-op */
  /* stage: a copy into the staging buffer, which is what ops then read */
  const void *dev = NULL;
  unsigned char *staging = dalloc(N, 0);
  CHT_OK(ch_op_stage(GPU, staging, h, N, &dev));
  CHT_ASSERT(dev == staging, "stage: the device pointer is not the staging buffer");
  CHT_OK(ch_op_download(GPU, back, dev, N));
  report("stage", "1001 bytes", memcmp(h, back, N) ? 1 : 0, 0);
  void *z = NULL;
  CHT_OK(ch_op_alloc(GPU, 0, &z)); /* 0 bytes is allowed */
  ch_op_free(GPU, z);
  ch_op_free(GPU, NULL);
}

/* ---- elementwise -------------------------------------------------------------------------- */

typedef ch_status (*unary_fn)(const ch_backend *, float *, const float *, int64_t);
typedef ch_status (*binary_fn)(const ch_backend *, float *, const float *, const float *, int64_t);

/* y = f(x), out of place and in place (y aliasing x). */
static void check_unary(const char *op, unary_fn f, int64_t n, int mis, double tol) {
  char cas[96];
  float *x = rnd(n, 1, 3.0f, 0.1f), *ref = dup(x, sizeof *x * n);
  CHT_OK(f(CPU, ref, x, n));
  float *dx = dcopy(x, sizeof *x * n, mis ? 4 : 0), *dy = dalloc(sizeof *x * n, mis ? 4 : 0);
  CHT_OK(f(GPU, dy, dx, n));
  snprintf(cas, sizeof cas, "n=%lld%s", (long long)n, mis ? " unaligned" : "");
  check_f(op, cas, dy, ref, n, tol);
  CHT_OK(f(GPU, dx, dx, n));
  snprintf(cas, sizeof cas, "n=%lld%s in place", (long long)n, mis ? " unaligned" : "");
  check_f(op, cas, dx, ref, n, tol);
  free(x), free(ref);
}

/* out = f(a, b) out of place, then with out aliasing a (the gradient dx = dy, or y = a). */
static void check_binary(const char *op, binary_fn f, int64_t n, int mis, double tol) {
  char cas[96];
  float *a = rnd(n, 2, 2.0f, 0.05f), *b = rnd(n, 3, 3.0f, -0.1f), *ref = dup(a, sizeof *a * n);
  CHT_OK(f(CPU, ref, a, b, n));
  float *da = dcopy(a, sizeof *a * n, mis ? 4 : 0), *db = dcopy(b, sizeof *b * n, 0);
  float *dy = dalloc(sizeof *a * n, mis ? 8 : 0);
  CHT_OK(f(GPU, dy, da, db, n));
  snprintf(cas, sizeof cas, "n=%lld%s", (long long)n, mis ? " unaligned" : "");
  check_f(op, cas, dy, ref, n, tol);
  CHT_OK(f(GPU, da, da, db, n));
  snprintf(cas, sizeof cas, "n=%lld%s out = first", (long long)n, mis ? " unaligned" : "");
  check_f(op, cas, da, ref, n, tol);
  free(a), free(b), free(ref);
}

static ch_status op_gelu_fwd(const ch_backend *be, float *y, const float *x, int64_t n) { return ch_op_gelu_fwd(be, y, x, n); }
static ch_status op_relu_fwd(const ch_backend *be, float *y, const float *x, int64_t n) { return ch_op_relu_fwd(be, y, x, n); }
static ch_status op_gelu_bwd(const ch_backend *be, float *dx, const float *dy, const float *x, int64_t n) { return ch_op_gelu_bwd(be, dx, dy, x, n); }
static ch_status op_relu_bwd(const ch_backend *be, float *dx, const float *dy, const float *x, int64_t n) { return ch_op_relu_bwd(be, dx, dy, x, n); }
static ch_status op_add(const ch_backend *be, float *y, const float *a, const float *b, int64_t n) { return ch_op_add(be, y, a, b, n); }
/* scale as a unary op: y = x (a copy through the host), then y *= -0.37. */
static ch_status op_scale(const ch_backend *be, float *y, const float *x, int64_t n) {
  if (y != x) {
    float *h = malloc(sizeof *h * n);
    CHT_ASSERT(h, "out of memory");
    CHT_OK(ch_op_download(be, h, x, sizeof *h * n));
    CHT_OK(ch_op_upload(be, y, h, sizeof *h * n));
    free(h);
  }
  return ch_op_scale(be, y, -0.37f, n);
}

static void test_elementwise(void) {
  const int64_t ns[] = {1, 7, 1000, 4099};
  for (int i = 0; i < 4; i++)
    for (int mis = 0; mis < 2; mis++) {
      check_unary("gelu_fwd", op_gelu_fwd, ns[i], mis, TOL);
      check_binary("gelu_bwd", op_gelu_bwd, ns[i], mis, TOL);
      check_unary("relu_fwd", op_relu_fwd, ns[i], mis, 0);
      check_binary("relu_bwd", op_relu_bwd, ns[i], mis, 0);
      check_binary("add", op_add, ns[i], mis, 0);
      check_unary("scale", op_scale, ns[i], mis, 0);
    }
  /* add with y aliasing b */
  int64_t n = 1003;
  float *a = rnd(n, 4, 1.0f, 0.2f), *b = rnd(n, 5, 1.0f, -0.3f), *ref = malloc(sizeof *ref * n);
  CHT_OK(ch_op_add(CPU, ref, a, b, n));
  float *da = dcopy(a, sizeof *a * n, 0), *db = dcopy(b, sizeof *b * n, 0);
  CHT_OK(ch_op_add(GPU, db, da, db, n));
  check_f("add", "n=1003 out = second", db, ref, n, 0);
  free(a), free(b), free(ref);
}

static void test_sumsq(void) {
  const int64_t ns[] = {1, 7, 1000, 100003};
  for (int i = 0; i < 4; i++)
    for (int mis = 0; mis < 2; mis++) {
      int64_t n = ns[i];
      float *x = rnd(n, 6, 2.0f, 0.1f);
      double ref = 0, got[2] = {0, 0}, *dout = dalloc(sizeof(double), 0);
      CHT_OK(ch_op_sumsq(CPU, x, n, &ref));
      float *dx = dcopy(x, sizeof *x * n, mis ? 4 : 0);
      for (int k = 0; k < 2; k++) { /* twice: the result must be the same bits */
        CHT_OK(ch_op_memset(GPU, dout, 0x7f, sizeof(double))); /* overwritten, not added */
        CHT_OK(ch_op_sumsq(GPU, dx, n, dout));
        CHT_OK(ch_op_download(GPU, &got[k], dout, sizeof(double)));
      }
      char cas[96];
      snprintf(cas, sizeof cas, "n=%lld%s", (long long)n, mis ? " unaligned" : "");
      report("sumsq", cas, err_rel(got[0], ref), 1e-12);
      CHT_ASSERT(memcmp(&got[0], &got[1], sizeof(double)) == 0, "sumsq: not deterministic");
      free(x);
    }
}

/* ---- LayerNorm ---------------------------------------------------------------------------- */

static void check_layernorm(int64_t rows, int dim, int mis) {
  char cas[96];
  snprintf(cas, sizeof cas, "rows=%lld dim=%d%s", (long long)rows, dim, mis ? " unaligned" : "");
  size_t n = (size_t)rows * dim, o = mis ? 4 : 0;
  float *x = rnd(n, 7, 2.0f, 0.3f), *w = rnd(dim, 8, 0.5f, 1.0f), *b = rnd(dim, 9, 0.2f, 0.0f);
  float *y = malloc(sizeof *y * n), *mean = malloc(sizeof *mean * rows), *rstd = malloc(sizeof *rstd * rows);
  const float eps = 1e-5f;
  CHT_OK(ch_op_layernorm_fwd(CPU, y, mean, rstd, x, w, b, rows, dim, eps));
  float *dxx = dcopy(x, sizeof *x * n, o), *dw = dcopy(w, sizeof *w * dim, o), *dbb = dcopy(b, sizeof *b * dim, o);
  float *dy = dalloc(sizeof *y * n, o), *dmean = dalloc(sizeof *mean * rows, 0), *drstd = dalloc(sizeof *rstd * rows, 0);
  CHT_OK(ch_op_layernorm_fwd(GPU, dy, dmean, drstd, dxx, dw, dbb, rows, dim, eps));
  check_f("layernorm_fwd", cas, dy, y, n, TOL);
  check_f("layernorm_fwd", "  mean", dmean, mean, rows, TOL);
  check_f("layernorm_fwd", "  rstd", drstd, rstd, rows, TOL);
  CHT_OK(ch_op_layernorm_fwd(GPU, dy, NULL, NULL, dxx, dw, dbb, rows, dim, eps));
  check_f("layernorm_fwd", "  mean, rstd NULL", dy, y, n, TOL);

  /* backward: dx, dw, db all start non-zero and accumulate */
  float *g = rnd(n, 10, 1.0f, 0.05f), *gx = rnd(n, 11, 0.5f, 0.0f);
  float *gw = rnd(dim, 12, 0.5f, 0.0f), *gb = rnd(dim, 13, 0.5f, 0.0f);
  float *dg = dcopy(g, sizeof *g * n, o), *dgx = dcopy(gx, sizeof *gx * n, o);
  float *dgw = dcopy(gw, sizeof *gw * dim, 0), *dgb = dcopy(gb, sizeof *gb * dim, 0);
  /* the CPU's mean/rstd on both sides, so only the backward's own sums differ */
  CHT_OK(ch_op_upload(GPU, dmean, mean, sizeof *mean * rows));
  CHT_OK(ch_op_upload(GPU, drstd, rstd, sizeof *rstd * rows));
  CHT_OK(ch_op_layernorm_bwd(CPU, gx, gw, gb, g, x, mean, rstd, w, rows, dim));
  CHT_OK(ch_op_layernorm_bwd(GPU, dgx, dgw, dgb, dg, dxx, dmean, drstd, dw, rows, dim));
  check_f("layernorm_bwd", cas, dgx, gx, n, TOL);
  check_f("layernorm_bwd", "  dw", dgw, gw, dim, TOL);
  check_f("layernorm_bwd", "  db", dgb, gb, dim, TOL);
  free(x), free(w), free(b), free(y), free(mean), free(rstd), free(g), free(gx), free(gw), free(gb);
}

static void test_layernorm(void) {
  check_layernorm(1, 7, 0);
  check_layernorm(37, 33, 1);
  check_layernorm(9, 64, 0);
  check_layernorm(9, 64, 1);
  check_layernorm(70, 768, 0);
  check_layernorm(3, 4100, 0); /* above the shared-memory partials' limit */
}

/* ---- embedding ---------------------------------------------------------------------------- */

static void check_embedding(int B, int T, int C, int V, int64_t ldt, int pos0, int mis) {
  char cas[96];
  snprintf(cas, sizeof cas, "B=%d T=%d C=%d ldt=%lld pos0=%d%s", B, T, C, (long long)ldt, pos0,
           mis ? " unaligned" : "");
  size_t n = (size_t)B * T * C, ntok = (size_t)(B - 1) * ldt + T, o = mis ? 4 : 0;
  int32_t *tok = malloc(sizeof *tok * ntok);
  float *u = rnd(ntok, 14, 1.0f, 1.0f); /* U(0, 2) */
  for (size_t i = 0; i < ntok; i++) tok[i] = (int32_t)(u[i] * 0.5f * (V / 3)) % V; /* repeats */
  float *wte = rnd((size_t)V * C, 15, 1.0f, 0.1f), *wpe = rnd((size_t)(pos0 + T) * C, 16, 0.5f, 0.0f);
  float *y = malloc(sizeof *y * n);
  CHT_OK(ch_op_embedding_fwd(CPU, y, tok, ldt, pos0, wte, wpe, B, T, C));
  int32_t *dtok = dcopy(tok, sizeof *tok * ntok, 0);
  float *dwte = dcopy(wte, sizeof *wte * V * C, o), *dwpe = dcopy(wpe, sizeof *wpe * (pos0 + T) * C, o);
  float *dy = dalloc(sizeof *y * n, o);
  CHT_OK(ch_op_embedding_fwd(GPU, dy, dtok, ldt, pos0, dwte, dwpe, B, T, C));
  check_f("embedding_fwd", cas, dy, y, n, 0);

  float *g = rnd(n, 17, 1.0f, 0.02f), *gte = rnd((size_t)V * C, 18, 1.0f, 0.0f), *gpe = rnd((size_t)T * C, 19, 1.0f, 0.0f);
  float *dg = dcopy(g, sizeof *g * n, o), *dgte = dcopy(gte, sizeof *gte * V * C, o), *dgpe = dcopy(gpe, sizeof *gpe * T * C, o);
  CHT_OK(ch_op_embedding_bwd(CPU, gte, gpe, g, tok, ldt, B, T, C));
  CHT_OK(ch_op_embedding_bwd(GPU, dgte, dgpe, dg, dtok, ldt, B, T, C));
  check_f("embedding_bwd", "  dwte (repeated tokens)", dgte, gte, (size_t)V * C, TOL);
  check_f("embedding_bwd", "  dwpe", dgpe, gpe, (size_t)T * C, 0);
  free(tok), free(u), free(wte), free(wpe), free(y), free(g), free(gte), free(gpe);
}

static void test_embedding(void) {
  check_embedding(3, 7, 13, 50, 12, 2, 0);
  check_embedding(3, 7, 64, 50, 7, 0, 0);
  check_embedding(3, 7, 64, 50, 9, 5, 1);
  check_embedding(1, 37, 36, 11, 37, 3, 0);
  check_embedding(4, 33, 96, 300, 40, 0, 0);
}

/* ---- cross-entropy ------------------------------------------------------------------------ */

/* Logits [B T, classes] with labels at stride ldl; some rows get their label as the argmax, and
 * row 0 a tie for the maximum whose later index is the label (the first argmax wins: a miss). */
static void make_xent(int B, int T, int classes, int64_t ldl, float **logits, int32_t **labels) {
  size_t rows = (size_t)B * T, nl = (size_t)(B - 1) * ldl + T;
  float *z = rnd(rows * classes, 20, 3.0f, 0.0f), *u = rnd(nl, 21, 0.5f, 0.5f);
  int32_t *lab = malloc(sizeof *lab * nl);
  for (size_t i = 0; i < nl; i++) lab[i] = (int32_t)(u[i] * classes) % classes;
  for (size_t r = 0; r < rows; r += 3) {
    int32_t t = lab[(r / T) * ldl + r % T];
    z[r * classes + t] += 8.0f; /* a hit */
  }
  if (classes > 2) {
    int32_t t = lab[0] > 0 ? lab[0] : 1;
    lab[0] = t;
    z[0] = z[t] = 20.0f; /* tie: index 0 is the argmax */
  }
  free(u);
  *logits = z;
  *labels = lab;
}

static void check_xent(int B, int T, int classes, int64_t ldl) {
  char cas[96];
  snprintf(cas, sizeof cas, "B=%d T=%d classes=%d ldl=%lld", B, T, classes, (long long)ldl);
  size_t rows = (size_t)B * T, n = rows * classes, nl = (size_t)(B - 1) * ldl + T;
  float *z;
  int32_t *lab;
  make_xent(B, T, classes, ldl, &z, &lab);
  float *dz = dcopy(z, sizeof *z * n, 0);
  int32_t *dlab = dcopy(lab, sizeof *lab * nl, 0);

  /* forward: loss and correct start non-zero and are added to */
  double loss = 1.25, gloss = 0;
  int64_t correct = 4, gcorrect = 0;
  double *dloss = dcopy(&loss, sizeof loss, 0);
  int64_t *dcorrect = dcopy(&correct, sizeof correct, 0);
  CHT_OK(ch_op_xent_fwd(CPU, z, lab, ldl, B, T, classes, &loss, &correct));
  CHT_OK(ch_op_xent_fwd(GPU, dz, dlab, ldl, B, T, classes, dloss, dcorrect));
  CHT_OK(ch_op_download(GPU, &gloss, dloss, sizeof gloss));
  CHT_OK(ch_op_download(GPU, &gcorrect, dcorrect, sizeof gcorrect));
  report("xent_fwd", cas, err_rel(gloss, loss), TOL);
  report("xent_fwd", "  correct", gcorrect == correct ? 0 : 1, 0);
  CHT_OK(ch_op_xent_fwd(GPU, dz, dlab, ldl, B, T, classes, dloss, NULL)); /* correct NULL */

  /* fused, out of place and in place, loss added to a non-zero start */
  float scale = 1.0f / (float)rows, *d = malloc(sizeof *d * n);
  double floss = -0.5, gfloss = 0;
  double *dfloss = dcopy(&floss, sizeof floss, 0);
  CHT_OK(ch_op_xent_fused(CPU, d, z, lab, ldl, B, T, classes, scale, &floss));
  float *dd = dalloc(sizeof *d * n, 0);
  CHT_OK(ch_op_xent_fused(GPU, dd, dz, dlab, ldl, B, T, classes, scale, dfloss));
  CHT_OK(ch_op_download(GPU, &gfloss, dfloss, sizeof gfloss));
  report("xent_fused", cas, err_rel(gfloss, floss), TOL);
  float *g = hcopy(dd, sizeof *g * n);
  report("xent_fused", "  dlogits (per element)", err_xent_grad(g, d, lab, ldl, T, rows, classes, scale), TOL);
  CHT_OK(ch_op_xent_fused(GPU, dz, dz, dlab, ldl, B, T, classes, scale, dfloss));
  free(g);
  g = hcopy(dz, sizeof *g * n);
  report("xent_fused", "  dlogits in place", err_xent_grad(g, d, lab, ldl, T, rows, classes, scale), TOL);
  free(z), free(lab), free(d), free(g);
}

static void test_xent(void) {
  check_xent(3, 5, 7, 8);
  check_xent(2, 3, 50, 3);
  check_xent(3, 5, 1000, 9);
  check_xent(1, 4, 1031, 4);
  check_xent(2, 2, 5003, 6);
}

/* ---- optimizers --------------------------------------------------------------------------- */

/* A span table over a flat buffer with gaps (other ranks' elements) and a packed one: `count`
 * spans of pseudo-random sizes up to `maxn` (some empty), alternating decay. *flat_n and
 * *local_n are the buffers' lengths. */
static ch_span *make_spans(int count, int maxn, size_t *flat_n, size_t *local_n) {
  ch_span *s = malloc(sizeof *s * count);
  size_t flat = 3, local = 0;
  uint64_t r = 12345;
  for (int i = 0; i < count; i++) {
    r = r * 6364136223846793005ull + 1442695040888963407ull;
    size_t n = (i % 7 == 3) ? 0 : (size_t)((r >> 33) % (uint64_t)maxn) + 1;
    s[i] = (ch_span){.flat = flat, .local = local, .n = n, .decay = i % 2 == 0};
    flat += n + (i % 3); /* a gap of 0..2 elements that belongs to no span */
    local += n;
  }
  *flat_n = flat + 5;
  *local_n = local;
  return s;
}

typedef struct opt_case {
  int p_flat, g_flat;
} opt_case;

static void test_adamw(int count, int maxn) {
  size_t fn, ln;
  ch_span *spans = make_spans(count, maxn, &fn, &ln);
  const opt_case cases[] = {{1, 1}, {0, 1}, {0, 0}};
  for (int c = 0; c < 3; c++) {
    size_t pn = cases[c].p_flat ? fn : ln, gn = cases[c].g_flat ? fn : ln;
    float *p = rnd(pn, 22, 1.0f, 0.0f), *m = rnd(ln, 23, 0.01f, 0.0f), *v = rnd(ln, 24, 0.001f, 0.001f);
    float *dp = dcopy(p, sizeof *p * pn, 4), *dm = dcopy(m, sizeof *m * ln, 0), *dv = dcopy(v, sizeof *v * ln, 4);
    for (int step = 1; step <= 3; step++) {
      float *g = rnd(gn, 25 + step, 0.1f, 0.001f);
      float *dg = dcopy(g, sizeof *g * gn, 0);
      ch_adamw_args a = {.lr = 3e-3f, .weight_decay = 0.1f, .beta1 = 0.9f, .beta2 = 0.95f,
                         .bc1 = (float)(1.0 - pow(0.9, step)),
                         .sqrt_bc2 = (float)sqrt(1.0 - pow(0.95, step)), .eps = 1e-8f};
      CHT_OK(ch_op_adamw(CPU, spans, count, p, cases[c].p_flat, g, cases[c].g_flat, m, v, &a));
      CHT_OK(ch_op_adamw(GPU, spans, count, dp, cases[c].p_flat, dg, cases[c].g_flat, dm, dv, &a));
      free(g);
    }
    char cas[96];
    snprintf(cas, sizeof cas, "%d spans, %zu elems, p %s g %s, 3 steps", count, ln,
             cases[c].p_flat ? "flat" : "packed", cases[c].g_flat ? "flat" : "packed");
    check_f("adamw", cas, dp, p, pn, 0);
    check_f("adamw", "  m", dm, m, ln, 0);
    check_f("adamw", "  v", dv, v, ln, 0);
    free(p), free(m), free(v);
  }
  free(spans);
}

static void test_sgd(int count, int maxn) {
  size_t fn, ln;
  ch_span *spans = make_spans(count, maxn, &fn, &ln);
  const opt_case cases[] = {{1, 1}, {0, 1}, {0, 0}};
  for (int c = 0; c < 3; c++) {
    size_t pn = cases[c].p_flat ? fn : ln, gn = cases[c].g_flat ? fn : ln;
    float *p = rnd(pn, 30, 1.0f, 0.0f), *m = rnd(ln, 31, 0.1f, 0.0f);
    float *dp = dcopy(p, sizeof *p * pn, 4), *dm = dcopy(m, sizeof *m * ln, 4);
    /* momentum, first step then later ones; then plain SGD (m untouched) */
    const float mus[] = {0.9f, 0.9f, 0.9f, 0.0f};
    for (int step = 0; step < 4; step++) {
      float *g = rnd(gn, 32 + step, 0.1f, 0.001f);
      float *dg = dcopy(g, sizeof *g * gn, 0);
      ch_sgd_args a = {.lr = 0.05f, .weight_decay = 0.01f, .momentum = mus[step], .first = step == 0};
      CHT_OK(ch_op_sgd(CPU, spans, count, p, cases[c].p_flat, g, cases[c].g_flat, m, &a));
      CHT_OK(ch_op_sgd(GPU, spans, count, dp, cases[c].p_flat, dg, cases[c].g_flat, dm, &a));
      free(g);
    }
    char cas[96];
    snprintf(cas, sizeof cas, "%d spans, %zu elems, p %s g %s, 4 steps", count, ln,
             cases[c].p_flat ? "flat" : "packed", cases[c].g_flat ? "flat" : "packed");
    check_f("sgd", cas, dp, p, pn, 0);
    check_f("sgd", "  m", dm, m, ln, 0);
    free(p), free(m);
  }
  free(spans);
}

/* ---- casts -------------------------------------------------------------------------------- */

static float f_of(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

static void test_casts(void) {
  /* fp32 -> bf16: random values plus the edges: ties (to even, both ways), a NaN with a
   * payload, +-inf, the largest float (overflows to inf), subnormals, +-0 */
  int64_t n = 4099;
  float *x = rnd(n, 40, 100.0f, 0.0f);
  const uint32_t edges[] = {0x3f808000u, 0x3f818000u, 0x7fc12345u, 0xff812345u, 0x7f800000u,
                            0xff800000u, 0x7f7fffffu, 0x00018000u, 0x80008001u, 0x00000000u,
                            0x80000000u, 0x3f80ffffu, 0x477fe000u};
  for (size_t i = 0; i < sizeof edges / sizeof *edges; i++) x[i * 97 + 1] = f_of(edges[i]);
  for (int mis = 0; mis < 2; mis++) {
    uint16_t *ref = malloc(sizeof *ref * n);
    CHT_OK(ch_op_cast_f32_bf16(CPU, ref, x, n));
    float *dx = dcopy(x, sizeof *x * n, mis ? 4 : 0);
    uint16_t *dy = dalloc(sizeof *ref * n, mis ? 2 : 0);
    CHT_OK(ch_op_cast_f32_bf16(GPU, dy, dx, n));
    uint16_t *got = hcopy(dy, sizeof *got * n);
    report("cast_f32_bf16", mis ? "n=4099 + edges, unaligned" : "n=4099 + edges",
           memcmp(got, ref, sizeof *ref * n) ? 1 : 0, 0);
    free(ref), free(got);
  }
  free(x);
  /* bf16 -> fp32: every bit pattern */
  n = 65536;
  uint16_t *h = malloc(sizeof *h * (n + 1));
  for (int64_t i = 0; i < n; i++) h[i] = (uint16_t)i;
  for (int mis = 0; mis < 2; mis++) {
    float *ref = malloc(sizeof *ref * n);
    CHT_OK(ch_op_cast_bf16_f32(CPU, ref, h, n - mis));
    uint16_t *dx = dcopy(h, sizeof *h * (n - mis), mis ? 2 : 0);
    float *dy = dalloc(sizeof *ref * n, mis ? 4 : 0);
    CHT_OK(ch_op_cast_bf16_f32(GPU, dy, dx, n - mis));
    float *got = hcopy(dy, sizeof *got * (n - mis));
    report("cast_bf16_f32", mis ? "all 65535 but one, unaligned" : "all 65536 patterns",
           memcmp(got, ref, sizeof *ref * (n - mis)) ? 1 : 0, 0);
    free(ref), free(got);
  }
  free(h);
}

int main(void) {
  const ch_cuda_plugin *plugin = cohort_cuda_plugin();
  if (plugin->device_count() == 0) {
    printf("no CUDA device: skipped\n");
    return 77;
  }
  ch_backend *be = NULL;
  CHT_OK(plugin->backend_create(0, CH_PRECISION_FP32, &be));
  CPU = ch_backend_cpu();
  GPU = be;
  printf("%s backend (%d device(s)) against the cpu backend\n", plugin->flavor,
         plugin->device_count());
  printf("| %-16s | %-40s | %9s | %7s |\n", "op", "case", "max err", "tol");
  test_memory();
  test_elementwise();
  test_sumsq();
  test_layernorm();
  test_embedding();
  test_xent();
  test_casts();
  test_adamw(5, 300);
  test_adamw(300, 120); /* more elements than one grid stride: threads walk across spans */
  test_sgd(5, 300);
  test_sgd(300, 120);
  CHT_OK(ch_op_sync(GPU));
  for (int i = 0; i < ndev_allocs; i++) ch_op_free(GPU, dev_allocs[i]);
  plugin->backend_destroy(be);
  printf("cuda ops: all %d checks passed\n", nchecks);
  return 0;
}
