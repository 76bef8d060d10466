/* AdamW over flat buffers: the update of src/optim/optim.c (adamw_span), element for element.
 *   p *= 1 - lr wd;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
 *   p -= (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps),  bc_k = 1 - b_k^t.
 * The scalars are derived on the host exactly as ch_optim_step derives them (double pow, then
 * float), and every float operation runs in the CPU loop's order through the _rn intrinsics,
 * which nvcc never contracts into FMAs (the CPU library is built with -ffp-contract=off), with
 * IEEE sqrt and division. So the result is meant to be bitwise that of the CPU optimizer.
 *
 * Decomposition: a grid-stride loop, V = 4 elements per thread (16-byte loads of p, g, m, v)
 * when the four buffers are aligned; one launch for a whole shard, the per-element decay mask
 * standing in for the CPU's per-parameter spans. */
#include <math.h>

#include "kernels/cuda/common.cuh"

namespace {

struct adamw_k {
  float decay, b1, omb1, b2, omb2, step, sqrt_bc2, eps;
};

__device__ __forceinline__ void adamw_one(float &p, float g, float &m, float &v, float decay,
                                          const adamw_k &k) {
  p = __fmul_rn(p, decay);
  m = __fadd_rn(__fmul_rn(k.b1, m), __fmul_rn(k.omb1, g));
  v = __fadd_rn(__fmul_rn(k.b2, v), __fmul_rn(__fmul_rn(k.omb2, g), g));
  float den = __fadd_rn(__fdiv_rn(__fsqrt_rn(v), k.sqrt_bc2), k.eps);
  p = __fsub_rn(p, __fdiv_rn(__fmul_rn(k.step, m), den));
}

template <int V>
__global__ void adamw_kernel(float *p, const float *g, float *m, float *v, const uint8_t *mask,
                             int64_t n, adamw_k k) {
  int64_t stride = (int64_t)gridDim.x * blockDim.x, nv = n / V;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < nv; i += stride) {
    fvec<V> pv = fvec_load<V>(p + i * V), gv = fvec_load<V>(g + i * V);
    fvec<V> mv = fvec_load<V>(m + i * V), vv = fvec_load<V>(v + i * V);
#pragma unroll
    for (int l = 0; l < V; l++) {
      float decay = (!mask || mask[i * V + l]) ? k.decay : 1.0f;
      adamw_one(pv.v[l], gv.v[l], mv.v[l], vv.v[l], decay, k);
    }
    fvec_store<V>(p + i * V, pv);
    fvec_store<V>(m + i * V, mv);
    fvec_store<V>(v + i * V, vv);
  }
  for (int64_t i = nv * V + (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
    adamw_one(p[i], g[i], m[i], v[i], (!mask || mask[i]) ? k.decay : 1.0f, k);
}

} // namespace

ch_status ch_cuda_adamw(float *p, const float *g, float *m, float *v, const uint8_t *decay,
                        int64_t n, const ch_cuda_adamw_args *a, ch_cuda_stream s) {
  if (n < 0 || a->t < 1)
    return CH_FAIL(CH_ERR_INVALID, "adamw: n = %lld, t = %lld", (long long)n, (long long)a->t);
  if (n == 0) return CH_OK;
  /* As ch_optim_step and adamw_span: float lr and wd, bias corrections in double. An element
   * without decay gets factor 1 exactly, as the CPU's 1 - lr * 0. */
  float lr = (float)a->lr, wd = (float)a->weight_decay, b1 = (float)a->beta1, b2 = (float)a->beta2;
  double t = (double)a->t;
  float bc1 = (float)(1.0 - pow(a->beta1, t));
  float sqrt_bc2 = (float)sqrt(1.0 - pow(a->beta2, t));
  adamw_k k = {1.0f - lr * wd, b1, 1.0f - b1, b2, 1.0f - b2, lr / bc1, sqrt_bc2, (float)a->eps};
  const int threads = 256;
  if (cuda_aligned16(p) && cuda_aligned16(g) && cuda_aligned16(m) && cuda_aligned16(v))
    CH_LAUNCH(cuda_grid(n / 4 + 1, threads, 8), threads, 0, s, adamw_kernel<4>)(p, g, m, v, decay, n, k);
  else
    CH_LAUNCH(cuda_grid(n, threads, 8), threads, 0, s, adamw_kernel<1>)(p, g, m, v, decay, n, k);
  CH_CUDA_LAUNCHED("adamw");
  return CH_OK;
}
