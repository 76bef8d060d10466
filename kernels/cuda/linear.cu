/* The dense layers of the backend seam: PyTorch's Linear (W [out, in], y = x W^T + b) and GPT-2's
 * Conv1D (W [in, out], y = x W + b), forward and backward, as the CPU's kernels/cpu/linear.c:
 *   forward   y = x op(W) + b                     (one GEMM, the bias in cuBLASLt's epilogue)
 *   backward  dx = dy op(W)^T (overwritten), dW += op'(dy, x) (beta = 1), db += sum_rows dy.
 * The GEMMs go through cuda_gemm (gemm.cu) with operands in the context's precision (gemm.cuh:
 * bf16 copies of x, W, dy in bf16 mode; fp32 accumulation and fp32 results either way). */
#include "kernels/cuda/gemm.cuh"

namespace {

/* db[j] += sum over rows of dy[r, j], deterministically (no atomics, an order fixed by the
 * shape) and with enough blocks to fill the device, in two passes:
 * 1. bias_grad_part: block (x, y) of 32 x 8 threads owns 32 columns of one chunk of kRowChunk
 *    rows; thread (c, l) sums rows l, l + 8, ... of the chunk in column c in order (a warp reads
 *    32 adjacent floats), and thread (c, 0) adds the 8 lane sums in order into part[y, column].
 * 2. bias_grad_sum: db[j] += the chunks' partial sums of column j, in chunk order. */
constexpr int kColTile = 32, kRowLanes = 8, kRowChunk = 256;
__global__ void bias_grad_part(float *part, const float *dy, int64_t rows, int cols) {
  __shared__ float lane[kRowLanes][kColTile + 1];
  int j = blockIdx.x * kColTile + threadIdx.x;
  int64_t r0 = (int64_t)blockIdx.y * kRowChunk, r1 = r0 + kRowChunk < rows ? r0 + kRowChunk : rows;
  float s = 0.0f;
  if (j < cols)
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kRowLanes) s += dy[r * cols + j];
  lane[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && j < cols) {
    float t = 0.0f;
    for (int l = 0; l < kRowLanes; l++) t += lane[l][threadIdx.x];
    part[(int64_t)blockIdx.y * cols + j] = t;
  }
}
__global__ void bias_grad_sum(float *db, const float *part, int chunks, int cols) {
  int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= cols) return;
  float t = 0.0f;
  for (int c = 0; c < chunks; c++) t += part[(int64_t)c * cols + j];
  db[j] += t;
}

/* db += sum_rows dy through `part`, scratch of bias_grad_chunks(rows) * cols floats. */
int bias_grad_chunks(int64_t rows) { return (int)((rows + kRowChunk - 1) / kRowChunk); }
ch_status bias_grad(cuda_ctx *c, float *db, const float *dy, int64_t rows, int cols, float *part) {
  int chunks = bias_grad_chunks(rows);
  if (chunks > 65535) /* the grid's y limit */
    return CH_FAIL(CH_ERR_INVALID, "bias gradient: %lld rows", (long long)rows);
  dim3 grid((cols + kColTile - 1) / kColTile, chunks), block(kColTile, kRowLanes);
  CH_LAUNCH(grid, block, 0, c->stream, bias_grad_part)(part, dy, rows, cols);
  CH_CUDA_LAUNCHED("bias_grad_part");
  CH_LAUNCH((cols + 255) / 256, 256, 0, c->stream, bias_grad_sum)(db, part, chunks, cols);
  CH_CUDA_LAUNCHED("bias_grad_sum");
  return CH_OK;
}

ch_status check_shape(const char *what, int64_t batch, int in, int out) {
  if (batch < 0 || batch > INT32_MAX || in < 0 || out < 0)
    return CH_FAIL(CH_ERR_INVALID, "%s: batch %lld, in %d, out %d", what, (long long)batch, in,
                   out);
  return CH_OK;
}

