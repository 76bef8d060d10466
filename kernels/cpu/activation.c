/* Elementwise activations and their derivatives. */
#include <math.h>

#include "cohort/kernels.h"

void ch_relu_forward(float *y, const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void ch_relu_backward(float *dx, const float *dy, const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
}

/* GELU, tanh approximation: g(x) = 0.5 x (1 + tanh(u)), u = c (x + a x^3),
 * c = sqrt(2/pi), a = 0.044715. g'(x) = 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 a x^2). */
#define GELU_C 0.7978845608028654f
#define GELU_A 0.044715f

void ch_gelu_forward(float *y, const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    float v = x[i];
    y[i] = 0.5f * v * (1.0f + tanhf(GELU_C * (v + GELU_A * v * v * v)));
  }
}

void ch_gelu_backward(float *dx, const float *dy, const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    float v = x[i];
    float t = tanhf(GELU_C * (v + GELU_A * v * v * v));
    float dgelu = 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * GELU_C * (1.0f + 3.0f * GELU_A * v * v);
    dx[i] = dy[i] * dgelu;
  }
}
