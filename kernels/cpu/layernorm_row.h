/* Private to kernels/cpu: LayerNorm forward of one row, shared by cpu_layernorm_forward
 * (layernorm.c) and the fused residual add + LayerNorm (fused.c), so that both give the same
 * bits. The formulas and the summation order are layernorm.c's (see there). */
#pragma once
#include <math.h>
#include <stdint.h>

/* The two-pass mean/variance keeps var >= 0 and exact for constant rows (no E[x^2]-E[x]^2
 * cancellation); the row is read three times, from L1 after the first. y must not overlap x. */
static inline void cpu_layernorm_row(float *restrict y, float *mean, float *rstd,
                                     const float *restrict x, const float *restrict w,
                                     const float *restrict b, int dim, float eps) {
  double acc[8] = {0};
  int j = 0;
  for (; j + 8 <= dim; j += 8)
    for (int l = 0; l < 8; l++) acc[l] += (double)x[j + l];
  for (; j < dim; j++) acc[j % 8] += (double)x[j];
  double m = (((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))) / dim;
  for (int l = 0; l < 8; l++) acc[l] = 0.0;
  for (j = 0; j + 8 <= dim; j += 8)
    for (int l = 0; l < 8; l++) {
      double d = (double)x[j + l] - m;
      acc[l] += d * d;
    }
  for (; j < dim; j++) {
    double d = (double)x[j] - m;
    acc[j % 8] += d * d;
  }
  double var = (((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))) / dim;
  float mf = (float)m, rs = (float)(1.0 / sqrt(var + (double)eps));
  /* backward recomputes xhat from these same float values, so the two agree exactly */
  for (j = 0; j < dim; j++) y[j] = (x[j] - mf) * rs * w[j] + b[j];
  if (mean) *mean = mf;
  if (rstd) *rstd = rs;
}
