/* Elementwise activations and their derivatives. */
#include <math.h>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/gelu.h"
#include "kernels/cpu/simd.h"

void cpu_relu_forward(float *y, const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void cpu_relu_backward(float *dx, const float *dy, const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
}

/* GELU and its derivative: kernels/cpu/gelu.h (shared with the fused passes of fused.c). */
CH_VECTORIZE void cpu_gelu_forward(float *y, const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] = cpu_gelu_f32(x[i]);
}

CH_VECTORIZE void cpu_gelu_backward(float *dx, const float *dy, const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) dx[i] = dy[i] * cpu_gelu_grad_f32(x[i]);
}
