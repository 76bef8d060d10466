/* The CUDA backend's GEMM-shaped ops (linear, matmul = Conv1D, attention forward, backward and
 * KV-cache decode) against the CPU backend, through the ch_op_* wrappers on both, in both
 * precisions. Exits 77 (ctest: skipped) without a CUDA device; under the host emulation
 * (COHORT_CUDA_EMULATE builds) there always is one.
 *
 * Inputs are U(-1,1) (never zeros); shapes are odd on purpose: rows not a multiple of any block,
 * in/out/C not multiples of 32, T = 1 and 37, HS = 8 and 24, NH = 3, with and without bias, dx
 * NULL, and parameter gradients that start non-zero (they must accumulate). One line per check:
 * op, case, measured error, tolerance. The error is max_i |got_i - ref_i| / max_j |ref_j|.
 *
 * Tolerances:
 * - FP32_TOL = 1e-5, fp32 backend vs CPU: both are fp32 GEMMs (no TF32) that sum the same
 *   products in another order (blocked differently by cuBLAS and OpenBLAS), plus an fp32 softmax
 *   with expf against the CPU's polynomial exp (both within ~2 ulp). fp32 rounding in a sum of k
 *   terms is O(k ulp) of the largest partial sum in the worst case, O(sqrt(k) ulp) typically:
 *   for the k <= 300 here about 1e-6 of the largest entry. A wrong index, stride, mask, operand
 *   or transpose gives 1e-2 and more.
 * - bf16 backend (GEMM operands rounded to bf16, round to nearest even, unit roundoff
 *   u = 2^-8: 8 significant bits), two comparisons:
 *   1. against the CPU on the same bf16-rounded inputs, ACC_TOL = 1e-4: products of two bf16
 *      values are exact in fp32, so only the fp32 accumulation differs; on tensor cores that
 *      accumulation aligns each small block of products to its largest and truncates (up to
 *      ~1e-5 of the largest entry, tests/gpu/test_cuda_kernels.c derives it), hence 1e-4 and not
 *      FP32_TOL. Attention also rounds its internal GEMM operands (P, and dS in backward) that
 *      the CPU keeps in fp32; their effect is bounded from the data and added (att_bound).
 *   2. dense layers against the CPU on the fp32 inputs, BF16_TOL = 5u ~ 2e-2: the cost of bf16
 *      itself. Each product x w carries the two roundings, a relative error of sd about
 *      sqrt(2/3) u (each rounding ~u/sqrt(3)); over k products of random sign the error of an
 *      entry grows as sqrt(k), as do the entries themselves, so the error relative to the
 *      entries' scale stays ~sqrt(2/3) u ~ 3e-3 for any k, and the largest of ~1e3 such errors
 *      against the largest entry lands near 1u. A single product (k = 1) errs by at most 2u.
 *      5u keeps a margin over both; a mis-mapped operand gives O(1).
 *   Bias gradients are fp32 sums of fp32 dy in both modes: FP32_TOL against the fp32 CPU. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/backend.h"
#include "cohort/cuda.h"
#include "cohort/device.h"
#include "cohort/kernels.h"
#include "testlib.h"

#define FP32_TOL 1e-5
#define ACC_TOL 1e-4
#define BF16_U 0.00390625 /* 2^-8 */
#define BF16_TOL (5 * BF16_U)

static const ch_backend *CPU;

/* ---- host helpers ------------------------------------------------------------------------ */

static float *rnd(size_t n, uint64_t stream) {
  float *x = malloc(sizeof *x * (n ? n : 1));
  CHT_ASSERT(x, "out of memory");
  cht_fill_uniform(x, n, 13, stream);
  return x;
}

static float *dup(const float *x, size_t n) {
  float *y = malloc(sizeof *y * (n ? n : 1));
  CHT_ASSERT(y, "out of memory");
  memcpy(y, x, sizeof *y * n);
  return y;
}

