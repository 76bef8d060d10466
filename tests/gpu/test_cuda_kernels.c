/* CUDA kernels (include/cohort/cuda.h) against the CPU kernels, the reference (docs/cuda.md).
 * Needs a GPU: exits 77 (ctest: skipped) when ch_cuda_device_count() is 0.
 *
 * Inputs are random (U(-1,1) scaled, never zeros); each case runs the CPU kernel on host copies
 * and the CUDA kernel on device copies, then compares. Measures and tolerances:
 * - fp32 ops, TOL = 1e-5, error relative to the tensor's largest entry (max_i |got_i - ref_i| /
 *   max_j |ref_j|): the GPU sums in fp32 in another order (lane-strided partial sums, shuffle
 *   trees, float atomics) than the CPU (sequential, or 8 double accumulators). fp32 rounding in
 *   a sum is proportional to the size of its terms, not of the result, so entries that cancel
 *   towards zero carry absolute errors set by the tensor's scale; this measure judges them by
 *   that scale. For sums of at most a few thousand O(1) terms the two orders differ by about
 *   1e-7..1e-6 of it; a wrong index, stride, mask or term gives 1e-2 and more.
 * - xent gradient: per-element relative error, same TOL. Off-label entries are scale * p_j,
 *   ~1/classes of the largest entry, so the measure above would not see them; they are
 *   products of positive terms (no cancellation), so each is accurate to a few ulp.
 * - exact (0): add and the embedding forward (one fp32 addition each side), the casts
 *   (round-to-nearest-even is a function), bf16 -> fp32.
 * - adamw: TOL; the kernel is written to be bitwise the CPU's (kernels/cuda/adamw.cu), and
 *   whether it is is printed, not asserted, until a GPU run has confirmed it.
 * - GEMM: see test_gemm. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/config.h"
#include "cohort/cuda.h"
#include "kernels/cpu/cpu_kernels.h"
#include "cohort/optim.h"
#include "cohort/rng.h"
#include "cohort/tensor.h"
#include "testlib.h"

#define TOL 1e-5

static ch_cuda_stream S; /* every kernel runs on this non-blocking stream */

/* ---- helpers ----------------------------------------------------------------------------- */

static void *dmalloc(size_t bytes) {
  void *p;
  CHT_OK(ch_cuda_alloc(&p, bytes));
  return p;
}
static void up(void *dev, const void *host, size_t bytes) { CHT_OK(ch_cuda_upload(dev, host, bytes, S)); }
static void down(void *host, const void *dev, size_t bytes) { CHT_OK(ch_cuda_download(host, dev, bytes, S)); }

/* n floats of scale * U(-1,1) + offset from (stream). */
static float *rnd(size_t n, uint64_t stream, float scale, float offset) {
  float *x = malloc(sizeof *x * (n ? n : 1));
  CHT_ASSERT(x, "out of memory");
  cht_fill_uniform(x, n, 11, stream);
  for (size_t i = 0; i < n; i++) x[i] = scale * x[i] + offset;
  return x;
}
static float *copy(const float *x, size_t n) {
  float *y = malloc(sizeof *y * (n ? n : 1));
  CHT_ASSERT(y, "out of memory");
  memcpy(y, x, sizeof *y * n);
  return y;
}
/* A device copy of x at element offset `mis` of its allocation (mis = 1: not 16-byte aligned,
 * which sends kernels down their scalar paths). Free with ch_cuda_free(p - mis). */
static float *dcopy(const float *x, size_t n, int mis) {
  float *d = (float *)dmalloc(sizeof *d * (n + 1)) + mis;
  up(d, x, sizeof *d * n);
  return d;
}

/* max_i |a_i - r_i| / max_j |r_j| (NaN propagates as failure). */
static double err(const float *a, const float *r, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)a[i] - (double)r[i]);
    if (!(d <= num)) num = d;
    den = fmax(den, fabs((double)r[i]));
  }
  return num / fmax(den, 1e-300);
}

