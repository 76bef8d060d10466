/* Sum of squares (the gradient norm for clipping) and the one-block final sum of partials that
 * it shares with the cross-entropy loss.
 *
 * sumsq: each thread of a grid-stride loop sums x_i^2 in double (a float times a float is exact
 * in double: 24 + 24 mantissa bits < 53, so only the additions round), each block sums its
 * threads with a fixed tree into one partial in scratch, then one block sums the partials in
 * a fixed order. The grid depends only on n and the device, so the result is deterministic;
 * against the CPU's eight interleaved accumulators only the order of the double additions
 * differs (relative difference ~ log2(n) 2^-53). */
#include "kernels/cuda/ops.h"
#include "kernels/cuda/reduce.cuh"

namespace {

__global__ void __launch_bounds__(kReduceThreads)
    sumsq_partials(double *parts, const float *x, int64_t n) {
  __shared__ double sh[kReduceThreads];
  double acc = 0.0;
  int64_t stride = (int64_t)gridDim.x * blockDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
    acc += (double)x[i] * (double)x[i];
  double total = block_sum_double(acc, sh);
  if (threadIdx.x == 0) parts[blockIdx.x] = total;
}

__global__ void __launch_bounds__(kReduceThreads)
    sum_doubles(double *out, const double *parts, int64_t n, bool accumulate) {
  __shared__ double sh[kReduceThreads];
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) acc += parts[i];
  double total = block_sum_double(acc, sh);
  if (threadIdx.x == 0) *out = accumulate ? *out + total : total;
}

} // namespace

ch_status cuda_sum_doubles(double *out, const double *parts, int64_t n, bool accumulate,
                           cudaStream_t s) {
  CH_LAUNCH(1, kReduceThreads, 0, s, sum_doubles)(out, parts, n, accumulate);
  CH_CUDA_LAUNCHED("sum of partials");
  return CH_OK;
}

ch_status cuda_sumsq(const ch_backend *be, const float *x, int64_t n, double *out) {
  if (n < 0) return CH_FAIL(CH_ERR_INVALID, "sumsq: n = %lld", (long long)n);
  cuda_ctx *c = cuda_ctx_of(be);
  /* 4 blocks per multiprocessor of 8 elements per thread at least: enough loads in flight to
   * reach memory speed, few enough partials for one block to finish. */
  int grid = cuda_grid(n, kReduceThreads * 8, 4);
  void *parts = NULL;
  CH_CHECK(cuda_scratch(c, sizeof(double) * grid, &parts));
  CH_LAUNCH(grid, kReduceThreads, 0, c->stream, sumsq_partials)((double *)parts, x, n);
  CH_CUDA_LAUNCHED("sumsq");
  return cuda_sum_doubles(out, (const double *)parts, grid, false, c->stream);
}
