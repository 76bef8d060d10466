/* LayerNorm over the last dimension, forward and backward (GPT-2 pre-norm blocks).
 *
 * Forward, per row x of length D:
 *   mean = sum_j x_j / D,  var = sum_j (x_j - mean)^2 / D  (biased, as torch),
 *   rstd = 1 / sqrt(var + eps),  xhat_j = (x_j - mean) rstd,  y_j = xhat_j w_j + b_j.
 * Backward, with g_j = dy_j w_j (the gradient with respect to xhat):
 *   dx_j = rstd (g_j - mean_k(g_k) - xhat_j mean_k(g_k xhat_k)),
 *   dw_j = sum_rows dy_j xhat_j,  db_j = sum_rows dy_j.
 * Row sums use eight double accumulators, as cpu_sumsq does: a fixed summation order, so the
 * AVX-512, AVX2 and baseline clones give the same bits, and still vectorised. */
#include <math.h>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/simd.h"

/* The two-pass mean/variance keeps var >= 0 and exact for constant rows (no E[x^2]-E[x]^2
 * cancellation). */
CH_VECTORIZE void cpu_layernorm_forward(float *y, float *mean, float *rstd, const float *x,
                                        const float *w, const float *b, int64_t rows, int dim,
                                        float eps) {
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * dim;
    float *yr = y + r * dim;
    double acc[8] = {0};
    int j = 0;
    for (; j + 8 <= dim; j += 8)
      for (int l = 0; l < 8; l++) acc[l] += (double)xr[j + l];
    for (; j < dim; j++) acc[j % 8] += (double)xr[j];
    double m = (((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))) / dim;
    for (int l = 0; l < 8; l++) acc[l] = 0.0;
    for (j = 0; j + 8 <= dim; j += 8)
      for (int l = 0; l < 8; l++) {
        double d = (double)xr[j + l] - m;
        acc[l] += d * d;
      }
    for (; j < dim; j++) {
      double d = (double)xr[j] - m;
      acc[j % 8] += d * d;
    }
    double var = (((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))) / dim;
    float mf = (float)m, rs = (float)(1.0 / sqrt(var + (double)eps));
    /* backward recomputes xhat from these same float values, so the two agree exactly */
    for (j = 0; j < dim; j++) yr[j] = (xr[j] - mf) * rs * w[j] + b[j];
    if (mean) mean[r] = mf;
    if (rstd) rstd[r] = rs;
  }
}

CH_VECTORIZE void cpu_layernorm_backward(float *dx, float *dw, float *db, const float *dy,
                                         const float *x, const float *mean, const float *rstd,
                                         const float *w, int64_t rows, int dim) {
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * dim, *dyr = dy + r * dim;
    float *dxr = dx + r * dim;
    float mf = mean[r], rs = rstd[r];
    /* s1 = sum_j g_j, s2 = sum_j g_j xhat_j */
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