/* x rounded to bf16 and back (round to nearest even on the bits; the inputs are finite). */
static float *bf16_round(const float *x, size_t n) {
  float *y = dup(x, n);
  for (size_t i = 0; i < n; i++) {
    uint32_t u;
    memcpy(&u, &y[i], 4);
    u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    memcpy(&y[i], &u, 4);
  }
  return y;
}

static double maxabs(const float *x, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)x[i]));
  return m;
}

/* a / b, 0 when both are 0 (a bound relative to an all-zero reference, T = 1's dq). */
static double ratio(double a, double b) { return a == 0 ? 0 : a / b; }

/* max_i |a_i - r_i| / max_j |r_j| (NaN fails). */
static double err(const float *a, const float *r, size_t n) {
  double num = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)a[i] - (double)r[i]);
    if (!(d <= num)) num = d;
  }
  return num / fmax(maxabs(r, n), 1e-300);
}

static int nchecks;
/* One row of the results table; fails the test when e > tol (or is NaN). */
static void check(const char *op, const char *cas, const float *got, const float *ref, size_t n,
                  double tol) {
  double e = err(got, ref, n);
  nchecks++;
  printf("| %-24s | %-40s | %9.2e | %8.2e |\n", op, cas, e, tol);
  fflush(stdout);
  CHT_ASSERT(e <= tol, "%s (%s): error %.3g over tolerance %.3g", op, cas, e, tol);
}

/* ---- backend buffers --------------------------------------------------------------------- */

/* Element offset of every buffer below in its allocation: 1 makes them not 16-byte aligned,
 * which sends the dense layers down their cuBLAS path instead of cuBLASLt's. */
static int MIS;

/* Backend space for n floats at offset MIS of its allocation; free with drop. */
static float *space(const ch_backend *be, size_t n) {
  void *p;
  CHT_OK(ch_op_alloc(be, sizeof(float) * (n + MIS + 1), &p));
  return (float *)p + MIS;
}
static void drop(const ch_backend *be, float *p) {
  if (p) ch_op_free(be, p - MIS);
}

/* A backend copy of host x [n] (NULL stays NULL). */
static float *put(const ch_backend *be, const float *x, size_t n) {
  if (!x) return NULL;
  float *p = space(be, n);
  CHT_OK(ch_op_upload(be, p, x, sizeof(float) * n));
  return p;
}

/* A host copy of backend p [n], then p dropped (NULL stays NULL). */
static float *take(const ch_backend *be, float *p, size_t n) {
  if (!p) return NULL;
  float *h = malloc(sizeof *h * (n ? n : 1));
  CHT_ASSERT(h, "out of memory");
  CHT_OK(ch_op_download(be, h, p, sizeof(float) * n));
  drop(be, p);
  return h;
}

/* ---- dense layers ------------------------------------------------------------------------ */

typedef struct dense_in {
  int64_t batch;
  int in, out, conv1d, has_b, has_dx;
  float *x, *w, *b, *dy, *dw0, *db0; /* b NULL when !has_b */
} dense_in;
typedef struct dense_out {
  float *y, *dx, *dw, *db;
} dense_out;

/* Forward and backward of one dense layer on `be`, from host inputs to host results. */
static dense_out run_dense(const ch_backend *be, const dense_in *d, const float *x,
                           const float *w, const float *dy) {
  size_t nx = (size_t)d->batch * d->in, nw = (size_t)d->in * d->out, ny = (size_t)d->batch * d->out;
  float *dxx = put(be, x, nx), *dww = put(be, w, nw), *db = put(be, d->b, d->out);
  float *ddy = put(be, dy, ny), *y = put(be, d->dy, ny); /* y: overwritten */
  float *gx = d->has_dx ? put(be, d->x, nx) : NULL, *gw = put(be, d->dw0, nw);
  float *gb = d->has_b ? put(be, d->db0, d->out) : NULL;
  if (d->conv1d) {
    CHT_OK(ch_op_matmul_fwd(be, y, dxx, dww, db, d->batch, d->in, d->out));
    CHT_OK(ch_op_matmul_bwd(be, gx, gw, gb, ddy, dxx, dww, d->batch, d->in, d->out));
  } else {
    CHT_OK(ch_op_linear_fwd(be, y, dxx, dww, db, d->batch, d->in, d->out));
    CHT_OK(ch_op_linear_bwd(be, gx, gw, gb, ddy, dxx, dww, d->batch, d->in, d->out));
  }
  CHT_OK(ch_op_sync(be));
  dense_out o = {take(be, y, ny), take(be, gx, nx), take(be, gw, nw), take(be, gb, d->out)};
  drop(be, dxx), drop(be, dww), drop(be, db), drop(be, ddy);
  return o;
}