/* y[B,out] = x[B,in] op(W) + b with op(W) = W^T when w_out_in (W [out,in]), else W (W [in,out]). */
ch_status forward(const ch_backend *be, float *y, const float *x, const float *w, const float *b,
                  int64_t batch, int in, int out, int w_out_in) {
  CH_CHECK(check_shape(w_out_in ? "linear_fwd" : "matmul_fwd", batch, in, out));
  if (batch == 0 || out == 0) return CH_OK;
  cuda_ctx *c = cuda_ctx_of(be);
  size_t bytes[2] = {cuda_operand_bytes(c, batch * in), cuda_operand_bytes(c, (int64_t)in * out)};
  void *part[2];
  const void *xo, *wo;
  CH_CHECK(cuda_scratch_parts(c, 2, bytes, part));
  CH_CHECK(cuda_operand(be, x, batch * in, part[0], &xo));
  CH_CHECK(cuda_operand(be, w, (int64_t)in * out, part[1], &wo));
  return cuda_gemm_bias(c, cuda_bf16_gemms(c), 0, w_out_in, (int)batch, out, in, xo, in, wo,
                        w_out_in ? in : out, y, out, b);
}

/* Backward of forward(): dx = dy op(W)^T (if dx), dW += dy^T x or x^T dy, db += sum_rows dy. */
ch_status backward(const ch_backend *be, float *dx, float *dw, float *db, const float *dy,
                   const float *x, const float *w, int64_t batch, int in, int out, int w_out_in) {
  CH_CHECK(check_shape(w_out_in ? "linear_bwd" : "matmul_bwd", batch, in, out));
  if (batch == 0) return CH_OK;
  cuda_ctx *c = cuda_ctx_of(be);
  bool bf = cuda_bf16_gemms(c);
  int64_t nx = batch * in, nw = (int64_t)in * out, ny = batch * out;
  size_t bytes[4] = {cuda_operand_bytes(c, dx ? nw : 0), cuda_operand_bytes(c, nx),
                     cuda_operand_bytes(c, ny),
                     db ? sizeof(float) * bias_grad_chunks(batch) * out : 0};
  void *part[4];
  const void *wo = w, *xo, *dyo;
  CH_CHECK(cuda_scratch_parts(c, 4, bytes, part));
  if (dx) CH_CHECK(cuda_operand(be, w, nw, part[0], &wo));
  CH_CHECK(cuda_operand(be, x, nx, part[1], &xo));
  CH_CHECK(cuda_operand(be, dy, ny, part[2], &dyo));
  int ldw = w_out_in ? in : out;
  if (dx) /* dx[B,in] = dy[B,out] op(W)^T */
    CH_CHECK(cuda_gemm(c->blas, bf, 0, !w_out_in, (int)batch, in, out, 1.0f, dyo, out, 0, wo, ldw,
                       0, 0.0f, dx, in, 0, 1));
  if (w_out_in) /* dW[out,in] += dy^T[out,B] x[B,in] */
    CH_CHECK(cuda_gemm(c->blas, bf, 1, 0, out, in, (int)batch, 1.0f, dyo, out, 0, xo, in, 0, 1.0f,
                       dw, in, 0, 1));
  else /* dW[in,out] += x^T[in,B] dy[B,out] */
    CH_CHECK(cuda_gemm(c->blas, bf, 1, 0, in, out, (int)batch, 1.0f, xo, in, 0, dyo, out, 0, 1.0f,
                       dw, out, 0, 1));
  if (db && out > 0) CH_CHECK(bias_grad(c, db, dy, batch, out, (float *)part[3]));
  return CH_OK;
}

} // namespace

ch_status cuda_linear_fwd(const ch_backend *be, float *y, const float *x, const float *w,
                          const float *b, int64_t batch, int in, int out) {
  return forward(be, y, x, w, b, batch, in, out, 1);
}

ch_status cuda_linear_bwd(const ch_backend *be, float *dx, float *dw, float *db, const float *dy,
                          const float *x, const float *w, int64_t batch, int in, int out) {
  return backward(be, dx, dw, db, dy, x, w, batch, in, out, 1);
}

ch_status cuda_matmul_fwd(const ch_backend *be, float *y, const float *x, const float *w,
                          const float *b, int64_t batch, int in, int out) {
  return forward(be, y, x, w, b, batch, in, out, 0);
}

ch_status cuda_matmul_bwd(const ch_backend *be, float *dx, float *dw, float *db, const float *dy,
                          const float *x, const float *w, int64_t batch, int in, int out) {
  return backward(be, dx, dw, db, dy, x, w, batch, in, out, 0);
}
