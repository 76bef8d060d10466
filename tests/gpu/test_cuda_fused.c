/* The CUDA backend's fused passes (matmul_gelu_fwd, matmul_gelu_bwd, add_layernorm_fwd;
 * kernels/cuda/fused.cu) against the CPU backend, through the ch_op_* wrappers on both, on the
 * fp32 backend. Exits 77 without a CUDA device; under the emulation there always is one.
 *
 * Inputs U(-1,1) scaled (never zeros); odd shapes (rows, in, out not multiples of 32), with and
 * without bias, dx and db NULL, gradients that start non-zero (dW, db accumulate), res aliasing
 * a, mean/rstd NULL; device views 4 bytes past an aligned address. Error:
 * max_i |got_i - ref_i| / max_j |ref_j|, TOL = 1e-5 as for the unfused ops
 * (test_cuda_ops.c, test_cuda_gemm_ops.c, which derive it): fp32 GEMMs summing in another
 * order, expf against the CPU's polynomial exp, LayerNorm's fp32 lane sums against eight
 * double accumulators. The residual add is one IEEE addition on both: bit for bit. The
 * backward is fed the CPU's pre on both sides, so only its own arithmetic is compared. */
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
static void *dev_allocs[512];
static int ndev;

static void *dalloc(size_t bytes, size_t mis) {
  void *p = NULL;
  CHT_OK(ch_op_alloc(GPU, bytes + mis + 16, &p));
  CHT_OK(ch_op_memset(GPU, p, 0x5A, bytes + mis + 16)); /* 1.5e16: a missed write shows */
  CHT_ASSERT(ndev < 512, "too many device buffers");
  dev_allocs[ndev++] = p;
  return (char *)p + mis;
}

static float *dcopy(const float *x, size_t n, size_t mis) {
  float *d = dalloc(sizeof *x * n, mis);
  CHT_OK(ch_op_upload(GPU, d, x, sizeof *x * n));
  return d;
}

static float *rnd(size_t n, uint64_t stream, float scale, float offset) {
  float *x = malloc(sizeof *x * (n ? n : 1));
  CHT_ASSERT(x, "out of memory");
  cht_fill_uniform(x, n, 17, stream);
  for (size_t i = 0; i < n; i++) x[i] = scale * x[i] + offset;
  return x;
}

/* Downloads n floats of device d and compares them with host r (tol 0: bit for bit). */
static void check(const char *op, const char *cas, const float *d, const float *r, size_t n,
                  double tol) {
  float *g = malloc(sizeof *g * (n ? n : 1));
  CHT_ASSERT(g, "out of memory");
  CHT_OK(ch_op_download(GPU, g, d, sizeof *g * n));
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    double e = fabs((double)g[i] - (double)r[i]);
    if (!(e <= num)) num = e; /* NaN propagates */
    den = fmax(den, fabs((double)r[i]));
  }
  double e = tol == 0 ? (memcmp(g, r, sizeof *g * n) ? fmax(num / fmax(den, 1e-300), 1e-300) : 0)
                      : num / fmax(den, 1e-300);
  printf("| %-18s | %-44s | %9.2e | %7.0e |\n", op, cas, e, tol);
  fflush(stdout);
  nchecks++;
  CHT_ASSERT(e <= tol, "%s (%s): error %.3e above %.0e", op, cas, e, tol);
  free(g);
}

static void check_matmul_gelu(int64_t B, int in, int out, int bias, int mis) {
  char cas[96];
  snprintf(cas, sizeof cas, "B=%lld in=%d out=%d%s%s", (long long)B, in, out,
           bias ? "" : " no bias", mis ? " unaligned" : "");
  size_t nx = (size_t)B * in, ny = (size_t)B * out, nw = (size_t)in * out, o = mis ? 4 : 0;
  float *x = rnd(nx, 1, 1.0f, 0.1f), *w = rnd(nw, 2, 0.3f, 0.0f);
  float *b = bias ? rnd((size_t)out, 3, 0.5f, 0.0f) : NULL;
  float *pre = malloc(sizeof *pre * ny), *y = malloc(sizeof *y * ny);
  CHT_OK(ch_op_matmul_gelu_fwd(CPU, pre, y, x, w, b, B, in, out));
  float *dx_ = dcopy(x, nx, o), *dw_ = dcopy(w, nw, o), *db_ = b ? dcopy(b, (size_t)out, o) : NULL;
  float *dpre = dalloc(sizeof *pre * ny, o), *dy_ = dalloc(sizeof *y * ny, o);
  CHT_OK(ch_op_matmul_gelu_fwd(GPU, dpre, dy_, dx_, dw_, db_, B, in, out));
  check("matmul_gelu_fwd", cas, dpre, pre, ny, TOL);
  check("matmul_gelu_fwd", "  y", dy_, y, ny, TOL);
  for (int variant = 0; variant < 3; variant++) {
    int want_dx = variant != 1, want_db = variant != 2;
    float *g = rnd(ny, 4, 1.0f, 0.02f), *gx = rnd(nx, 5, 1, 0);
    float *gw = rnd(nw, 6, 0.1f, 0), *gb = rnd((size_t)out, 7, 0.1f, 0);
    float *dg = dcopy(g, ny, o), *dgx = dcopy(gx, nx, o), *dgw = dcopy(gw, nw, 0);
    float *dgb = dcopy(gb, (size_t)out, 0), *dp = dcopy(pre, ny, o);
    CHT_OK(ch_op_matmul_gelu_bwd(CPU, want_dx ? gx : NULL, gw, want_db ? gb : NULL, g, pre, x, w,
                                 B, in, out));
    CHT_OK(ch_op_matmul_gelu_bwd(GPU, want_dx ? dgx : NULL, dgw, want_db ? dgb : NULL, dg, dp,
                                 dx_, dw_, B, in, out));
    char c2[128];
    snprintf(c2, sizeof c2, "  %s%s", want_dx ? "" : "dx NULL ", want_db ? "" : "db NULL");
    check("matmul_gelu_bwd", c2, dg, g, ny, TOL);
    check("matmul_gelu_bwd", "  dx", dgx, gx, nx, TOL);
    check("matmul_gelu_bwd", "  dW (+=)", dgw, gw, nw, TOL);
    check("matmul_gelu_bwd", "  db (+=)", dgb, gb, (size_t)out, TOL);
    free(g), free(gx), free(gw), free(gb);
  }
  free(x), free(w), free(b), free(pre), free(y);
}

