/* TEMPORARY (until the emulated NCCL lands in kernels/cuda/emu/nccl.cpp): weak stand-ins for the
 * NCCL calls kernels/cuda/comm_nccl.cu makes, so that the emulated library links. Each fails with
 * ncclInvalidUsage ("emulation pending"); the real emulation's (strong) definitions replace these
 * at link time. Delete this file when it has landed. */
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>
#include <nccl.h>

#define EMU_WEAK extern "C" __attribute__((weak))
#define PENDING return ncclInvalidUsage

EMU_WEAK void emu_nccl_use_comm(MPI_Comm) {}
EMU_WEAK ncclResult_t ncclGetUniqueId(ncclUniqueId *) { PENDING; }
EMU_WEAK ncclResult_t ncclCommInitRank(ncclComm_t *, int, ncclUniqueId, int) { PENDING; }
EMU_WEAK ncclResult_t ncclCommDestroy(ncclComm_t) { PENDING; }
EMU_WEAK const char *ncclGetErrorString(ncclResult_t) { return "NCCL emulation pending"; }
EMU_WEAK const char *ncclGetLastError(ncclComm_t) { return "NCCL emulation pending"; }
EMU_WEAK ncclResult_t ncclGroupStart() { PENDING; }
EMU_WEAK ncclResult_t ncclGroupEnd() { PENDING; }
EMU_WEAK ncclResult_t ncclAllReduce(const void *, void *, size_t, ncclDataType_t, ncclRedOp_t,
                                    ncclComm_t, cudaStream_t) { PENDING; }
EMU_WEAK ncclResult_t ncclReduceScatter(const void *, void *, size_t, ncclDataType_t, ncclRedOp_t,
                                        ncclComm_t, cudaStream_t) { PENDING; }
EMU_WEAK ncclResult_t ncclAllGather(const void *, void *, size_t, ncclDataType_t, ncclComm_t,
                                    cudaStream_t) { PENDING; }
EMU_WEAK ncclResult_t ncclBroadcast(const void *, void *, size_t, ncclDataType_t, int, ncclComm_t,
                                    cudaStream_t) { PENDING; }
EMU_WEAK ncclResult_t ncclReduce(const void *, void *, size_t, ncclDataType_t, ncclRedOp_t, int,
                                 ncclComm_t, cudaStream_t) { PENDING; }