static void free_dense(dense_out *o) { free(o->y), free(o->dx), free(o->dw), free(o->db); }

/* Compares every output of `got` with `ref` at tolerance tol (db: FP32_TOL vs ref32). */
static void check_dense(const char *op, const char *cas, const dense_in *d, const dense_out *got,
                        const dense_out *ref, const dense_out *ref32, double tol) {
  char name[64];
  size_t nx = (size_t)d->batch * d->in, nw = (size_t)d->in * d->out, ny = (size_t)d->batch * d->out;
  snprintf(name, sizeof name, "%s y", op), check(name, cas, got->y, ref->y, ny, tol);
  if (d->has_dx)
    snprintf(name, sizeof name, "%s dx", op), check(name, cas, got->dx, ref->dx, nx, tol);
  snprintf(name, sizeof name, "%s dW (+=)", op), check(name, cas, got->dw, ref->dw, nw, tol);
  if (d->has_b)
    snprintf(name, sizeof name, "%s db (+=)", op),
        check(name, cas, got->db, ref32->db, (size_t)d->out, FP32_TOL);
}

static void test_dense(const ch_backend *gpu, int bf16, int conv1d, int64_t batch, int in,
                       int out, int has_b, int has_dx, int mis) {
  char cas[96];
  const char *op = conv1d ? "matmul" : "linear";
  snprintf(cas, sizeof cas, "%s B=%lld in=%d out=%d%s%s%s", bf16 ? "bf16" : "fp32",
           (long long)batch, in, out, has_b ? "" : " b=NULL", has_dx ? "" : " dx=NULL",
           mis ? " unaligned" : "");
  MIS = mis;
  size_t nx = (size_t)batch * in, nw = (size_t)in * out, ny = (size_t)batch * out;
  dense_in d = {batch, in, out, conv1d, has_b, has_dx, rnd(nx, 1), rnd(nw, 2),
                has_b ? rnd(out, 3) : NULL, rnd(ny, 4), rnd(nw, 5), rnd(out, 6)};
  dense_out got = run_dense(gpu, &d, d.x, d.w, d.dy), ref32 = run_dense(CPU, &d, d.x, d.w, d.dy);
  if (!bf16) {
    check_dense(op, cas, &d, &got, &ref32, &ref32, FP32_TOL);
  } else {
    float *x16 = bf16_round(d.x, nx), *w16 = bf16_round(d.w, nw), *dy16 = bf16_round(d.dy, ny);
    dense_out ref16 = run_dense(CPU, &d, x16, w16, dy16);
    char cas16[128];
    snprintf(cas16, sizeof cas16, "%s vs rounded", cas);
    check_dense(op, cas16, &d, &got, &ref16, &ref32, ACC_TOL);
    snprintf(cas16, sizeof cas16, "%s vs fp32", cas);
    check_dense(op, cas16, &d, &got, &ref32, &ref32, BF16_TOL);
    free_dense(&ref16), free(x16), free(w16), free(dy16);
  }
  free_dense(&got), free_dense(&ref32);
  free(d.x), free(d.w), free(d.b), free(d.dy), free(d.dw0), free(d.db0);
  MIS = 0;
}

/* ---- attention --------------------------------------------------------------------------- */

