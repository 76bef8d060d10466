/* Fused softmax cross-entropy: the loss of each row and the gradient of scale * (sum of the
 * losses) in one kernel; the math of cpu_xent_fused (kernels/cpu/xent.c). For a row z with
 * label t: m = max_j z_j, S = sum_j e^(z_j - m), loss = log S - (z_t - m),
 * d_j = scale e^(z_j - m) / S - scale [j == t].
 *
 * Decomposition: one block per row, because rows are long (a GPT vocabulary is ~50k classes)
 * and there are only batch * T of them. Three passes over the row: max, sum of exponentials
 * (recomputed in the third pass rather than stored: one more exp per element is cheaper than
 * writing and re-reading the row), then the gradient. Reductions: each thread over a strided
 * slice in fp32, then warp shuffles, then one value per warp through shared memory. Reads are
 * coalesced scalar loads (a warp reads 128 contiguous bytes), which already run at memory speed;
 * float4 would also need classes % 4 == 0. */
#include <math.h>

#include "kernels/cuda/common.cuh"

namespace {

constexpr int kThreads = 512;

/* Reduction over the block; every thread gets the result. `red` holds one value per warp. The
 * leading __syncthreads lets `red` be reused by consecutive calls. */
template <bool MAX>
__device__ float block_reduce(float v, float *red) {
  v = MAX ? warp_max(v) : warp_sum(v);
  int lane = threadIdx.x & 31, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
  __syncthreads();
  if (lane == 0) red[warp] = v;
  __syncthreads();
  v = lane < nwarps ? red[lane] : (MAX ? -INFINITY : 0.0f);
  return MAX ? warp_max(v) : warp_sum(v);
}

/* d may alias z: z_t is read before the first __syncthreads, and in the last pass each thread
 * reads z_j and then writes d_j for the same j only. */
__global__ void __launch_bounds__(kThreads)
    xent_fused(float *d, float *losses, const float *z, const int32_t *labels, int classes,
               float scale) {
  __shared__ float red[32];
  const float *zr = z + (int64_t)blockIdx.x * classes;
  float *dr = d + (int64_t)blockIdx.x * classes;
  int t = labels[blockIdx.x];
  bool ok = t >= 0 && t < classes;
  float zt = ok ? zr[t] : 0.0f;

  float m = -INFINITY;
  for (int j = threadIdx.x; j < classes; j += blockDim.x) m = fmaxf(m, zr[j]);
  m = block_reduce<true>(m, red);
  float sum = 0.0f;
  for (int j = threadIdx.x; j < classes; j += blockDim.x) sum += expf(zr[j] - m);
  sum = block_reduce<false>(sum, red);

  float k = scale / sum;
  for (int j = threadIdx.x; j < classes; j += blockDim.x) {
    float g = expf(zr[j] - m) * k;
    if (j == t) g -= scale;
    dr[j] = g;
  }
  if (threadIdx.x == 0) losses[blockIdx.x] = ok ? logf(sum) - (zt - m) : NAN;
}

} // namespace

ch_status ch_cuda_xent_fused(float *dlogits, float *losses, const float *logits,
                             const int32_t *labels, int batch, int classes, float scale,
                             ch_cuda_stream s) {
  if (batch < 0 || classes <= 0)
    return CH_FAIL(CH_ERR_INVALID, "xent: batch = %d, classes = %d", batch, classes);
  if (batch == 0) return CH_OK;
  /* Short rows would leave most of a 512-thread block idle: shrink it to whole warps. */
  int threads = classes >= kThreads ? kThreads : ((classes + 31) / 32) * 32;
  CH_LAUNCH(batch, threads, 0, s, xent_fused)(dlogits, losses, logits, labels, classes, scale);
  CH_CUDA_LAUNCHED("xent fused");
  return CH_OK;
}
