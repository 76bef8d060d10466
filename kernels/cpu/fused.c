/* Fused passes over activations (docs/gpt.md, "Fused passes"): ops that do in one pass over a
 * buffer what two backend ops did in two, each giving the same bits as that composition (the
 * same operations in the same order), so a model computes the same numbers either way.
 *
 * - GEMM + bias + GELU forward: stays today's composition, the bias copied into the output
 *   rows and the GEMM run with beta = 1 (linear.c), then one GELU pass. Measured against a
 *   bias+GELU pass after a beta = 0 GEMM, and against row panels whose epilogue runs while the
 *   panel is in L2: neither wins on OpenBLAS (beta = 0 costs a zeroing pass inside sgemm, and
 *   each panel's call repacks W), see docs/gpt.md. The op exists so that a backend with an
 *   epilogue (cuBLASLt's GELU_AUX_BIAS) can fuse it.
 * - GELU backward + bias gradient: dpre = gelu'(pre) dy and db += dpre in one pass (the
 *   composition read dpre again to sum db), then the two GEMMs.
 * - Residual add + LayerNorm: res = a + b, then the row's LayerNorm while it is in L1 (the
 *   composition wrote res, then read it back from memory). */
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/gelu.h"
#include "kernels/cpu/layernorm_row.h"
#include "kernels/cpu/simd.h"

void cpu_matmul_gelu_forward(int bf16, float *pre, float *y, const float *x, const float *w,
                             const float *b, int64_t batch, int in, int out) {
  cpu_matmul_forward(bf16, pre, x, w, b, batch, in, out);
  cpu_gelu_forward(y, pre, batch * out);
}

/* dy = gelu'(pre) dy, row by row, and db += each row in row order: the bits of
 * cpu_gelu_backward followed by the bias sum of cpu_matmul_backward. */
CH_VECTORIZE static void gelu_grad_rows(float *restrict dy, float *restrict db,
                                        const float *restrict pre, int64_t rows, int out) {
  for (int64_t r = 0; r < rows; r++) {
    float *restrict d = dy + r * out;
    const float *restrict p = pre + r * out;
    if (db) {
      for (int j = 0; j < out; j++) {
        float g = d[j] * cpu_gelu_grad_f32(p[j]);
        d[j] = g;
        db[j] += g;
      }
    } else {
      for (int j = 0; j < out; j++) d[j] = d[j] * cpu_gelu_grad_f32(p[j]);
    }
  }
}

void cpu_matmul_gelu_backward(int bf16, float *dx, float *dw, float *db, float *dy,
                              const float *pre, const float *x, const float *w, int64_t batch,
                              int in, int out) {
  if (batch <= 0) return;
  gelu_grad_rows(dy, db, pre, batch, out);
  cpu_matmul_backward(bf16, dx, dw, NULL, dy, x, w, batch, in, out);
}

/* The add writes the row of res, which the LayerNorm then reads from L1 (three times, as
 * cpu_layernorm_forward); res aliasing a is safe: element j of a is read before res[j] is
 * written and never again. */
CH_VECTORIZE void cpu_add_layernorm_forward(float *res, float *y, float *mean, float *rstd,
                                            const float *a, const float *b, const float *w,
                                            const float *bias, int64_t rows, int dim,
                                            float eps) {
  for (int64_t r = 0; r < rows; r++) {
    float *rr = res + r * dim;
    const float *ar = a + r * dim, *br = b + r * dim;
    for (int j = 0; j < dim; j++) rr[j] = ar[j] + br[j];
    cpu_layernorm_row(y + r * dim, mean ? mean + r : NULL, rstd ? rstd + r : NULL, rr, w, bias,
                      dim, eps);
  }
}