/* Columns c0..c0+n-1 of rows x [rows, ld] as a packed [rows, n] copy. */
static float *cols(const float *x, size_t rows, int ld, int c0, int n) {
  size_t m = rows * (size_t)n;
  float *y = malloc(sizeof *y * (m ? m : 1));
  CHT_ASSERT(y, "out of memory");
  for (size_t r = 0; r < rows; r++) memcpy(y + r * n, x + r * ld + c0, sizeof *y * n);
  return y;
}

/* Bounds of the bf16 backward's roundings of its internal GEMM operands (the CPU keeps them
 * fp32): dv = P^T dout with each P_ij off by <= u P_ij gives |d dv_j| <= u colsum_j(P) max|dout|;
 * dq = dS k and dk = dS^T q with each dS_ij off by <= u |dS_ij| give u rowsum_i|dS| max|k| and
 * u colsum_j|dS| max|q|. dS = P (dP - rowsum(dP P)) scale, dP = dout v^T, from the (rounded)
 * inputs, in double. Out: the largest P column sum, |dS| row sum and |dS| column sum. */
static void bwd_sums(const float *qkv, const float *dout, const float *probs, int B, int T,
                     int NH, int HS, double *p_col, double *ds_row, double *ds_col) {
  int C = NH * HS;
  double scale = 1.0 / sqrt((double)HS);
  double *ds = malloc(sizeof *ds * T * T), *dot = malloc(sizeof *dot * T);
  *p_col = *ds_row = *ds_col = 0;
  for (int b = 0; b < B; b++)
    for (int h = 0; h < NH; h++) {
      const float *p = probs + ((size_t)b * NH + h) * T * T;
      for (int i = 0; i < T; i++) {
        dot[i] = 0;
        for (int j = 0; j <= i; j++) {
          double dp = 0;
          for (int c = 0; c < HS; c++)
            dp += (double)dout[((size_t)b * T + i) * C + h * HS + c] *
                  qkv[((size_t)b * T + j) * 3 * C + 2 * C + h * HS + c];
          ds[i * T + j] = dp;
          dot[i] += dp * p[i * T + j];
        }
      }
      for (int j = 0; j < T; j++) {
        double pc = 0, dc = 0;
        for (int i = j; i < T; i++) {
          pc += p[i * T + j];
          dc += fabs(p[i * T + j] * (ds[i * T + j] - dot[i]) * scale);
        }
        *p_col = fmax(*p_col, pc), *ds_col = fmax(*ds_col, dc);
      }
      for (int i = 0; i < T; i++) {
        double dr = 0;
        for (int j = 0; j <= i; j++) dr += fabs(p[i * T + j] * (ds[i * T + j] - dot[i]) * scale);
        *ds_row = fmax(*ds_row, dr);
      }
    }
  free(ds), free(dot);
}

/* Forward then backward of attention on `be` from host qkv and dout: out, its `saved` (P for
 * the short T here, on both backends: checked by the caller), fed to its backward, and dqkv. */
static void run_attention(const ch_backend *be, const float *qkv, const float *dout, int B, int T,
                          int NH, int HS, float **out, float **probs, size_t *np, float **dqkv) {
  size_t C = (size_t)NH * HS, nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C;
  CHT_OK(ch_op_attention_saved(be, B, T, NH, HS, np));
  /* out and dqkv start as garbage (copies of the inputs): both must be overwritten */
  float *x = put(be, qkv, nq), *dy = put(be, dout, no), *o = put(be, dout, no);
  float *g = put(be, qkv, nq), *p = space(be, *np);
  CHT_OK(ch_op_attention_fwd(be, o, p, x, B, T, NH, HS));
  CHT_OK(ch_op_attention_bwd(be, g, dy, x, o, p, B, T, NH, HS));
  CHT_OK(ch_op_sync(be));
  *out = take(be, o, no), *probs = take(be, p, *np), *dqkv = take(be, g, nq);
  drop(be, x), drop(be, dy);
}

