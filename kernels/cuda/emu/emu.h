/* Host emulation of CUDA (docs/cuda-emulation.md): the same kernels/cuda .cu sources, built
 * with the host C++ compiler (-DCOHORT_CUDA_EMU) into libcohort_cuda_emu, run on the CPU. Each
 * CUDA thread of a block runs as a fiber; blocks run one after another. The CUDA, cuBLAS,
 * cuBLASLt and NCCL headers are the real ones (they are plain C/C++ declarations); this folder
 * implements the functions cohort calls.
 *
 * This header is included by kernels/cuda/common.cuh before any CUDA header when
 * COHORT_CUDA_EMU is defined. It gives device code its keywords and built-ins and host code
 * the launch. INTERFACE (shared with the rest of kernels/cuda; keep these names):
 *   emu_launch(grid, block, smem_bytes, stream, kernel)(args...)  -- what CH_LAUNCH expands to
 *   emu_dynamic_shared()                                          -- CH_DYNAMIC_SHARED
 *   emu_host_access_begin() / emu_host_access_end()               -- see "Device memory" below
 *   emu_nccl_use_comm(MPI_Comm)                                   -- see "NCCL" below
 *
 * Device memory: cudaMalloc returns memory the host cannot touch outside a kernel or an
 * emulated library call (it is PROT_NONE otherwise), so a host dereference of a device pointer
 * faults here as it would on a GPU. Emulated library code (cuBLAS, NCCL over MPI, copies) wraps
 * its host-side access in emu_host_access_begin/end (nesting allowed). COHORT_CUDA_EMU_GUARD=0
 * in the environment leaves device memory readable by the host (for debugging).
 *
 * NCCL: ncclCommInitRank needs the MPI communicator the unique id was broadcast on; the caller
 * names it first with emu_nccl_use_comm (a no-op macro outside the emulation).
 *
 * Files: device.h (keywords, built-ins, intrinsics, warp ops, launch; C++ only), fiber.cpp
 * (threads as fibers, barriers, the launch), memory.cpp (device memory and its guard),
 * runtime.cpp (the CUDA runtime API), errors.cpp (error names and strings). */
#pragma once
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif
/* Opens (nestable) a window in which the calling process may read and write device memory
 * from host code; emu_host_access_end closes it. Thread-safe; the window is process-wide. */
void emu_host_access_begin(void);
void emu_host_access_end(void);
/* 1 when p .. p + bytes lies inside one live cudaMalloc allocation (emulated library code uses
 * it to check its arguments as the real library would). */
int emu_is_device_range(const void *p, size_t bytes);
#ifdef __cplusplus
}
#endif

#ifdef __cplusplus
#include "kernels/cuda/emu/device.h"
#endif
