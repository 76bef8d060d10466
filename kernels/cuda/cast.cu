/* fp32 <-> bf16 casts. bf16 is the upper half of an fp32 (8 exponent bits, 7 stored mantissa
 * bits). fp32 -> bf16 rounds to nearest, ties to even: __float2bfloat16_rn, one cvt.rn.bf16.f32
 * on sm_80+ (NaN -> a NaN, values beyond the largest bf16 -> inf, subnormals kept).
 * bf16 -> fp32 is exact: the 16 bits shifted into the high half.
 *
 * Decomposition: grid-stride loops, 4 elements per thread (a 16-byte fp32 access and an 8-byte
 * bf16 one) when both buffers allow it, scalar otherwise and for the n % 4 tail. */
#include <cuda_bf16.h>

#include "kernels/cuda/common.cuh"

namespace {

constexpr int kThreads = 256;

bool aligned8(const void *p) { return ((uintptr_t)p & 7u) == 0; }

template <int V>
__global__ void to_bf16(ch_bf16 *y, const float *x, int64_t n) {
  int64_t stride = (int64_t)gridDim.x * blockDim.x, nv = n / V;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < nv; i += stride) {
    fvec<V> xv = fvec_load<V>(x + i * V);
    if constexpr (V == 4) {
      /* .x of a bfloat162 sits at the lower address, so element order is kept */
      __nv_bfloat162 lo = __floats2bfloat162_rn(xv.v[0], xv.v[1]);
      __nv_bfloat162 hi = __floats2bfloat162_rn(xv.v[2], xv.v[3]);
      __nv_bfloat162 *out = reinterpret_cast<__nv_bfloat162 *>(y + i * V);
      out[0] = lo;
      out[1] = hi;
    } else {
      y[i] = __bfloat16_as_ushort(__float2bfloat16_rn(xv.v[0]));
    }
  }
  for (int64_t i = nv * V + (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
    y[i] = __bfloat16_as_ushort(__float2bfloat16_rn(x[i]));
}

template <int V>
__global__ void from_bf16(float *y, const ch_bf16 *x, int64_t n) {
  int64_t stride = (int64_t)gridDim.x * blockDim.x, nv = n / V;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < nv; i += stride) {
    fvec<V> yv;
    if constexpr (V == 4) {
      uint2 bits = *reinterpret_cast<const uint2 *>(x + i * V); /* 4 bf16, little-endian */
      yv.v[0] = __uint_as_float(bits.x << 16);
      yv.v[1] = __uint_as_float(bits.x & 0xffff0000u);
      yv.v[2] = __uint_as_float(bits.y << 16);
      yv.v[3] = __uint_as_float(bits.y & 0xffff0000u);
    } else {
      yv.v[0] = __uint_as_float((uint32_t)x[i] << 16);
    }
    fvec_store<V>(y + i * V, yv);
  }
  for (int64_t i = nv * V + (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
    y[i] = __uint_as_float((uint32_t)x[i] << 16);
}

/* Launches a cast over n elements: `wide` (4 per thread) when `vec` says both buffers allow
 * it, else `scalar`. `what` names the cast in errors. */
template <typename Y, typename X>
ch_status launch_cast(void (*wide)(Y *, const X *, int64_t),
                      void (*scalar)(Y *, const X *, int64_t), bool vec, Y *y, const X *x,
                      int64_t n, ch_cuda_stream s, const char *what) {
  if (n < 0) return CH_FAIL(CH_ERR_INVALID, "%s: n = %lld", what, (long long)n);
  if (n == 0) return CH_OK;
  if (vec)
    CH_LAUNCH(cuda_grid(n / 4 + 1, kThreads, 8), kThreads, 0, s, wide)(y, x, n);
  else
    CH_LAUNCH(cuda_grid(n, kThreads, 8), kThreads, 0, s, scalar)(y, x, n);
  CH_CUDA_TRY(cudaGetLastError(), what); /* a bad launch, or a fault left by earlier work */
  return CH_OK;
}

} // namespace

ch_status ch_cuda_f32_to_bf16(ch_bf16 *y, const float *x, int64_t n, ch_cuda_stream s) {
  return launch_cast(to_bf16<4>, to_bf16<1>, cuda_aligned16(x) && aligned8(y), y, x, n, s,
                     "cast to bf16");
}

ch_status ch_cuda_bf16_to_f32(float *y, const ch_bf16 *x, int64_t n, ch_cuda_stream s) {
  return launch_cast(from_bf16<4>, from_bf16<1>, cuda_aligned16(y) && aligned8(x), y, x, n, s,
                     "cast from bf16");
}
