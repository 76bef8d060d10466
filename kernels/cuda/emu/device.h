/* Device code on the host (C++ only; included by emu.h): CUDA's keywords and built-in
 * variables, barriers and warp-synchronous operations (fiber.cpp), atomics, the math intrinsics
 * the kernels use, and the launch.
 *
 * Why this works: every CUDA thread of a block is a fiber of the one OS thread that launched
 * the kernel, and fibers switch only at barriers (__syncthreads, __syncwarp, shuffles, votes).
 * So a function-local `static thread_local` is exactly one block's shared memory (blocks run
 * one after another), and a read-modify-write with no barrier inside is atomic with respect to
 * every other CUDA thread. The intrinsics must round as the GPU does: the _rn operations are
 * single IEEE operations, so everything including this header is compiled with
 * -ffp-contract=off (no a*b+c fused into an FMA the source did not ask for). */
#pragma once
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <tuple>
#include <type_traits>
#include <utility>

/* Keywords. cuda_runtime.h (without __CUDACC__) already turns __global__, __device__ and
 * __host__ into nothing and __forceinline__ into inline + always_inline; __shared__ and
 * __launch_bounds__ need host meanings. */
#undef __shared__
#define __shared__ static thread_local
#undef __launch_bounds__
#define __launch_bounds__(...)
#ifndef __global__
#define __global__
#endif
#ifndef __device__
#define __device__
#endif
#ifndef __host__
#define __host__
#endif

namespace emu {

struct thread_ids {
  uint3 tid;
};
struct block_ids {
  uint3 bid;
  dim3 bdim, gdim;
};
/* The running fiber's thread index and the running block's indices (fiber.cpp). */
extern thread_local const thread_ids *cur_thread;
extern thread_local block_ids cur_block;

/* ---- barriers and warp exchange (fiber.cpp); called from device code only ---- */

/* __syncthreads: waits until every thread of the block that has not exited is here. */
void sync_block();
/* __syncwarp(mask): waits until the lanes of `mask` that have not exited are here. */
void sync_warp(unsigned mask);
/* Every lane of `mask` deposits `mine` and meets the others; returns the value lane `src`
 * deposited (this lane's own `mine` when `src` is outside 0..31 or did not take part). */
uint64_t warp_exchange(unsigned mask, uint64_t mine, int src);
/* Bit l set when lane l of `mask` took part with a true predicate; *members (unless NULL) gets
 * the lanes that took part. */
unsigned warp_ballot(unsigned mask, bool pred, unsigned *members = nullptr);
/* This fiber's lane in its warp (threads numbered x fastest, then y, then z). */
unsigned lane_id();

template <class T>
T shfl_from(unsigned mask, T v, int src) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffle of <= 8 bytes");
  uint64_t bits = 0;
  memcpy(&bits, &v, sizeof v);
  bits = warp_exchange(mask, bits, src);
  T out;
  memcpy(&out, &bits, sizeof out);
  return out;
}

} // namespace emu

/* Built-in variables (read-only, as on the device). */
#define threadIdx (static_cast<const uint3 &>(::emu::cur_thread->tid))
#define blockIdx (static_cast<const uint3 &>(::emu::cur_block.bid))
#define blockDim (static_cast<const dim3 &>(::emu::cur_block.bdim))
#define gridDim (static_cast<const dim3 &>(::emu::cur_block.gdim))
#define warpSize 32

inline void __syncthreads() { emu::sync_block(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { emu::sync_warp(mask); }

/* Shuffles with CUDA's lane arithmetic: `width` (a power of two <= 32) splits the warp into
 * segments; a source outside the caller's segment yields the caller's own value. */
template <class T>
inline T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
  int lane = (int)emu::lane_id();
  return emu::shfl_from(mask, v, (lane & ~(width - 1)) + (src & (width - 1)));
}
template <class T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  int lane = (int)emu::lane_id(), src = lane ^ lane_mask;
  return emu::shfl_from(mask, v, (src & ~(width - 1)) == (lane & ~(width - 1)) ? src : lane);
}
template <class T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  int lane = (int)emu::lane_id();
  return emu::shfl_from(mask, v, (lane & (width - 1)) + (int)delta < width ? lane + (int)delta : lane);
}
template <class T>
inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  int lane = (int)emu::lane_id();
  return emu::shfl_from(mask, v, (lane & (width - 1)) >= (int)delta ? lane - (int)delta : lane);
}
inline unsigned __ballot_sync(unsigned mask, int pred) { return emu::warp_ballot(mask, pred != 0); }
inline int __any_sync(unsigned mask, int pred) { return emu::warp_ballot(mask, pred != 0) != 0; }
inline int __all_sync(unsigned mask, int pred) {
  unsigned members = 0;
  return emu::warp_ballot(mask, pred != 0, &members) == members;
}

/* ---- atomics: plain read-modify-writes (see the top of this file for why they are atomic) ---- */
#define EMU_ATOMIC_ADD(T)                                                                    \
  inline T atomicAdd(T *p, T v) { T old = *p; *p = old + v; return old; }                    \
  inline T atomicExch(T *p, T v) { T old = *p; *p = v; return old; }
