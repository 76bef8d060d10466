/* What the emulation's own files share (not for kernels): the emulated device's limits, the
 * last-error slot, device memory bookkeeping, stream handles. */
#pragma once
#include <stddef.h>

#include "kernels/cuda/emu/emu.h"

namespace emu {

/* An H100-like device, except 4 multiprocessors (so that grid-stride loops really loop). */
constexpr int kMultiprocessors = 4;
constexpr int kMaxThreadsPerBlock = 1024;
constexpr size_t kSharedPerBlock = 48 << 10;        /* without opt-in */
constexpr size_t kSharedPerBlockOptin = 227 << 10;  /* cudaFuncAttributeMaxDynamicSharedMemorySize */
constexpr size_t kDeviceMemory = (size_t)64 << 30;  /* reported per device; all share one pool */
constexpr size_t kDeviceAlign = 256;                /* cudaMalloc's alignment */

/* Records e as this thread's last error (cudaGetLastError) unless it is cudaSuccess; returns
 * e, so runtime functions end with `return record(...)`. */
cudaError_t record(cudaError_t e);
/* The dynamic shared memory a launch may ask for: 48 KiB, or more once cudaFuncSetAttribute
 * raised it (for any kernel: the emulation cannot tell launched kernels apart). */
size_t dynamic_shared_limit();
/* True for the streams a launch or copy may use: 0, the legacy and per-thread default streams,
 * and live streams of cudaStreamCreate*. */
bool stream_valid(cudaStream_t s);
/* The device cudaSetDevice chose for this thread. */
int current_device();

/* ---- device memory (memory.cpp) ---- */
/* Allocates `bytes` of device memory for `device` (256-aligned, contents 0xFF bytes: NaN as
 * float, so reads of never-written memory show); NULL when the pool is exhausted. */
void *device_alloc(size_t bytes, int device);
/* Frees a device_alloc pointer; false when p is not the start of a live allocation. */
bool device_free(void *p);
/* The allocation containing p: its device (>= 0), or -1 when p is not device memory. */
int device_of(const void *p);
/* Bytes allocated now (for cudaMemGetInfo). */
size_t device_used();

} // namespace emu