static int nchecks;
/* One row of the results table; fails the test when err > tol (or is NaN). */
static void check(const char *op, const char *cas, double e, double tol) {
  nchecks++;
  printf("| %-26s | %-30s | %9.2e | %7.0e |\n", op, cas, e, tol);
  fflush(stdout);
  CHT_ASSERT(e <= tol, "%s (%s): error %.3g over tolerance %.3g", op, cas, e, tol);
}

/* Downloads n floats of dev into got and checks them against ref. */
static void check_dev(const char *op, const char *cas, float *got, const float *dev,
                      const float *ref, size_t n, double tol) {
  down(got, dev, sizeof *got * n);
  check(op, cas, err(got, ref, n), tol);
}

/* ---- elementwise ------------------------------------------------------------------------- */

static void test_elementwise(int64_t n, int mis) {
  char cas[64];
  snprintf(cas, sizeof cas, "n=%lld%s", (long long)n, mis ? " unaligned" : "");
  float *x = rnd(n, 1, 4.0f, 0.0f), *dy = rnd(n, 2, 1.0f, 0.0f), *got = malloc(sizeof *got * n);
  float *ref = malloc(sizeof *ref * n);
  float *dx = dcopy(x, n, mis), *ddy = dcopy(dy, n, mis), *dout = dcopy(x, n, mis);

  cpu_gelu_forward(ref, x, n);
  CHT_OK(ch_cuda_gelu_forward(dout, dx, n, S));
  check_dev("gelu_forward", cas, got, dout, ref, n, TOL);

  cpu_gelu_backward(ref, dy, x, n);
  CHT_OK(ch_cuda_gelu_backward(dout, ddy, dx, n, S));
  check_dev("gelu_backward", cas, got, dout, ref, n, TOL);

  cpu_add(ref, x, dy, n);
  CHT_OK(ch_cuda_add(dx, dx, ddy, n, S)); /* in place: y aliases a */
  check_dev("add (in place)", cas, got, dx, ref, n, 0.0);

  ch_cuda_free(dx - mis), ch_cuda_free(ddy - mis), ch_cuda_free(dout - mis);
  free(x), free(dy), free(got), free(ref);
}

/* ---- layernorm --------------------------------------------------------------------------- */

static void test_layernorm(int64_t rows, int dim, int mis) {
  char cas[64];
  snprintf(cas, sizeof cas, "rows=%lld dim=%d%s", (long long)rows, dim, mis ? " unaligned" : "");
  size_t n = (size_t)rows * dim;
  /* rows with different offsets: means are not all near zero */
  float *x = rnd(n, 3, 2.0f, 0.0f), *w = rnd(dim, 4, 0.5f, 1.0f), *b = rnd(dim, 5, 1.0f, 0.0f);
  for (int64_t r = 0; r < rows; r++)
    for (int j = 0; j < dim; j++) x[r * dim + j] += 0.5f * (float)(r % 5) - 1.0f;
  float *y = malloc(sizeof *y * n), *mean = malloc(sizeof *mean * rows), *rstd = malloc(sizeof *rstd * rows);
  float *got = malloc(sizeof *got * n);
  float *dx_ = dcopy(x, n, mis), *dw_ = dcopy(w, dim, mis), *db_ = dcopy(b, dim, mis);
  float *dy_out = dcopy(x, n, mis), *dmean = dcopy(x, rows, 0), *drstd = dcopy(x, rows, 0);

  cpu_layernorm_forward(y, mean, rstd, x, w, b, rows, dim, 1e-5f);
  CHT_OK(ch_cuda_layernorm_forward(dy_out, dmean, drstd, dx_, dw_, db_, rows, dim, 1e-5f, S));
  check_dev("layernorm_forward y", cas, got, dy_out, y, n, TOL);
  check_dev("layernorm_forward mean", cas, got, dmean, mean, rows, TOL);
  check_dev("layernorm_forward rstd", cas, got, drstd, rstd, rows, TOL);

  /* backward accumulates into dx, dw, db: start all three from random values */
  float *dy = rnd(n, 6, 1.0f, 0.0f), *gx = rnd(n, 7, 1.0f, 0.0f), *gw = rnd(dim, 8, 1.0f, 0.0f);
  float *gb = rnd(dim, 9, 1.0f, 0.0f);
  float *ddy = dcopy(dy, n, mis), *dgx = dcopy(gx, n, mis), *dgw = dcopy(gw, dim, 0), *dgb = dcopy(gb, dim, 0);
  up(dmean, mean, sizeof *mean * rows), up(drstd, rstd, sizeof *rstd * rows); /* same saved stats */
  cpu_layernorm_backward(gx, gw, gb, dy, x, mean, rstd, w, rows, dim);
  CHT_OK(ch_cuda_layernorm_backward(dgx, dgw, dgb, ddy, dx_, dmean, drstd, dw_, rows, dim, S));
  check_dev("layernorm_backward dx", cas, got, dgx, gx, n, TOL);
  check_dev("layernorm_backward dw", cas, got, dgw, gw, dim, TOL);
  check_dev("layernorm_backward db", cas, got, dgb, gb, dim, TOL);

  ch_cuda_free(dx_ - mis), ch_cuda_free(dw_ - mis), ch_cuda_free(db_ - mis), ch_cuda_free(dy_out - mis);
  ch_cuda_free(dmean), ch_cuda_free(drstd), ch_cuda_free(ddy - mis), ch_cuda_free(dgx - mis);
  ch_cuda_free(dgw), ch_cuda_free(dgb);
  free(x), free(w), free(b), free(y), free(mean), free(rstd), free(got), free(dy), free(gx);
  free(gw), free(gb);
}

