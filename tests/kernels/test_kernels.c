/* CPU kernels against naive double-precision loops on random inputs.
 * Tolerances: inputs are U(-1,1), so a K-term fp32 dot product (K <= 300) has partial sums of
 * size ~sqrt(K)/3 and an absolute rounding error of a few 1e-6 at K = 300, whatever its final
 * value. So errors are relative to max(|reference|, 1): 2e-5 leaves a margin of several times
 * over rounding and still catches any wrong index, transpose or dropped term (O(1) errors). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/cpu_kernels.h"
#include "testlib.h"

#define TOL 2e-5

static float *rnd(size_t n, uint64_t stream) {
  float *x = malloc(sizeof *x * (n ? n : 1));
  cht_fill_uniform(x, n, 42, stream);
  return x;
}

static void test_sgemm(int ta, int tb, int m, int n, int k) {
  float *a = rnd((size_t)m * k, 1), *b = rnd((size_t)k * n, 2), *c = rnd((size_t)m * n, 3);
  float *ref = malloc(sizeof *ref * (size_t)m * n);
  int lda = ta ? m : k, ldb = tb ? k : n;
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++) {
      double s = 0;
      for (int p = 0; p < k; p++) {
        double av = ta ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p];
        double bv = tb ? b[(size_t)j * ldb + p] : b[(size_t)p * ldb + j];
        s += av * bv;
      }
      ref[(size_t)i * n + j] = (float)(0.5 * s + 0.25 * c[(size_t)i * n + j]);
    }
  ch_sgemm(ta, tb, m, n, k, 0.5f, a, lda, b, ldb, 0.25f, c, n);
  double err = cht_max_rel_err(c, ref, (size_t)m * n, 1.0);
  CHT_ASSERT(err < TOL, "sgemm ta=%d tb=%d %dx%dx%d: rel err %g", ta, tb, m, n, k, err);
  free(a), free(b), free(c), free(ref);
}

static void test_linear(int batch, int in, int out) {
  float *x = rnd((size_t)batch * in, 10), *w = rnd((size_t)out * in, 11), *b = rnd((size_t)out, 12);
  float *dy = rnd((size_t)batch * out, 13);
  float *y = malloc(sizeof *y * (size_t)batch * out), *yref = malloc(sizeof *y * (size_t)batch * out);
  float *dx = malloc(sizeof *dx * (size_t)batch * in), *dxref = malloc(sizeof *dx * (size_t)batch * in);
  float *dw = rnd((size_t)out * in, 14), *dwref = malloc(sizeof *dw * (size_t)out * in);
  float *db = rnd((size_t)out, 15), *dbref = malloc(sizeof *db * (size_t)out);
  /* y = x W^T + b */
  for (int i = 0; i < batch; i++)
    for (int o = 0; o < out; o++) {
      double s = b[o];
      for (int p = 0; p < in; p++) s += (double)x[(size_t)i * in + p] * w[(size_t)o * in + p];
      yref[(size_t)i * out + o] = (float)s;
    }
  /* dx = dy W ; dW += dy^T x ; db += colsum(dy)   (dw/db start from random: accumulation) */
  for (int i = 0; i < batch; i++)
    for (int p = 0; p < in; p++) {
      double s = 0;
      for (int o = 0; o < out; o++) s += (double)dy[(size_t)i * out + o] * w[(size_t)o * in + p];
      dxref[(size_t)i * in + p] = (float)s;
    }
  for (int o = 0; o < out; o++) {
    for (int p = 0; p < in; p++) {
      double s = dw[(size_t)o * in + p];
      for (int i = 0; i < batch; i++) s += (double)dy[(size_t)i * out + o] * x[(size_t)i * in + p];
      dwref[(size_t)o * in + p] = (float)s;
    }
    double s = db[o];
    for (int i = 0; i < batch; i++) s += dy[(size_t)i * out + o];
    dbref[o] = (float)s;
  }
  cpu_linear_forward(0, y, x, w, b, batch, in, out);
  cpu_linear_backward(0, dx, dw, db, dy, x, w, batch, in, out);
  double e1 = cht_max_rel_err(y, yref, (size_t)batch * out, 1.0);
  double e2 = cht_max_rel_err(dx, dxref, (size_t)batch * in, 1.0);
  double e3 = cht_max_rel_err(dw, dwref, (size_t)out * in, 1.0);
  double e4 = cht_max_rel_err(db, dbref, (size_t)out, 1.0);
  CHT_ASSERT(e1 < TOL && e2 < TOL && e3 < TOL && e4 < TOL,
             "linear %dx%d->%d: y %g dx %g dW %g db %g", batch, in, out, e1, e2, e3, e4);
  free(x), free(w), free(b), free(dy), free(y), free(yref), free(dx), free(dxref);
  free(dw), free(dwref), free(db), free(dbref);
}

static double gelu_ref(double v) {
  return 0.5 * v * (1.0 + tanh(sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));
}