static void check_add_layernorm(int64_t rows, int dim, int mis) {
  char cas[96];
  snprintf(cas, sizeof cas, "rows=%lld dim=%d%s", (long long)rows, dim, mis ? " unaligned" : "");
  size_t n = (size_t)rows * dim, o = mis ? 4 : 0;
  const float eps = 1e-5f;
  float *a = rnd(n, 10, 2.0f, 0.3f), *b = rnd(n, 11, 1.0f, -0.1f);
  float *w = rnd((size_t)dim, 12, 0.5f, 1.0f), *bias = rnd((size_t)dim, 13, 0.2f, 0.0f);
  float *res = malloc(sizeof *res * n), *y = malloc(sizeof *y * n);
  float *mean = malloc(sizeof *mean * rows), *rstd = malloc(sizeof *rstd * rows);
  CHT_OK(ch_op_add_layernorm_fwd(CPU, res, y, mean, rstd, a, b, w, bias, rows, dim, eps));
  float *da = dcopy(a, n, o), *db = dcopy(b, n, 0), *dw = dcopy(w, (size_t)dim, o);
  float *dbias = dcopy(bias, (size_t)dim, 0), *dres = dalloc(sizeof *res * n, o);
  float *dy = dalloc(sizeof *y * n, o), *dmean = dalloc(sizeof *mean * rows, 0);
  float *drstd = dalloc(sizeof *rstd * rows, 0);
  CHT_OK(ch_op_add_layernorm_fwd(GPU, dres, dy, dmean, drstd, da, db, dw, dbias, rows, dim, eps));
  check("add_layernorm_fwd", cas, dres, res, n, 0);
  check("add_layernorm_fwd", "  y", dy, y, n, TOL);
  check("add_layernorm_fwd", "  mean", dmean, mean, (size_t)rows, TOL);
  check("add_layernorm_fwd", "  rstd", drstd, rstd, (size_t)rows, TOL);
  /* in place (res = a, as the GPT calls it), without the statistics */
  CHT_OK(ch_op_add_layernorm_fwd(GPU, da, dy, NULL, NULL, da, db, dw, dbias, rows, dim, eps));
  check("add_layernorm_fwd", "  res = a, mean/rstd NULL", da, res, n, 0);
  check("add_layernorm_fwd", "  y", dy, y, n, TOL);
  free(a), free(b), free(w), free(bias), free(res), free(y), free(mean), free(rstd);
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
  printf("%s backend: fused passes against the cpu backend\n", plugin->flavor);
  printf("| %-18s | %-44s | %9s | %7s |\n", "op", "case", "max err", "tol");
  check_matmul_gelu(1, 3, 5, 1, 0);
  check_matmul_gelu(37, 29, 67, 1, 1);
  check_matmul_gelu(37, 29, 67, 0, 0);
  check_matmul_gelu(70, 64, 131, 1, 0);
  check_add_layernorm(1, 7, 0);
  check_add_layernorm(37, 33, 1);
  check_add_layernorm(70, 768, 0);
  /* no rows (a rank with an empty micro-batch): nothing launched, nothing read */
  CHT_OK(ch_op_matmul_gelu_fwd(GPU, NULL, NULL, NULL, NULL, NULL, 0, 4, 4));
  CHT_OK(ch_op_matmul_gelu_bwd(GPU, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, 4, 4));
  CHT_OK(ch_op_add_layernorm_fwd(GPU, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, 4, 1e-5f));
  CHT_OK(ch_op_sync(GPU));
  for (int i = 0; i < ndev; i++) ch_op_free(GPU, dev_allocs[i]);
  plugin->backend_destroy(be);
  printf("cuda fused ops: all %d checks passed\n", nchecks);
  return 0;
}