/* ---- fused softmax cross-entropy --------------------------------------------------------- */

static void test_xent(int batch, int classes, int alias) {
  char cas[64];
  snprintf(cas, sizeof cas, "batch=%d classes=%d%s", batch, classes, alias ? " in place" : "");
  size_t n = (size_t)batch * classes;
  float *z = rnd(n, 10, 3.0f, 0.0f), *ref = malloc(sizeof *ref * n), *got = malloc(sizeof *got * n);
  float *losses = malloc(sizeof *losses * batch);
  int32_t *labels = malloc(sizeof *labels * batch);
  for (int i = 0; i < batch; i++) labels[i] = (int32_t)ch_rng_below(11, 12, (uint64_t)i, (uint64_t)classes);
  float scale = 1.0f / (float)batch;
  double loss_ref = cpu_xent_fused(ref, z, labels, batch, classes, scale);

  float *dz = dcopy(z, n, 0), *dd = alias ? dz : dcopy(z, n, 0), *dl = dmalloc(sizeof *dl * batch);
  int32_t *dlab = dmalloc(sizeof *dlab * batch);
  up(dlab, labels, sizeof *labels * batch);
  CHT_OK(ch_cuda_xent_fused(dd, dl, dz, dlab, batch, classes, scale, S));
  down(got, dd, sizeof *got * n);
  down(losses, dl, sizeof *losses * batch);
  double loss = 0;
  for (int i = 0; i < batch; i++) loss += losses[i]; /* the caller's sum, in double */
  check("xent_fused loss (sum)", cas, fabs(loss - loss_ref) / fabs(loss_ref), TOL);
  check("xent_fused dlogits (elem)", cas, cht_max_rel_err(got, ref, n, 1e-30), TOL);

  ch_cuda_free(dz), ch_cuda_free(dl), ch_cuda_free(dlab);
  if (!alias) ch_cuda_free(dd);
  free(z), free(ref), free(got), free(losses), free(labels);
}

/* ---- embedding --------------------------------------------------------------------------- */

