/* Deterministic reductions in double, shared by sumsq (reduce.cu) and the cross-entropy loss
 * (xent.cu). "Deterministic": the order of every addition is fixed by the launch shape, never
 * by which thread or block happens to finish first (no atomics), so the same inputs give the
 * same bits on every run. */
#pragma once
#include "kernels/cuda/common.cuh"

/* Threads of every block that calls block_sum_double (a power of two: the tree halves it). */
constexpr int kReduceThreads = 256;

/* Sum over the block of one double per thread, as a fixed binary tree through `sh`
 * (kReduceThreads doubles of shared memory); every thread gets the result. Call from all
 * threads of a block of kReduceThreads. */
__device__ __forceinline__ double block_sum_double(double v, double *sh) {
  sh[threadIdx.x] = v;
  __syncthreads();
  for (int half = kReduceThreads / 2; half > 0; half >>= 1) {
    if ((int)threadIdx.x < half) sh[threadIdx.x] += sh[threadIdx.x + half];
    __syncthreads();
  }
  double total = sh[0];
  __syncthreads(); /* sh may be reused by the caller */
  return total;
}

/* *out = sum of parts[0..n) (accumulate: *out += it), summed by one block in a fixed order;
 * out and parts are device memory, enqueued on s. */
ch_status cuda_sum_doubles(double *out, const double *parts, int64_t n, bool accumulate,
                           cudaStream_t s);
