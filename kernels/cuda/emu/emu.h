/* Host emulation of CUDA (docs/cuda.md, "Emulation"): the same kernels/cuda/*.cu sources, built
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
 * its host-side access in emu_host_access_begin/end (nesting allowed).
 *
 * NCCL: ncclCommInitRank needs the MPI communicator the unique id was broadcast on; the caller
 * names it first with emu_nccl_use_comm (a no-op macro outside the emulation). */
#pragma once
#ifdef __cplusplus
extern "C" {
#endif
void emu_host_access_begin(void);
void emu_host_access_end(void);
#ifdef __cplusplus
}
#endif
