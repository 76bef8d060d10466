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
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/layernorm_row.h"
#include "kernels/cpu/simd.h"

/* Row by row: kernels/cpu/layernorm_row.h (shared with the fused residual add of fused.c). */
CH_VECTORIZE void cpu_layernorm_forward(float *y, float *mean, float *rstd, const float *x,
                                        const float *w, const float *b, int64_t rows, int dim,
                                        float eps) {
  for (int64_t r = 0; r < rows; r++)
    cpu_layernorm_row(y + r * dim, mean ? mean + r : NULL, rstd ? rstd + r : NULL, x + r * dim,
                      w, b, dim, eps);
}

/* Per row: the sums s1 = sum_j g_j and s2 = sum_j g_j xhat_j (eight double accumulators each),
 * then dx, dw and db in one pass. The row is read from memory once; the later passes find it in
 * L1, so xhat and g are recomputed rather than stored (two multiplies).
 * restrict (no two buffers overlap, as the contract says) is what lets GCC vectorise the second
 * pass: without it the three accumulating stores could alias every load, and the loop stayed
 * scalar (6x the time of the forward at dim 768). */
CH_VECTORIZE void cpu_layernorm_backward(float *restrict dx, float *restrict dw,
                                         float *restrict db, const float *restrict dy,
                                         const float *restrict x, const float *restrict mean,
                                         const float *restrict rstd, const float *restrict w,
                                         int64_t rows, int dim) {
  for (int64_t r = 0; r < rows; r++) {
    const float *restrict xr = x + r * dim, *restrict dyr = dy + r * dim;
    float *restrict dxr = dx + r * dim;
    const float mf = mean[r], rs = rstd[r];
    /* s1 and s2 in two loops, each of which GCC vectorises (one loop updating both was only
     * vectorised within an iteration); each accumulator sees the same additions in the same
     * order either way. */
    double a1[8] = {0}, a2[8] = {0};
    int j = 0;
    for (; j + 8 <= dim; j += 8)
      for (int l = 0; l < 8; l++) a1[l] += (double)(dyr[j + l] * w[j + l]);
    for (; j < dim; j++) a1[j % 8] += (double)(dyr[j] * w[j]);
    for (j = 0; j + 8 <= dim; j += 8)
      for (int l = 0; l < 8; l++) {
        float xh = (xr[j + l] - mf) * rs, g = dyr[j + l] * w[j + l];
        a2[l] += (double)g * (double)xh;
      }
    for (; j < dim; j++) {
      float xh = (xr[j] - mf) * rs, g = dyr[j] * w[j];
      a2[j % 8] += (double)g * (double)xh;
    }
    double s1 = ((a1[0] + a1[1]) + (a1[2] + a1[3])) + ((a1[4] + a1[5]) + (a1[6] + a1[7]));
    double s2 = ((a2[0] + a2[1]) + (a2[2] + a2[3])) + ((a2[4] + a2[5]) + (a2[6] + a2[7]));
    const float m1 = (float)(s1 / dim), m2 = (float)(s2 / dim);
    for (j = 0; j < dim; j++) {
      float xh = (xr[j] - mf) * rs, g = dyr[j] * w[j];
      dxr[j] += rs * (g - m1 - xh * m2);
      dw[j] += dyr[j] * xh;
      db[j] += dyr[j];
    }
  }
}