static void test_attention(const ch_backend *gpu, int bf16, int B, int T, int NH, int HS) {
  char cas[96];
  snprintf(cas, sizeof cas, "%s B=%d T=%d NH=%d HS=%d%s", bf16 ? "bf16" : "fp32", B, T, NH, HS,
           bf16 ? " vs rounded" : "");
  int C = NH * HS;
  size_t rows = (size_t)B * T, nq = rows * 3 * C, no = rows * C, np = (size_t)B * NH * T * T;
  float *qkv = rnd(nq, 10), *dout = rnd(no, 11);
  /* the CPU's inputs: what the GPU's GEMMs read */
  float *qr = bf16 ? bf16_round(qkv, nq) : dup(qkv, nq);
  float *dr = bf16 ? bf16_round(dout, no) : dup(dout, no);
  float *out, *probs, *dqkv, *rout, *rprobs, *rdqkv;
  size_t gnp, rnp;
  run_attention(gpu, qkv, dout, B, T, NH, HS, &out, &probs, &gnp, &dqkv);
  run_attention(CPU, qr, dr, B, T, NH, HS, &rout, &rprobs, &rnp, &rdqkv);
  CHT_ASSERT(gnp == np && rnp == np, "%s: saved %zu (GPU) and %zu (CPU) floats, not P's %zu", cas,
             gnp, rnp, np);
  double tol = bf16 ? ACC_TOL : FP32_TOL, tq = tol, tk = tol, tv = tol, to = tol;
  float *g[3], *r[3];
  for (int t = 0; t < 3; t++) /* dq, dk, dv */
    g[t] = cols(dqkv, rows, 3 * C, t * C, C), r[t] = cols(rdqkv, rows, 3 * C, t * C, C);
  if (bf16) { /* + the bounds of the internal roundings, relative to the largest entry */
    float *v = cols(qr, rows, 3 * C, 2 * C, C);
    double mqk = 0, p_col, ds_row, ds_col; /* max |q|, |k|: the first 2C columns of each row */
    for (size_t i = 0; i < rows; i++) mqk = fmax(mqk, maxabs(qr + i * 3 * C, 2 * (size_t)C));
    bwd_sums(qr, dr, rprobs, B, T, NH, HS, &p_col, &ds_row, &ds_col);
    to += ratio(BF16_U * maxabs(v, no), maxabs(rout, no));
    tq += ratio(BF16_U * ds_row * mqk, maxabs(r[0], no));
    tk += ratio(BF16_U * ds_col * mqk, maxabs(r[1], no));
    tv += ratio(BF16_U * p_col * maxabs(dr, no), maxabs(r[2], no));
    free(v);
  }
  check("attention_fwd out", cas, out, rout, no, to);
  check("attention_fwd probs", cas, probs, rprobs, np, tol);
  check("attention_bwd dq", cas, g[0], r[0], no, tq);
  check("attention_bwd dk", cas, g[1], r[1], no, tk);
  check("attention_bwd dv", cas, g[2], r[2], no, tv);
  for (int t = 0; t < 3; t++) free(g[t]), free(r[t]);
  free(qkv), free(dout), free(qr), free(dr);
  free(out), free(probs), free(dqkv), free(rout), free(rprobs), free(rdqkv);
}

/* One decode step on `be` from host caches (cap rows) and qkv [n, 3C]: out and both caches. */
static void run_decode(const ch_backend *be, const float *qkv, const float *kc0, const float *vc0,
                       int cap, int past, int n, int NH, int HS, float **out, float **kc,
                       float **vc) {
  size_t C = (size_t)NH * HS;
  float *x = put(be, qkv, n * 3 * C), *k = put(be, kc0, cap * C), *v = put(be, vc0, cap * C);
  float *o = put(be, qkv, n * C), *scratch = space(be, (size_t)n * (past + n));
  CHT_OK(ch_op_attention_decode(be, o, scratch, x, k, v, past, n, NH, HS));
  CHT_OK(ch_op_sync(be));
  *out = take(be, o, n * C), *kc = take(be, k, cap * C), *vc = take(be, v, cap * C);
  drop(be, x), drop(be, scratch);
}