EMU_ATOMIC_ADD(int)
EMU_ATOMIC_ADD(unsigned)
EMU_ATOMIC_ADD(unsigned long long)
EMU_ATOMIC_ADD(float)
EMU_ATOMIC_ADD(double)
#undef EMU_ATOMIC_ADD
#define EMU_ATOMIC_INT(T)                                                                    \
  inline T atomicSub(T *p, T v) { T old = *p; *p = old - v; return old; }                    \
  inline T atomicMax(T *p, T v) { T old = *p; *p = old > v ? old : v; return old; }          \
  inline T atomicMin(T *p, T v) { T old = *p; *p = old < v ? old : v; return old; }          \
  inline T atomicAnd(T *p, T v) { T old = *p; *p = old & v; return old; }                    \
  inline T atomicOr(T *p, T v) { T old = *p; *p = old | v; return old; }                     \
  inline T atomicCAS(T *p, T cmp, T v) { T old = *p; if (old == cmp) *p = v; return old; }
EMU_ATOMIC_INT(int)
EMU_ATOMIC_INT(unsigned)
EMU_ATOMIC_INT(unsigned long long)
#undef EMU_ATOMIC_INT

/* ---- math intrinsics: IEEE single operations, rounded to nearest ---- */
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __frcp_rn(float a) { return 1.0f / a; }
inline float __fsqrt_rn(float a) { return sqrtf(a); }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dmul_rn(double a, double b) { return a * b; }
/* The fast approximations: the GPU's are a few ulp off; the host's accurate ones stand in. */
inline float __expf(float a) { return expf(a); }
inline float __logf(float a) { return logf(a); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __saturatef(float a) { return a < 0.0f ? 0.0f : (a > 1.0f ? 1.0f : a); }
inline float rsqrtf(float a) { return 1.0f / sqrtf(a); }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __clz(int x) { return x ? __builtin_clz((unsigned)x) : 32; }
inline int __ffs(int x) { return __builtin_ffs(x); }
/* Reinterpretations of the bits. */
inline float __uint_as_float(unsigned x) { float f; memcpy(&f, &x, 4); return f; }
inline float __int_as_float(int x) { float f; memcpy(&f, &x, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned x; memcpy(&x, &f, 4); return x; }
inline int __float_as_int(float f) { int x; memcpy(&x, &f, 4); return x; }
inline double __longlong_as_double(long long x) { double d; memcpy(&d, &x, 8); return d; }
inline long long __double_as_longlong(double d) { long long x; memcpy(&x, &d, 8); return x; }
template <class T>
inline T __ldg(const T *p) { return *p; }

/* ---- the launch ---- */
namespace emu {

struct launch_cfg {
  dim3 grid, block;
  size_t smem;
  cudaStream_t stream;
  const char *name;
};
/* False (and cudaGetLastError reports why, as CUDA's launch would) when c cannot run: more
 * than 1024 threads or a zero dimension, too much dynamic shared memory, a bad stream. */
bool launch_check(const launch_cfg &c);
/* Runs body(arg) once per CUDA thread of c's grid, block after block, each thread a fiber;
 * returns when the grid is done. */
void launch_run(const launch_cfg &c, void (*body)(void *), void *arg);

/* The copies a kernel receives: the kernel's own parameter types when it is a function, the
 * arguments' types when it is the generic wrapper CH_LAUNCH builds. */
template <class F, class... A>
struct param_tuple {
  using type = std::tuple<std::decay_t<A>...>;
};
template <class... P, class... A>
struct param_tuple<void (*)(P...), A...> {
  using type = std::tuple<std::decay_t<P>...>;
};

template <class F>
class launcher {
 public:
  launcher(const launch_cfg &c, F f) : c_(c), f_(f) {}
  /* Copies the arguments once (as CUDA copies them to the parameter buffer) and runs the grid;
   * an invalid configuration records the error and runs nothing. */
  template <class... A>
  void operator()(A &&...a) const {
    if (!launch_check(c_)) return;
    using T = typename param_tuple<F, A...>::type;
    struct call {
      F f;
      T args;
    } k{f_, T(std::forward<A>(a)...)};
    launch_run(c_, [](void *p) { auto *c = static_cast<call *>(p); std::apply(c->f, c->args); }, &k);
  }

 private:
  launch_cfg c_;
  F f_;
};

} // namespace emu

/* kernel<<<grid, block, smem, stream>>>(args...) is emu_launch(grid, block, smem, stream,
 * kernel)(args...); `kernel` is a __global__ function or any callable (CH_LAUNCH passes a
 * generic lambda so that template kernels deduce their parameters from the arguments). */
template <class F>
inline emu::launcher<F> emu_launch(dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                                   F kernel, const char *name = "kernel") {
  return emu::launcher<F>(emu::launch_cfg{grid, block, smem, stream, name}, kernel);
}

/* The running block's dynamic shared memory (the launch's smem bytes, 16-aligned), filled with
 * 0xCD bytes at the start of each block so that reads before writes show. */
void *emu_dynamic_shared();
