/* Softmax cross-entropy over logits rows [B T, classes], the label of row b T + t at
 * labels[b ldl + t]; the math of kernels/cpu/xent.c. For a row z with label t:
 * m = max_j z_j, S = sum_j e^(z_j - m), loss = log S - (z_t - m); the fused pass also writes
 * d_j = scale e^(z_j - m) / S - scale [j == t] (d may alias z), and the forward pass counts
 * rows whose first argmax is the label.
 *
 * Decomposition: one block per row, because rows are long (a GPT vocabulary is ~50k classes)
 * and there are only B T of them. Passes over the row: max (with its first index in the
 * forward pass), sum of exponentials, and in the fused pass the gradient (e^(z_j - m)
 * recomputed rather than stored: one more exp per element is cheaper than writing and
 * re-reading the row). Reductions: each thread over a strided slice in fp32, then warp
 * shuffles, then one value per warp through shared memory. Reads are coalesced scalar loads
 * (a warp reads 128 contiguous bytes), which already run at memory speed.
 *
 * Loss: each row's loss (in double, from the fp32 S) goes to scratch, then one block sums the
 * rows in a fixed order and adds the total to *loss (reduce.cuh): deterministic, like the CPU's
 * "summed from 0 in row order, then added" though in another order. The hit count is summed
 * with 64-bit integer atomics: exact in any order. */
#include <math.h>

#include "kernels/cuda/ops.h"
#include "kernels/cuda/reduce.cuh"

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

/* (v, i) beats (w, k) when larger, or equal with a smaller index: the CPU's first argmax. */
__device__ __forceinline__ void argmax_merge(float &v, int &i, float w, int k) {
  if (w > v || (w == v && k < i)) {
    v = w;
    i = k;
  }
}

/* The block's maximum and its first index; every thread gets both. */
__device__ void block_argmax(float &v, int &i, float *redv, int *redi) {
  for (int o = 16; o > 0; o >>= 1) {
    float w = __shfl_xor_sync(0xffffffffu, v, o);
    int k = __shfl_xor_sync(0xffffffffu, i, o);
    argmax_merge(v, i, w, k);
  }
  int lane = threadIdx.x & 31, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
  __syncthreads();
  if (lane == 0) {
    redv[warp] = v;
    redi[warp] = i;
  }
  __syncthreads();
  v = lane < nwarps ? redv[lane] : -INFINITY;
  i = lane < nwarps ? redi[lane] : 0x7fffffff;
  for (int o = 16; o > 0; o >>= 1) {
    float w = __shfl_xor_sync(0xffffffffu, v, o);
    int k = __shfl_xor_sync(0xffffffffu, i, o);
    argmax_merge(v, i, w, k);
  }
}

__device__ __forceinline__ int row_label(const int32_t *labels, int64_t ldl, int T) {
  int64_t b = blockIdx.x / T;
  return labels[b * ldl + (blockIdx.x - b * T)];
}

/* Forward only: losses[row] and, when `correct`, += 1 where the first argmax is the label. */
__global__ void __launch_bounds__(kThreads)
    xent_forward(double *losses, unsigned long long *correct, const float *z,
                 const int32_t *labels, int64_t ldl, int T, int classes) {
  __shared__ float redv[32];
  __shared__ int redi[32];
  const float *zr = z + (int64_t)blockIdx.x * classes;
  int t = row_label(labels, ldl, T);
  float m = -INFINITY;
  int arg = 0x7fffffff;
  for (int j = threadIdx.x; j < classes; j += blockDim.x)
    if (zr[j] > m) { /* strictly greater: a thread's slice runs upwards, so first index wins */
      m = zr[j];
      arg = j;
    }
  block_argmax(m, arg, redv, redi);
  float sum = 0.0f;
  for (int j = threadIdx.x; j < classes; j += blockDim.x) sum += expf(zr[j] - m);
  sum = block_reduce<false>(sum, redv);
  if (threadIdx.x == 0) {
    losses[blockIdx.x] = log((double)sum) - (double)(zr[t] - m);
    if (correct && arg == t) atomicAdd(correct, 1ull);
  }
}

/* d may alias z: z_t is read before the first __syncthreads, and in the last pass each thread
 * reads z_j and then writes d_j for the same j only. */
__global__ void __launch_bounds__(kThreads)
    xent_fused(float *d, double *losses, const float *z, const int32_t *labels, int64_t ldl,
               int T, int classes, float scale) {
  __shared__ float red[32];
  const float *zr = z + (int64_t)blockIdx.x * classes;
  float *dr = d + (int64_t)blockIdx.x * classes;
  int t = row_label(labels, ldl, T);
  float zt = zr[t];

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
  if (threadIdx.x == 0) losses[blockIdx.x] = log((double)sum) - (double)(zt - m);
}

ch_status check(int B, int T, int classes) {
  if (B < 0 || T < 0 || classes <= 0)
    return CH_FAIL(CH_ERR_INVALID, "xent: B = %d, T = %d, classes = %d", B, T, classes);
  return CH_OK;
}

/* Short rows would leave most of a 512-thread block idle: shrink it to whole warps. */
int threads_for(int classes) {
  return classes >= kThreads ? kThreads : ((classes + 31) / 32) * 32;
}

} // namespace

ch_status cuda_xent_fwd(const ch_backend *be, const float *logits, const int32_t *labels,
                        int64_t ldl, int B, int T, int classes, double *loss, int64_t *correct) {
  CH_CHECK(check(B, T, classes));
  int rows = B * T;
  if (rows == 0) return CH_OK;
  cuda_ctx *c = cuda_ctx_of(be);
  void *losses = NULL;
  CH_CHECK(cuda_scratch(c, sizeof(double) * rows, &losses));
  CH_LAUNCH(rows, threads_for(classes), 0, c->stream, xent_forward)(
      (double *)losses, (unsigned long long *)correct, logits, labels, ldl, T, classes);
  CH_CUDA_LAUNCHED("xent forward");
  return cuda_sum_doubles(loss, (const double *)losses, rows, true, c->stream);
}

ch_status cuda_xent_fused(const ch_backend *be, float *dlogits, const float *logits,
                          const int32_t *labels, int64_t ldl, int B, int T, int classes,
                          float scale, double *loss) {
  CH_CHECK(check(B, T, classes));
  int rows = B * T;
  if (rows == 0) return CH_OK;
  cuda_ctx *c = cuda_ctx_of(be);
  void *losses = NULL;
  CH_CHECK(cuda_scratch(c, sizeof(double) * rows, &losses));
  CH_LAUNCH(rows, threads_for(classes), 0, c->stream, xent_fused)(
      dlogits, (double *)losses, logits, labels, ldl, T, classes, scale);
  CH_CUDA_LAUNCHED("xent fused");
  return cuda_sum_doubles(loss, (const double *)losses, rows, true, c->stream);
}
