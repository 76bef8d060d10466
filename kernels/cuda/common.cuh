/* Shared by the kernels/cuda sources: CUDA errors as ch_status, launch sizes, warp reductions,
 * vector loads. */
#pragma once
#ifdef COHORT_CUDA_EMU
#include "kernels/cuda/emu/emu.h" /* host emulation: must precede the CUDA headers */
#endif
#include <cuda_runtime.h>
#include <stdint.h>

#include "cohort/cuda.h"

/* A failed CUDA call as a ch_status with the message "what: CUDA's error string (its name)"
 * (kernels/cuda/device.cu). */
ch_status cuda_fail(cudaError_t e, const char *file, int line, const char *what);

#define CH_CUDA_TRY(call, what)                                               \
  do {                                                                        \
    cudaError_t e_ = (call);                                                  \
    if (e_ != cudaSuccess) return cuda_fail(e_, __FILE__, __LINE__, what);     \
  } while (0)

/* After a kernel launch: a bad launch configuration, or a fault left by earlier work. */
#define CH_CUDA_LAUNCHED(name) CH_CUDA_TRY(cudaGetLastError(), "launch of " name)

/* One launch syntax for nvcc and the host emulation (kernels/cuda/emu): the kernel comes last so
 * that a template's commas need no parentheses:
 *   CH_LAUNCH(grid, block, smem_bytes, stream, my_kernel<4>)(arg, ...);
 * Dynamic shared memory (the launch's smem_bytes) is declared inside a kernel with
 *   CH_DYNAMIC_SHARED(float, part);
 * Static __shared__ arrays are written as usual. */
#ifdef COHORT_CUDA_EMU
/* A generic lambda, not the kernel's address: a template kernel may still deduce parameters
 * (map_kernel<4, NIN> deduces its functor type) from the arguments, and a kernel held in a
 * variable (cast.cu) is captured. */
#define CH_LAUNCH(grid, block, smem, stream, ...)                                              \
  emu_launch((grid), (block), (smem), (stream), [=](auto &&...a_) { __VA_ARGS__(a_...); },      \
             #__VA_ARGS__)
#define CH_DYNAMIC_SHARED(T, name) T *name = static_cast<T *>(emu_dynamic_shared())
#else
#define CH_LAUNCH(grid, block, smem, stream, ...) __VA_ARGS__<<<(grid), (block), (smem), (stream)>>>
#define CH_DYNAMIC_SHARED(T, name) extern __shared__ __align__(16) T name[]
#endif

/* Blocks for a grid-stride loop over `work` items, `per_block` items per block per trip: as
 * many as the work needs, capped at `per_sm` blocks per multiprocessor (enough to hide latency;
 * more only adds scheduling). */
static inline int cuda_grid(int64_t work, int per_block, int per_sm) {
  int dev = 0, sms = 0;
  if (cudaGetDevice(&dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess || sms <= 0)
    sms = 132; /* the launch that follows reports the error */
  int64_t need = (work + per_block - 1) / per_block, cap = (int64_t)sms * per_sm;
  return (int)(need < cap ? (need > 0 ? need : 1) : cap);
}

static inline bool cuda_aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

/* Butterfly reductions over the 32 lanes of a warp; every lane gets the result. */
__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

/* V consecutive floats moved by one load or store instruction (V = 4: 16 bytes, so the address
 * must be 16-byte aligned; V = 1: any float). Kernels are templated on V and the host picks 4
 * when the pointers and row lengths allow it. */
template <int V>
struct alignas(4 * V) fvec {
  float v[V];
};
template <int V>
__device__ __forceinline__ fvec<V> fvec_load(const float *p) {
  return *reinterpret_cast<const fvec<V> *>(p);
}
template <int V>
__device__ __forceinline__ void fvec_store(float *p, const fvec<V> &x) {
  *reinterpret_cast<fvec<V> *>(p) = x;
}