static void test_embedding(int V, int T, int C, int64_t n) {
  char cas[64];
  snprintf(cas, sizeof cas, "V=%d T=%d C=%d n=%lld", V, T, C, (long long)n);
  int32_t *tok = malloc(sizeof *tok * n); /* V << n: tokens repeat */
  for (int64_t i = 0; i < n; i++) tok[i] = (int32_t)ch_rng_below(11, 13, (uint64_t)i, (uint64_t)V);
  float *wte = rnd((size_t)V * C, 14, 1.0f, 0.0f), *wpe = rnd((size_t)T * C, 15, 1.0f, 0.0f);
  float *y = malloc(sizeof *y * n * C), *got = malloc(sizeof *got * n * C);
  float *dwte = dcopy(wte, (size_t)V * C, 0), *dwpe = dcopy(wpe, (size_t)T * C, 0);
  float *dy_ = dmalloc(sizeof *dy_ * n * C);
  int32_t *dtok = dmalloc(sizeof *dtok * n);
  up(dtok, tok, sizeof *tok * n);

  cpu_embedding_forward(y, tok, wte, wpe, n, T, C);
  CHT_OK(ch_cuda_embedding_forward(dy_, dtok, dwte, dwpe, n, T, C, S));
  down(got, dy_, sizeof *got * n * C);
  check("embedding_forward", cas, err(got, y, (size_t)n * C), 0.0);

  /* backward accumulates: the tables' current values are the starting gradients */
  float *g = rnd((size_t)n * C, 16, 1.0f, 0.0f);
  up(dy_, g, sizeof *g * n * C);
  cpu_embedding_backward(wte, wpe, g, tok, n, T, C);
  CHT_OK(ch_cuda_embedding_backward(dwte, dwpe, dy_, dtok, n, T, C, S));
  float *gt = malloc(sizeof *gt * (size_t)(V > T ? V : T) * C);
  down(gt, dwte, sizeof *gt * V * C);
  check("embedding_backward dwte", cas, err(gt, wte, (size_t)V * C), TOL);
  down(gt, dwpe, sizeof *gt * T * C);
  check("embedding_backward dwpe", cas, err(gt, wpe, (size_t)T * C), TOL);

  ch_cuda_free(dwte), ch_cuda_free(dwpe), ch_cuda_free(dy_), ch_cuda_free(dtok);
  free(tok), free(wte), free(wpe), free(y), free(got), free(g), free(gt);
}

/* ---- AdamW against ch_optim_step ---------------------------------------------------------- */

static void test_adamw(int mis) {
  /* Two parameters with decay, two without (biases, norms), as a model's spec table marks them. */
  ch_param_spec specs[4] = {
      {.name = "w1", .ndim = 2, .shape = {33, 17}, .dtype = CH_F32},
      {.name = "b1", .ndim = 1, .shape = {17}, .dtype = CH_F32, .no_decay = 1},
      {.name = "w2", .ndim = 2, .shape = {40, 9}, .dtype = CH_F32},
      {.name = "ln", .ndim = 1, .shape = {7}, .dtype = CH_F32, .no_decay = 1},
  };
  ch_layout l;
  CHT_OK(ch_layout_create(specs, 4, &l));
  size_t n = l.numel;
  ch_config cfg;
  ch_config_defaults(&cfg);
  cfg.optim.type = CH_OPTIM_ADAMW;
  cfg.optim.weight_decay = 0.1;
  cfg.optim.beta1 = 0.9, cfg.optim.beta2 = 0.95, cfg.optim.eps = 1e-8;
  ch_optim *o;
  ch_segment seg;
  ch_shard whole = ch_shard_range(&seg, 0, n);
  CHT_OK(ch_optim_create(ch_backend_cpu(), &cfg.optim, &l, &whole, &o));

  /* The CPU's spans: each parameter's slot, padding included, takes its decay setting. */
  uint8_t *mask = malloc(n);
  for (int i = 0; i < l.nparams; i++) {
    size_t hi = i + 1 < l.nparams ? l.offsets[i + 1] : l.numel;
    memset(mask + l.offsets[i], !l.params[i].no_decay, hi - l.offsets[i]);
  }
  float *p = rnd(n, 20, 1.0f, 0.0f), *zero = calloc(n, sizeof(float)), *got = malloc(sizeof *got * n);
  float *dp = dcopy(p, n, mis), *dg = dcopy(zero, n, mis), *dm = dcopy(zero, n, mis);
  float *dv = dcopy(zero, n, mis);
  uint8_t *dmask = dmalloc(n + 1);
  up(dmask + mis, mask, n);

  for (int step = 0; step < 3; step++) {
    float *g = rnd(n, 21 + step, 1.0f, 0.0f);
    double lr = 1e-2 * (step + 1) / 3.0; /* as a warmup schedule would */
    ch_optim_step(o, p, CH_ADDR_FLAT, g, CH_ADDR_FLAT, lr);
    up(dg, g, sizeof *g * n);
    ch_cuda_adamw_args a = {lr, cfg.optim.beta1, cfg.optim.beta2, cfg.optim.eps,
                            cfg.optim.weight_decay, step + 1};
    CHT_OK(ch_cuda_adamw(dp, dg, dm, dv, dmask + mis, (int64_t)n, &a, S));
    free(g);
  }
  const char *cas = mis ? "3 steps, unaligned" : "3 steps";
  const float *ref[3] = {p, ch_optim_state(o, 0), ch_optim_state(o, 1)};
  const float *dev[3] = {dp, dm, dv};
  const char *names[3] = {"adamw p", "adamw m", "adamw v"};
  size_t differ = 0;
  for (int k = 0; k < 3; k++) {
    check_dev(names[k], cas, got, dev[k], ref[k], n, TOL);
    differ += (size_t)(memcmp(got, ref[k], sizeof *got * n) != 0);
  }
  printf("  adamw (%s): %s bitwise\n", cas, differ ? "NOT" : "equal to the CPU optimizer");

  ch_cuda_free(dp - mis), ch_cuda_free(dg - mis), ch_cuda_free(dm - mis), ch_cuda_free(dv - mis);
  ch_cuda_free(dmask);
  ch_optim_destroy(o);
  ch_layout_destroy(&l);
  free(mask), free(p), free(zero), free(got);
}

