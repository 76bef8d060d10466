/* Token + position embedding (GPT-2): y[i] = wte[tokens[i]] + wpe[i % T], and its backward,
 * a scatter-add into the two tables (repeated tokens add up). */
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/simd.h"

CH_VECTORIZE void cpu_embedding_forward(float *y, const int32_t *tokens, const float *wte,
                                        const float *wpe, int64_t n, int T, int C) {
  for (int64_t i = 0; i < n; i++) {
    const float *te = wte + (int64_t)tokens[i] * C, *pe = wpe + (i % T) * C;
    float *yr = y + i * C;
    for (int c = 0; c < C; c++) yr[c] = te[c] + pe[c];
  }
}

/* Rows run in order, so the result does not depend on anything but the inputs. */
CH_VECTORIZE void cpu_embedding_backward(float *dwte, float *dwpe, const float *dy,
                                         const int32_t *tokens, int64_t n, int T, int C) {
  for (int64_t i = 0; i < n; i++) {
    const float *g = dy + i * C;
    float *te = dwte + (int64_t)tokens[i] * C, *pe = dwpe + (i % T) * C;
    for (int c = 0; c < C; c++) te[c] += g[c];
    for (int c = 0; c < C; c++) pe[c] += g[c];
  }
}
