/* Private to kernels/cpu: elementary functions written so that GCC vectorises the loops that
 * call them (glibc's expf and tanhf are scalar calls; tanhf in GELU alone was 40% of a GPT
 * training step). Plain IEEE arithmetic, no -ffast-math: results are the same on every instruction set. */
#pragma once
#include <stdint.h>
#include <string.h>

/* e^x for float x, relative error below 2e-7 (about 2 ulp) on [-87, 88]; inputs outside are
 * clamped there (e^-87 = 1.6e-38, the smallest normal range; e^88 = 1.7e38).
 * e^x = 2^n e^r with n = round(x / ln 2), r = x - n ln 2 in [-ln2/2, ln2/2] (ln 2 split in a
 * high part exact in float and a low part), e^r by its Taylor series to degree 7 (truncation
 * error r^8/8! < 5e-9), 2^n built from its exponent bits. */
static inline float cpu_exp_f32(float x) {
  /* The upper test reads the unclamped x on purpose: written as two clamps in a row, GCC 12
   * threads the path x < -87 (the second test is then known false) into a copy of the whole
   * function on a constant, and vectorised GELU did three masked divisions per vector instead
   * of one (half its time). Same values, NaN included (both tests false: x stays NaN). */
  float lo = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : lo;
  /* Adding and subtracting 1.5 * 2^23 rounds to the nearest integer (round-half-even). */
  float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = x - n * 0.693145751953125f;
  r = r - n * 1.42860682030941723e-6f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  uint32_t bits = (uint32_t)((int32_t)n + 127) << 23;
  float scale;
  memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}
