/* The optimizers' update loops, one span (a run of elements with one decay setting) at a time:
 * no per-element branches, so each loop vectorises; the clones round identically because the
 * library is built with -ffp-contract=off (no fused multiply-add in one clone only). */
#include <math.h>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/simd.h"

CH_VECTORIZE void cpu_sgd_span(float *restrict p, const float *restrict g, float *restrict m,
                               size_t n, float lr, float wd, float mu, int first) {
  for (size_t i = 0; i < n; i++) {
    float d = g[i] + wd * p[i];
    if (mu != 0.0f) {
      m[i] = first ? d : mu * m[i] + d;
      d = m[i];
    }
    p[i] -= lr * d;
  }
}

CH_VECTORIZE void cpu_adamw_span(float *restrict p, const float *restrict g, float *restrict m,
                                 float *restrict v, size_t n, float decay, float b1, float b2,
                                 float step_size, float sqrt_bc2, float eps) {
  for (size_t i = 0; i < n; i++) {
    p[i] *= decay;
    m[i] = b1 * m[i] + (1.0f - b1) * g[i];
    v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
    p[i] -= step_size * m[i] / (sqrtf(v[i]) / sqrt_bc2 + eps);
  }
}
