/* Linear layer on the CPU: y = x W^T + b with W stored [out, in] as in PyTorch.
 * The three GEMMs of forward/backward go through OpenBLAS (kernels/cpu/blas.c). */
#include <string.h>

#include "kernels/cpu/cpu_kernels.h"

void cpu_linear_forward(float *y, const float *x, const float *w, const float *b, int batch,
                        int in, int out) {
  if (batch <= 0) return;
  if (b) {
    for (int i = 0; i < batch; i++) memcpy(y + (size_t)i * out, b, sizeof *b * (size_t)out);
  }
  /* y[B,out] (+)= x[B,in] * W[out,in]^T */
  ch_sgemm(0, 1, batch, out, in, 1.0f, x, in, w, in, b ? 1.0f : 0.0f, y, out);
}

void cpu_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                         const float *w, int batch, int in, int out) {
  if (batch <= 0) return;
  /* dx[B,in] = dy[B,out] * W[out,in] */
  if (dx) ch_sgemm(0, 0, batch, in, out, 1.0f, dy, out, w, in, 0.0f, dx, in);
  /* dW[out,in] += dy^T[out,B] * x[B,in] */
  ch_sgemm(1, 0, out, in, batch, 1.0f, dy, out, x, in, 1.0f, dw, in);
  if (db) {
    for (int i = 0; i < batch; i++) {
      const float *row = dy + (size_t)i * out;
      for (int j = 0; j < out; j++) db[j] += row[j];
    }
  }
}

/* GPT-2 stores its projections as Conv1D weights W[in, out]: y = x W + b. */
void cpu_matmul_forward(float *y, const float *x, const float *w, const float *b, int64_t batch,
                        int in, int out) {
  if (batch <= 0) return;
  if (b) {
    for (int64_t i = 0; i < batch; i++) memcpy(y + (size_t)i * out, b, sizeof *b * (size_t)out);
  }
  ch_sgemm(0, 0, (int)batch, out, in, 1.0f, x, in, w, out, b ? 1.0f : 0.0f, y, out);
}

void cpu_matmul_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                         const float *w, int64_t batch, int in, int out) {
  if (batch <= 0) return;
  /* dx[B,in] = dy[B,out] W[in,out]^T */
  if (dx) ch_sgemm(0, 1, (int)batch, in, out, 1.0f, dy, out, w, out, 0.0f, dx, in);
  /* dW[in,out] += x^T[in,B] dy[B,out] */
  ch_sgemm(1, 0, in, out, (int)batch, 1.0f, x, in, dy, out, 1.0f, dw, out);
  if (db) {
    for (int64_t i = 0; i < batch; i++) {
      const float *row = dy + (size_t)i * out;
      for (int j = 0; j < out; j++) db[j] += row[j];
    }
  }
}
