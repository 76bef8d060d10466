/* Reductions, scaling and addition over flat buffers. */
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/simd.h"

/* Eight independent double accumulators: a fixed summation order (so results do not depend on
 * the instruction set chosen) that still vectorises. */
CH_VECTORIZE double cpu_sumsq(const float *x, int64_t n) {
  double acc[8] = {0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++) acc[j] += (double)x[i + j] * (double)x[i + j];
  for (; i < n; i++) acc[i % 8] += (double)x[i] * (double)x[i];
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

CH_VECTORIZE void cpu_scale(float *x, float s, int64_t n) {
  for (int64_t i = 0; i < n; i++) x[i] *= s;
}

/* Elementwise, so y aliasing a or b (exactly) is safe: y[i] reads only a[i], b[i]. */
CH_VECTORIZE void cpu_add(float *y, const float *a, const float *b, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}
