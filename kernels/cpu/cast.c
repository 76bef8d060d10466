/* fp32 <-> bfloat16 (the high half of an fp32) conversions. */
#include <string.h>

#include "kernels/cpu/cpu_kernels.h"

void cpu_f32_to_bf16(uint16_t *y, const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    uint32_t u;
    memcpy(&u, &x[i], sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) { /* NaN: keep it a NaN (set the quiet bit) */
      y[i] = (uint16_t)((u >> 16) | 0x40u);
      continue;
    }
    /* Round to nearest, ties to even: add 0x7fff plus the lowest kept bit, then truncate. */
    u += 0x7fffu + ((u >> 16) & 1u);
    y[i] = (uint16_t)(u >> 16);
  }
}

void cpu_bf16_to_f32(float *y, const uint16_t *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    uint32_t u = (uint32_t)x[i] << 16;
    memcpy(&y[i], &u, sizeof u);
  }
}