static void test_activations(void) {
  enum { N = 1001 };
  float *x = rnd(N, 20), *dy = rnd(N, 21), y[N], dx[N], yref[N], dxref[N];
  for (int i = 0; i < N; i++) x[i] *= 4.0f; /* cover the tails of gelu */
  cpu_relu_forward(y, x, N);
  cpu_relu_backward(dx, dy, x, N);
  for (int i = 0; i < N; i++) {
    yref[i] = x[i] > 0 ? x[i] : 0;
    dxref[i] = x[i] > 0 ? dy[i] : 0;
  }
  CHT_ASSERT(cht_max_rel_err(y, yref, N, 1e-6) == 0 && cht_max_rel_err(dx, dxref, N, 1e-6) == 0,
             "relu mismatch");
  cpu_gelu_forward(y, x, N);
  cpu_gelu_backward(dx, dy, x, N);
  for (int i = 0; i < N; i++) {
    yref[i] = (float)gelu_ref(x[i]);
    /* derivative by central difference in double precision (truncation error ~h^2 = 1e-12) */
    double h = 1e-6;
    dxref[i] = (float)(dy[i] * (gelu_ref(x[i] + h) - gelu_ref(x[i] - h)) / (2 * h));
  }
  /* For x << 0, 1 + tanh(u) cancels in fp32 (as in PyTorch's identical formula): absolute
   * errors stay ~1e-7, so values below 1e-2 are judged on absolute error. */
  double e1 = cht_max_rel_err(y, yref, N, 1e-2), e2 = cht_max_rel_err(dx, dxref, N, 1e-2);
  CHT_ASSERT(e1 < 1e-5 && e2 < 1e-4, "gelu: forward %g backward %g", e1, e2);
  free(x), free(dy);
}

static void test_xent(int batch, int classes) {
  float *z = rnd((size_t)batch * classes, 30);
  for (size_t i = 0; i < (size_t)batch * classes; i++) z[i] *= 8.0f; /* peaked softmax */
  int32_t *lab = malloc(sizeof *lab * (size_t)batch);
  for (int i = 0; i < batch; i++) lab[i] = (int32_t)((i * 7 + 3) % classes);
  float *dz = malloc(sizeof *dz * (size_t)batch * classes), *dzref = malloc(sizeof *dz * (size_t)batch * classes);
  double ref = 0;
  int64_t ref_correct = 0;
  float scale = 1.0f / (float)batch;
  for (int i = 0; i < batch; i++) {
    const float *r = z + (size_t)i * classes;
    double s = 0;
    int arg = 0;
    for (int j = 0; j < classes; j++) {
      s += exp((double)r[j]);
      if (r[j] > r[arg]) arg = j;
    }
    ref += log(s) - r[lab[i]];
    ref_correct += arg == lab[i];
    for (int j = 0; j < classes; j++)
      dzref[(size_t)i * classes + j] = (float)(scale * (exp((double)r[j]) / s - (j == lab[i])));
  }
  int64_t correct = 0;
  double loss = cpu_xent_forward(z, lab, batch, classes, &correct);
  cpu_xent_backward(dz, z, lab, batch, classes, scale);
  CHT_ASSERT(fabs(loss - ref) / fabs(ref) < 1e-9, "xent loss %g vs %g", loss, ref);
  CHT_ASSERT(correct == ref_correct, "xent correct %lld vs %lld", (long long)correct, (long long)ref_correct);
  double e = cht_max_rel_err(dz, dzref, (size_t)batch * classes, 1e-6);
  CHT_ASSERT(e < 1e-5, "xent backward rel err %g", e);
  /* The fused pass, in place as the GPT runs it: its exp is fp32 (2e-7 relative), so the loss
   * is held to 1e-6 relative; the gradient to the same 1e-5 as the reference kernel. */
  memcpy(dz, z, sizeof *dz * (size_t)batch * classes);
  double fused = cpu_xent_fused(dz, dz, lab, batch, classes, scale);
  double ef = cht_max_rel_err(dz, dzref, (size_t)batch * classes, 1e-6);
  CHT_ASSERT(fabs(fused - ref) / fabs(ref) < 1e-6 && ef < 1e-5, "fused xent: loss %g vs %g, grad %g",
             fused, ref, ef);
  free(z), free(lab), free(dz), free(dzref);
}

int main(void) {
  CHT_OK(ch_blas_init(1));
  printf("OpenBLAS kernels: %s\n", ch_blas_corename());
  int shapes[][3] = {{1, 1, 1}, {7, 13, 5}, {64, 10, 64}, {33, 65, 129}, {128, 96, 300}};
  for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
    for (int ta = 0; ta < 2; ta++)
      for (int tb = 0; tb < 2; tb++) test_sgemm(ta, tb, shapes[i][0], shapes[i][1], shapes[i][2]);
  /* Two BLAS threads: GEMMs of up to 2^22 multiply-adds run on one (a decoding step's, e.g.
   * 32 x 512 x 128), larger ones on both again; the results are right either way. */
  CHT_OK(ch_blas_init(2));
  int both = cpu_blas_threads_in_use(); /* 2, unless this OpenBLAS was built for fewer */
  int threaded[][4] = {{32, 512, 128, 1}, {160, 160, 200, 2}, {1, 384, 128, 1}, {33, 65, 129, 1},
                       {300, 128, 300, 2}};
  for (size_t i = 0; i < sizeof threaded / sizeof *threaded; i++) {
    test_sgemm(0, 0, threaded[i][0], threaded[i][1], threaded[i][2]);
    int want = threaded[i][3] == 1 ? 1 : both;
    CHT_ASSERT(cpu_blas_threads_in_use() == want, "%dx%dx%d ran on %d thread(s), not %d",
               threaded[i][0], threaded[i][1], threaded[i][2], cpu_blas_threads_in_use(), want);
  }
  CHT_OK(ch_blas_init(1));
  test_linear(1, 1, 1);
  test_linear(17, 64, 10);
  test_linear(64, 129, 33);
  test_activations();
  test_xent(1, 2);
  test_xent(37, 10);
  test_xent(5, 1000);
  test_xent(3, 50257); /* GPT-2's vocabulary: not a multiple of the 8 lanes */
  printf("kernels: all checks passed\n");
  return 0;
}
