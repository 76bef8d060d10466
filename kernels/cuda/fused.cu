/* The fused passes of the backend seam (cohort/backend.h, docs/gpt.md "Fused passes") as the
 * compositions they stand for, each op of which is already one kernel or GEMM here. What a
 * GPU would gain from fusing them for real (cuBLASLt's GELU_AUX_BIAS epilogue, a LayerNorm
 * kernel that adds the residual as it loads the row) is left for when the GPU path is tuned;
 * meanwhile the models can call one op on every backend. */
#include "kernels/cuda/ops.h"

ch_status cuda_matmul_gelu_fwd(const ch_backend *be, float *pre, float *y, const float *x,
                               const float *w, const float *b, int64_t batch, int in, int out) {
  CH_CHECK(cuda_matmul_fwd(be, pre, x, w, b, batch, in, out));
  return cuda_gelu_fwd(be, y, pre, batch * out);
}

ch_status cuda_matmul_gelu_bwd(const ch_backend *be, float *dx, float *dw, float *db, float *dy,
                               const float *pre, const float *x, const float *w, int64_t batch,
                               int in, int out) {
  CH_CHECK(cuda_gelu_bwd(be, dy, dy, pre, batch * out));
  return cuda_matmul_bwd(be, dx, dw, db, dy, x, w, batch, in, out);
}

ch_status cuda_add_layernorm_fwd(const ch_backend *be, float *res, float *y, float *mean,
                                 float *rstd, const float *a, const float *b, const float *w,
                                 const float *bias, int64_t rows, int dim, float eps) {
  CH_CHECK(cuda_add(be, res, a, b, rows * dim));
  return cuda_layernorm_fwd(be, y, mean, rstd, res, w, bias, rows, dim, eps);
}
