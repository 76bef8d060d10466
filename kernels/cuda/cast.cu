/* fp32 <-> bf16 casts. bf16 is the upper half of an fp32 (8 exponent bits, 7 stored mantissa
 * bits). fp32 -> bf16 rounds to nearest, ties to even, on the bit pattern exactly as
 * kernels/cpu/cast.c does: add 0x7fff plus the lowest kept bit, keep the high half (a carry
 * into the exponent gives the next binade or inf; subnormals round the same way); a NaN keeps
 * its high half with the quiet bit set. Integer arithmetic, so every NaN payload too is the
 * CPU's (cvt.rn.bf16.f32 would give the canonical NaN instead), at no cost that matters in a
 * memory-bound loop. bf16 -> fp32 is exact: the 16 bits shifted into the high half.
 *
 * Decomposition: grid-stride loops, 4 elements per thread (a 16-byte fp32 access and an 8-byte
 * bf16 one) when both buffers allow it, scalar otherwise and for the n % 4 tail. */
#include <string.h>

#include "kernels/cuda/ops.h"

namespace {

constexpr int kThreads = 256;

bool aligned8(const void *p) { return ((uintptr_t)p & 7u) == 0; }

/* Bit casts through memcpy: one register move under nvcc, and plain C++ for the emulation. */
__device__ __forceinline__ uint32_t bits_of(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}
__device__ __forceinline__ float float_of(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

__device__ __forceinline__ uint32_t bf16_bits(float f) {
  uint32_t u = bits_of(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (u >> 16) | 0x40u; /* NaN: stays a NaN */
  return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}

template <int V>
__global__ void to_bf16(uint16_t *y, const float *x, int64_t n) {
  int64_t stride = (int64_t)gridDim.x * blockDim.x, nv = n / V;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < nv; i += stride) {
    fvec<V> xv = fvec_load<V>(x + i * V);
    if constexpr (V == 4) { /* 4 bf16 in one 8-byte store, little-endian */
      uint2 out = {bf16_bits(xv.v[0]) | bf16_bits(xv.v[1]) << 16,
                   bf16_bits(xv.v[2]) | bf16_bits(xv.v[3]) << 16};
      *reinterpret_cast<uint2 *>(y + i * V) = out;
    } else {
      y[i] = (uint16_t)bf16_bits(xv.v[0]);
    }
  }
  for (int64_t i = nv * V + (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
    y[i] = (uint16_t)bf16_bits(x[i]);
}

template <int V>
__global__ void from_bf16(float *y, const uint16_t *x, int64_t n) {
  int64_t stride = (int64_t)gridDim.x * blockDim.x, nv = n / V;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < nv; i += stride) {
    fvec<V> yv;
    if constexpr (V == 4) {
      uint2 bits = *reinterpret_cast<const uint2 *>(x + i * V); /* 4 bf16, little-endian */
      yv.v[0] = float_of(bits.x << 16);
      yv.v[1] = float_of(bits.x & 0xffff0000u);
      yv.v[2] = float_of(bits.y << 16);
      yv.v[3] = float_of(bits.y & 0xffff0000u);
    } else {
      yv.v[0] = float_of((uint32_t)x[i] << 16);
    }
    fvec_store<V>(y + i * V, yv);
  }
  for (int64_t i = nv * V + (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
    y[i] = float_of((uint32_t)x[i] << 16);
}

ch_status check(int64_t n, const char *what) {
  if (n < 0) return CH_FAIL(CH_ERR_INVALID, "%s: n = %lld", what, (long long)n);
  return CH_OK;
}

} // namespace

ch_status cuda_cast_f32_bf16(const ch_backend *be, uint16_t *y, const float *x, int64_t n) {
  CH_CHECK(check(n, "cast to bf16"));
  if (n == 0) return CH_OK;
  cudaStream_t s = cuda_ctx_of(be)->stream;
  if (cuda_aligned16(x) && aligned8(y))
    CH_LAUNCH(cuda_grid(n / 4 + 1, kThreads, 8), kThreads, 0, s, to_bf16<4>)(y, x, n);
  else
    CH_LAUNCH(cuda_grid(n, kThreads, 8), kThreads, 0, s, to_bf16<1>)(y, x, n);
  CH_CUDA_LAUNCHED("cast to bf16");
  return CH_OK;
}

ch_status cuda_cast_bf16_f32(const ch_backend *be, float *y, const uint16_t *x, int64_t n) {
  CH_CHECK(check(n, "cast from bf16"));
  if (n == 0) return CH_OK;
  cudaStream_t s = cuda_ctx_of(be)->stream;
  if (cuda_aligned16(y) && aligned8(x))
    CH_LAUNCH(cuda_grid(n / 4 + 1, kThreads, 8), kThreads, 0, s, from_bf16<4>)(y, x, n);
  else
    CH_LAUNCH(cuda_grid(n, kThreads, 8), kThreads, 0, s, from_bf16<1>)(y, x, n);
  CH_CUDA_LAUNCHED("cast from bf16");
  return CH_OK;
}