static void test_decode(const ch_backend *gpu, int bf16, int past, int n, int NH, int HS) {
  char cas[96];
  snprintf(cas, sizeof cas, "%s past=%d n=%d NH=%d HS=%d", bf16 ? "bf16" : "fp32", past, n, NH, HS);
  int C = NH * HS, cap = past + n + 2;
  size_t nc = (size_t)cap * C, no = (size_t)n * C;
  float *qkv = rnd(no * 3, 20), *kc0 = rnd(nc, 21), *vc0 = rnd(nc, 22);
  float *out, *kc, *vc, *rout, *rkc, *rvc;
  run_decode(gpu, qkv, kc0, vc0, cap, past, n, NH, HS, &out, &kc, &vc);
  run_decode(CPU, qkv, kc0, vc0, cap, past, n, NH, HS, &rout, &rkc, &rvc);
  check("attention_decode kcache", cas, kc, rkc, nc, 0.0); /* a copy: exact */
  check("attention_decode vcache", cas, vc, rvc, nc, 0.0);
  if (!bf16) {
    check("attention_decode out", cas, out, rout, no, FP32_TOL);
  } else { /* against the CPU on rounded inputs, + the P rounding's bound (test_attention) */
    float *q16 = bf16_round(qkv, no * 3), *k16 = bf16_round(kc0, nc), *v16 = bf16_round(vc0, nc);
    float *out16, *k2, *v2;
    run_decode(CPU, q16, k16, v16, cap, past, n, NH, HS, &out16, &k2, &v2);
    double tol = ACC_TOL + ratio(BF16_U * maxabs(v2, (size_t)(past + n) * C), maxabs(out16, no));
    char cas16[128];
    snprintf(cas16, sizeof cas16, "%s vs rounded", cas);
    check("attention_decode out", cas16, out, out16, no, tol);
    free(q16), free(k16), free(v16), free(out16), free(k2), free(v2);
  }
  free(qkv), free(kc0), free(vc0), free(out), free(kc), free(vc), free(rout), free(rkc), free(rvc);
}

int main(void) {
  const ch_cuda_plugin *plugin = cohort_cuda_plugin();
  if (plugin->device_count() == 0) {
    printf("no CUDA device: skipped\n");
    return 77;
  }
  CHT_OK(ch_blas_init(1));
  CPU = ch_backend_cpu();
  printf("| %-24s | %-40s | %9s | %8s |\n", "op", "case", "max err", "tol");
  for (int bf16 = 0; bf16 < 2; bf16++) {
    ch_backend *gpu;
    CHT_OK(plugin->backend_create(0, bf16 ? CH_PRECISION_BF16 : CH_PRECISION_FP32, &gpu));
    for (int conv1d = 0; conv1d < 2; conv1d++) {
      test_dense(gpu, bf16, conv1d, 37, 29, 45, 1, 1, 0);
      test_dense(gpu, bf16, conv1d, 37, 29, 45, 1, 1, 1);
      test_dense(gpu, bf16, conv1d, 1, 8, 3, 0, 1, 0);
      test_dense(gpu, bf16, conv1d, 300, 67, 130, 1, 0, 0);
      test_dense(gpu, bf16, conv1d, 64, 96, 33, 0, 0, 1);
    }
    test_attention(gpu, bf16, 2, 37, 3, 8);
    test_attention(gpu, bf16, 3, 1, 3, 24);
    test_attention(gpu, bf16, 1, 37, 3, 24);
    test_decode(gpu, bf16, 0, 5, 3, 8);
    test_decode(gpu, bf16, 10, 1, 3, 24);
    test_decode(gpu, bf16, 30, 7, 3, 8);
    plugin->backend_destroy(gpu);
  }
  printf("cuda gemm ops: all %d checks passed\n", nchecks);
  return 0;
}
