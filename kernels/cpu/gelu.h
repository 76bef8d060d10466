/* Private to kernels/cpu: GELU and its derivative for one element, shared by the elementwise
 * ops (activation.c) and the fused GEMM passes (fused.c), so that the two give the same bits.
 *
 * Tanh approximation (GPT-2): g(x) = 0.5 x (1 + tanh(u)), u = c (x + a x^3), c = sqrt(2/pi),
 * a = 0.044715. Computed in the equivalent sigmoid form, 1 + tanh(u) = 2 s with
 * s = 1 / (1 + e^(-2u)): g(x) = x s, free of the cancellation of 1 + tanh(u) for x << 0, and
 * with cpu_exp_f32 so that loops calling it vectorise (glibc's tanhf was 40% of a GPT step).
 * g'(x) = 0.5 (1 + t) + 0.5 x (1 - t^2) u'(x) = s + 2 x s (1 - s) c (1 + 3 a x^2), where
 * 1 - s = e^(-2u) s exactly. */
#pragma once
#include "kernels/cpu/fastmath.h"

#define CPU_GELU_C 0.7978845608028654f
#define CPU_GELU_A 0.044715f

static inline float cpu_gelu_f32(float v) {
  float e = cpu_exp_f32(-2.0f * CPU_GELU_C * (v + CPU_GELU_A * v * v * v));
  return v / (1.0f + e);
}

/* g'(v). */
static inline float cpu_gelu_grad_f32(float v) {
  float e = cpu_exp_f32(-2.0f * CPU_GELU_C * (v + CPU_GELU_A * v * v * v));
  float s = 1.0f / (1.0f + e);
  return s + 2.0f * v * (e * s) * s * CPU_GELU_C * (1.0f + 3.0f * CPU_GELU_A * v * v);
}
