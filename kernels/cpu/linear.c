/* Linear layers on the CPU: y = x W^T + b with W stored [out, in] as in PyTorch (linear), and
 * y = x W + b with W stored [in, out] as GPT-2's Conv1D (matmul). The three GEMMs of
 * forward/backward go through cpu_gemm (kernels/cpu/blas.c): OpenBLAS's sgemm, or with
 * bf16 != 0 cohort's bf16 GEMM (kernels/cpu/gemm_bf16.c). */
#include <string.h>

#include "kernels/cpu/cpu_kernels.h"

/* The two layouts of the weight: [out, in] (PyTorch's Linear, w_out_in = 1) and [in, out]
 * (GPT-2's Conv1D, w_out_in = 0); the GEMMs read it transposed or not to match. */
static void gemm_forward(int bf16, float *y, const float *x, const float *w, const float *b,
                         int64_t batch, int in, int out, int w_out_in) {
  if (batch <= 0) return;
  if (b) {
    for (int64_t i = 0; i < batch; i++) memcpy(y + (size_t)i * out, b, sizeof *b * (size_t)out);
  }
  /* y[B,out] (+)= x[B,in] W[in,out] */
  cpu_gemm(bf16, 0, w_out_in, (int)batch, out, in, 1.0f, x, in, w, w_out_in ? in : out,
           b ? 1.0f : 0.0f, y, out);
}

static void gemm_backward(int bf16, float *dx, float *dw, float *db, const float *dy,
                          const float *x, const float *w, int64_t batch, int in, int out,
                          int w_out_in) {
  if (batch <= 0) return;
  /* dx[B,in] = dy[B,out] W[in,out]^T */
  if (dx)
    cpu_gemm(bf16, 0, !w_out_in, (int)batch, in, out, 1.0f, dy, out, w, w_out_in ? in : out,
             0.0f, dx, in);
  if (w_out_in) /* dW[out,in] += dy^T[out,B] x[B,in] */
    cpu_gemm(bf16, 1, 0, out, in, (int)batch, 1.0f, dy, out, x, in, 1.0f, dw, in);
  else /* dW[in,out] += x^T[in,B] dy[B,out] */
    cpu_gemm(bf16, 1, 0, in, out, (int)batch, 1.0f, x, in, dy, out, 1.0f, dw, out);
  if (db) {
    for (int64_t i = 0; i < batch; i++) {
      const float *row = dy + (size_t)i * out;
      for (int j = 0; j < out; j++) db[j] += row[j];
    }
  }
}

void cpu_linear_forward(int bf16, float *y, const float *x, const float *w, const float *b, int64_t batch,
                        int in, int out) {
  gemm_forward(bf16, y, x, w, b, batch, in, out, 1);
}

void cpu_linear_backward(int bf16, float *dx, float *dw, float *db, const float *dy, const float *x,
                         const float *w, int64_t batch, int in, int out) {
  gemm_backward(bf16, dx, dw, db, dy, x, w, batch, in, out, 1);
}

void cpu_matmul_forward(int bf16, float *y, const float *x, const float *w, const float *b, int64_t batch,
                        int in, int out) {
  gemm_forward(bf16, y, x, w, b, batch, in, out, 0);
}

void cpu_matmul_backward(int bf16, float *dx, float *dw, float *db, const float *dy, const float *x,
                         const float *w, int64_t batch, int in, int out) {
  gemm_backward(bf16, dx, dw, db, dy, x, w, batch, in, out, 0);
}
