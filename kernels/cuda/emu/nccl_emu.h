/* The emulated NCCL's one addition to NCCL's API (kernels/cuda/emu/nccl.cpp). NCCL's ranks
 * find each other through the unique id; the emulation's ranks are MPI ranks, so
 * ncclCommInitRank needs the MPI communicator the id was broadcast on. The caller names it
 * first; outside the emulation this is a no-op macro, so calling code stays the same:
 *
 *   emu_nccl_use_comm(mpi_comm);
 *   ncclCommInitRank(&comm, nranks, id, rank);   // collective over mpi_comm
 */
#pragma once
#ifdef COHORT_CUDA_EMU
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1 /* the C API only, also from C++ */
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>
#ifdef __cplusplus
extern "C" {
#endif
/* Names the MPI communicator the next ncclCommInitRank calls of this process run over (each
 * one duplicates it). Until called, MPI_COMM_WORLD. */
void emu_nccl_use_comm(MPI_Comm comm);
#ifdef __cplusplus
}
#endif
#else
#define emu_nccl_use_comm(comm) ((void)(comm))
#endif