/* ---- casts ------------------------------------------------------------------------------- */

static float f_of(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static uint32_t u_of(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

/* Round to nearest even on the bits: adding 0x7fff plus the lowest kept bit carries into the
 * kept half exactly when the dropped half exceeds a half, or equals it and the kept half is odd.
 * NaN is handled by the caller. */
static uint16_t ref_bf16(float f) {
  uint32_t u = u_of(f);
  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

static void test_casts(int64_t n, int mis) {
  char cas[64];
  snprintf(cas, sizeof cas, "n=%lld%s", (long long)n, mis ? " unaligned" : "");
  float *x = malloc(sizeof *x * n), *back = malloc(sizeof *back * n);
  uint16_t *h = malloc(sizeof *h * n);
  /* Edge cases first: signed zeros, infinities, NaN, the extremes, a subnormal, ties to even
   * (down to 0x3f80, up to 0x3f82), the largest finite float and a tie that rounds up to inf. */
  const uint32_t edge[] = {0x00000000u, 0x80000000u, 0x7f800000u, 0xff800000u, 0x7fc00000u,
                           0x7f7fffffu, 0x00800000u, 0x00000001u, 0x3f808000u, 0x3f818000u,
                           0x7f7f8000u, 0xbf808001u};
  int64_t ne = (int64_t)(sizeof edge / sizeof *edge);
  for (int64_t i = 0; i < n; i++) {
    if (i < ne) x[i] = f_of(edge[i]);
    else if (i % 2) x[i] = f_of((uint32_t)ch_rng_u64(11, 30, (uint64_t)i)); /* any bits, NaNs too */
    else x[i] = (2.0f * ch_rng_uniform(11, 31, (uint64_t)i) - 1.0f) * ldexpf(1.0f, (int)(i % 61) - 30);
  }
  float *dx = dcopy(x, n, mis);
  uint16_t *dh = (uint16_t *)dmalloc(sizeof *dh * (n + 1)) + mis;
  float *db = (float *)dmalloc(sizeof *db * (n + 1)) + mis;
  CHT_OK(ch_cuda_f32_to_bf16(dh, dx, n, S));
  CHT_OK(ch_cuda_bf16_to_f32(db, dh, n, S));
  down(h, dh, sizeof *h * n);
  down(back, db, sizeof *back * n);
  int64_t bad = 0, bad_back = 0;
  for (int64_t i = 0; i < n; i++) {
    int nan_in = isnan(x[i]), nan_out = (h[i] & 0x7f80u) == 0x7f80u && (h[i] & 0x7fu);
    if (nan_in ? !nan_out : h[i] != ref_bf16(x[i])) {
      if (bad++ < 5) fprintf(stderr, "  bf16(%08x) = %04x, expected %04x\n", u_of(x[i]), h[i], ref_bf16(x[i]));
    }
    bad_back += u_of(back[i]) != ((uint32_t)h[i] << 16);
  }
  check("f32_to_bf16 (mismatches)", cas, (double)bad, 0.0);
  check("bf16_to_f32 (mismatches)", cas, (double)bad_back, 0.0);
  ch_cuda_free(dx - mis), ch_cuda_free(dh - mis), ch_cuda_free(db - mis);
  free(x), free(back), free(h);
}

/* ---- GEMM -------------------------------------------------------------------------------- */

/* C = 0.7 op(A) op(B) + 0.3 C with padded row strides, all four transpose combinations.
 * fp32: TOL (fp32 dot products of k terms in two orders).
 * bf16 (inputs rounded by ch_cuda_f32_to_bf16, fp32 accumulation): two comparisons.
 * 1. Against ch_sgemm on the same rounded inputs, ACC_TOL = 1e-4: bf16 x bf16 products are
 *    exact in fp32, so only the accumulation differs, and that checks the operand mapping and
 *    data types. Not TOL: tensor cores align the terms of each small block of products to the
 *    largest and truncate rather than round (not IEEE fp32 addition), an error of up to 1 ulp
 *    of the partial sum per block, all of one sign. For k = 256 in blocks of 4 that is at most
 *    64 ulp(|partial| <= ~16) ~ 1.2e-4 absolute against a largest entry of ~13 (below): ~1e-5
 *    relative in the worst case, ~1e-6 typically. ACC_TOL covers the worst case with a margin;
 *    a wrong operand mapping gives O(1).
 * 2. Against ch_sgemm on the fp32 inputs, BF16_TOL = 1e-2: the cost of bf16 itself. Rounding
 *    a and b each to 8 significant bits (unit roundoff u = 2^-9 ~ 1.95e-3) perturbs each
 *    product by a relative error of standard deviation sqrt(2/3) u (two independent uniform
 *    roundings of u/sqrt(3) each). For U(-1,1) entries the products have rms 1/3 and random
 *    signs, so over k = 256 terms the error in an entry has sd sqrt(k) sqrt(2/3) u / 3
 *    ~ 8.5e-3 * 0.7 (alpha) while the entries have sd sqrt(k) / 3 * 0.7 ~ 3.7; over m n ~ 1e3
 *    entries the largest error is ~3.5 sd ~ 0.02 and the largest entry ~3.5 sd ~ 13, so the
 *    measure lands near 2e-3. 1e-2 keeps a 5x margin, and a transposed or mis-strided operand
 *    gives O(1). */
#define ACC_TOL 1e-4
#define BF16_TOL 1e-2

static void test_gemm(ch_cuda_blas *blas, int ta, int tb, int m, int n, int k) {
  char cas[64];
  snprintf(cas, sizeof cas, "%c%c m=%d n=%d k=%d", ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k);
  int ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
  int lda = ac + 3, ldb = bc + 5, ldc = n + 2;
  size_t na = (size_t)ar * lda, nb = (size_t)br * ldb, nc = (size_t)m * ldc;
  float *a = rnd(na, 40, 1.0f, 0.0f), *b = rnd(nb, 41, 1.0f, 0.0f), *c0 = rnd(nc, 42, 1.0f, 0.0f);
  float *ref = copy(c0, nc), *got = malloc(sizeof *got * nc);
  float *da = dcopy(a, na, 0), *db = dcopy(b, nb, 0), *dc = dcopy(c0, nc, 0);

  ch_sgemm(ta, tb, m, n, k, 0.7f, a, lda, b, ldb, 0.3f, ref, ldc);
  CHT_OK(ch_cuda_sgemm(blas, ta, tb, m, n, k, 0.7f, da, lda, db, ldb, 0.3f, dc, ldc, S));
  check_dev("sgemm", cas, got, dc, ref, nc, TOL);

  uint16_t *ha = dmalloc(sizeof *ha * na), *hb = dmalloc(sizeof *hb * nb);
  CHT_OK(ch_cuda_f32_to_bf16(ha, da, (int64_t)na, S));
  CHT_OK(ch_cuda_f32_to_bf16(hb, db, (int64_t)nb, S));
  float *ar16 = malloc(sizeof *ar16 * na), *br16 = malloc(sizeof *br16 * nb);
  CHT_OK(ch_cuda_bf16_to_f32(da, ha, (int64_t)na, S)); /* da, db now hold the rounded values */
  CHT_OK(ch_cuda_bf16_to_f32(db, hb, (int64_t)nb, S));
  down(ar16, da, sizeof *ar16 * na);
  down(br16, db, sizeof *br16 * nb);
  up(dc, c0, sizeof *c0 * nc);
  CHT_OK(ch_cuda_gemm_bf16(blas, ta, tb, m, n, k, 0.7f, ha, lda, hb, ldb, 0.3f, dc, ldc, S));
  down(got, dc, sizeof *got * nc);
  float *ref16 = copy(c0, nc);
  ch_sgemm(ta, tb, m, n, k, 0.7f, ar16, lda, br16, ldb, 0.3f, ref16, ldc);
  check("gemm_bf16 vs rounded in", cas, err(got, ref16, nc), ACC_TOL);
  check("gemm_bf16 vs fp32 in", cas, err(got, ref, nc), BF16_TOL);

  ch_cuda_free(da), ch_cuda_free(db), ch_cuda_free(dc), ch_cuda_free(ha), ch_cuda_free(hb);
  free(a), free(b), free(c0), free(ref), free(got), free(ar16), free(br16), free(ref16);
}

int main(void) {
  int ndev = ch_cuda_device_count();
  if (ndev == 0) {
    printf("no CUDA device: skipped\n");
    return 77;
  }
  printf("%d CUDA device(s)\n", ndev);
  CHT_OK(ch_blas_init(1));
  CHT_OK(ch_cuda_stream_create(&S));
  printf("| %-26s | %-30s | %9s | %7s |\n", "op", "case", "max err", "tol");

  test_elementwise(1, 0), test_elementwise(1000003, 0), test_elementwise(4099, 1);
  /* vec4 + shared partials, scalar (dim % 4), dim over the shared limit (global atomics, both
   * widths), and more rows than one grid pass covers (rows stride per warp). */
  test_layernorm(37, 768, 0), test_layernorm(5, 50, 0), test_layernorm(3, 5000, 0);
  test_layernorm(4, 4099, 0), test_layernorm(7, 64, 1), test_layernorm(3000, 64, 0);
  test_xent(13, 50257, 0), test_xent(7, 10, 0), test_xent(9, 1000, 1);
  test_embedding(7, 16, 48, 5 * 16 + 3), test_embedding(5, 8, 33, 3), test_embedding(50, 64, 768, 8 * 64);
  test_adamw(0), test_adamw(1);
  test_casts(100003, 0), test_casts(1001, 1);

  ch_cuda_blas *blas;
  CHT_OK(ch_cuda_blas_create(&blas));
  for (int t = 0; t < 4; t++) test_gemm(blas, t & 1, t >> 1, 37, 29, 256);
  test_gemm(blas, 0, 1, 512, 384, 256);
  ch_cuda_blas_destroy(blas);

  CHT_OK(ch_cuda_stream_sync(S));
  ch_cuda_stream_destroy(S);
  printf("cuda kernels: all %d checks passed\n", nchecks);
  return 0;
}
