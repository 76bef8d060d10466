/* Where a job computes: `device: cpu | cuda` and `precision: fp32 | bf16` (docs/cuda.md).
 *
 * ch_device_open gives the backend (cohort/backend.h) that models and optimizers are created on,
 * and ch_device_group the process group their buffers are reduced over (cohort/comm.h): on the
 * CPU the host group itself, on CUDA a NCCL group over the same ranks whose collectives take
 * device memory (and host memory too: those go to the MPI parent).
 *
 * CUDA lives in its own library, loaded at run time, so libcohort never links the CUDA runtime
 * and a CPU-only node runs the same binary: libcohort_cuda.so beside libcohort (or the file named
 * by COHORT_CUDA_LIBRARY), or, with COHORT_CUDA_EMULATE=1, libcohort_cuda_emu.so, the same
 * kernels on the host emulation (kernels/cuda/emu) that CI tests them with. */
#pragma once
#include "cohort/backend.h"
#include "cohort/comm.h"
#include "cohort/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ch_device_kind { CH_DEVICE_CPU = 0, CH_DEVICE_CUDA } ch_device_kind;

/* Arithmetic of the GEMMs: fp32 throughout, or bf16 operands with fp32 accumulation (the
 * parameters, optimizer state, activations between ops and the loss stay fp32). */
typedef enum ch_precision { CH_PRECISION_FP32 = 0, CH_PRECISION_BF16 } ch_precision;

typedef struct ch_device_cfg {
  int kind;      /* ch_device_kind */
  int precision; /* ch_precision */
} ch_device_cfg;

typedef struct ch_device ch_device;

/* Opens this rank's device: CUDA takes GPU local_rank of the node (ch_runtime's local rank) and
 * fails, naming both counts, when the node has fewer GPUs than ranks; it then binds the rank to
 * the cores nearest its GPU (hwloc). Errors: CH_ERR_UNSUPPORTED when the CUDA library or a GPU
 * is missing, with the reason; CH_ERR_CONFIG for precision=bf16 on a CPU without AVX-512 BF16
 * (device=cpu then runs cohort's bf16 GEMM, docs/cpu-bf16.md). Free with ch_device_close. */
CH_API ch_status ch_device_open(const ch_device_cfg *cfg, ch_device **out);
CH_API void ch_device_close(ch_device *d);
/* The backend to create models and optimizers on (owned by the device). */
CH_API const ch_backend *ch_device_backend(const ch_device *d);
/* "cpu", "cpu bf16", "cuda" or "cuda (emulated)": for progress lines and errors. */
CH_API const char *ch_device_describe(const ch_device *d);
/* A group over `host`'s ranks for the collectives of device buffers (strategies, tensor
 * parallelism). Collective over `host`; free with ch_group_destroy before closing the device. */
CH_API ch_status ch_device_group(ch_device *d, const ch_group *host, ch_group *out);

#ifdef __cplusplus
}
#endif
