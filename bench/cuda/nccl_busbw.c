/* Allreduce bus bandwidth on the GPUs of one node: raw ncclAllReduce against cohort's device
 * group (ch_device_open + ch_device_group: the NCCL backend, kernels/cuda/comm_nccl.cu, with its
 * communication stream and event ordering), same buffer sizes, same timing.
 *
 *   mpirun -n NGPU nccl_busbw [--iters I]      (one GPU per rank; exits 77 with fewer than 2)
 *
 * fp32 SUM, in place, 1 MiB .. 1 GiB (x4). Each size: 3 warm-up calls, then I (default 20)
 * back to back; time = host wall time from a synchronised start to a synchronised end, / I
 * (cohort's calls are blocking: stream-ordered, the host does not wait, so this measures the
 * collectives, not launch gaps). Bus bandwidth, as nccl-tests defines it for allreduce:
 * busbw = 2 (n - 1) / n * bytes / time (the bytes each rank must send and receive over its
 * slowest link in a ring). Rank 0 prints "busbw BYTES RAW_GBPS COHORT_GBPS" per size, then a
 * table. */
#include <mpi.h>
#include <nccl.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/comm.h"
#include "cohort/device.h"
#include "cohort/runtime.h"

#define FAIL(...)                                                                    \
  do {                                                                               \
    fprintf(stderr, "nccl_busbw: " __VA_ARGS__);                                     \
    fputc('\n', stderr);                                                             \
    MPI_Abort(MPI_COMM_WORLD, 1);                                                    \
  } while (0)
#define CUDA_OK(call)                                                                \
  do {                                                                               \
    cudaError_t e_ = (call);                                                         \
    if (e_ != cudaSuccess) FAIL("%s: %s", #call, cudaGetErrorString(e_));            \
  } while (0)
#define NCCL_OK(call)                                                                \
  do {                                                                               \
    ncclResult_t r_ = (call);                                                        \
    if (r_ != ncclSuccess) FAIL("%s: %s", #call, ncclGetErrorString(r_));            \
  } while (0)
#define TRY_CH(call)                                                                  \
  do {                                                                               \
    ch_status s_ = (call);                                                           \
    if (s_ != CH_OK) FAIL("%s: %s", #call, ch_error_message());                      \
  } while (0)

#define MIB ((size_t)1 << 20)
#define NSIZES 6 /* 1, 4, 16, 64, 256, 1024 MiB */

int main(int argc, char **argv) {
  int iters = 20;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--iters") && i + 1 < argc) iters = atoi(argv[++i]);
    else {
      fprintf(stderr, "usage: mpirun -n NGPU nccl_busbw [--iters I]\n");
      return 2;
    }
  }
  if (iters < 1) iters = 1;
  ch_runtime *rt;
  if (ch_runtime_init(&argc, &argv, NULL, &rt) != CH_OK) return 1;
  int ndev = 0;
  if (cudaGetDeviceCount(&ndev) != cudaSuccess) ndev = 0;
  if (rt->world_size < 2 || ndev < rt->local_size) {
    if (rt->world_rank == 0)
      printf("nccl_busbw: needs 2+ ranks with one GPU each (%d ranks, %d GPUs): skipped\n",
             rt->world_size, ndev);
    ch_runtime_finalize();
    return 77;
  }
  const int n = rt->world_size, me = rt->world_rank;
  const size_t max_bytes = MIB << (2 * (NSIZES - 1));

  /* raw NCCL on GPU local_rank */
  CUDA_OK(cudaSetDevice(rt->local_rank));
  ncclUniqueId id;
  if (me == 0) NCCL_OK(ncclGetUniqueId(&id));
  MPI_Bcast(&id, (int)sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
  ncclComm_t comm;
  NCCL_OK(ncclCommInitRank(&comm, n, id, me));
  cudaStream_t st;
  CUDA_OK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  void *raw;
  CUDA_OK(cudaMalloc(&raw, max_bytes));
  CUDA_OK(cudaMemset(raw, 0, max_bytes));

  /* cohort: the device of device=cuda (the same GPU, by local rank) and its group */
  ch_device_cfg cfg = {CH_DEVICE_CUDA, CH_PRECISION_FP32};
  ch_device *dev;
  TRY_CH(ch_device_open(&cfg, &dev));
  const ch_backend *be = ch_device_backend(dev);
  ch_group world, g;
  TRY_CH(ch_group_world(&world));
  TRY_CH(ch_device_group(dev, &world, &g));
  void *buf;
  TRY_CH(be->ops->alloc(be, max_bytes, &buf));
  TRY_CH(be->ops->memset(be, buf, 0, max_bytes));

  double bw[NSIZES][2];
  for (int s = 0; s < NSIZES; s++) {
    size_t bytes = MIB << (2 * s), count = bytes / 4;
    for (int which = 0; which < 2; which++) {
      double t0 = 0;
      for (int i = -3; i < iters; i++) {
        if (i == 0) { /* warm-up done: a common, synchronised start */
          if (which == 0) CUDA_OK(cudaStreamSynchronize(st));
          else TRY_CH(be->ops->sync(be));
          MPI_Barrier(MPI_COMM_WORLD);
          t0 = MPI_Wtime();
        }
        if (which == 0) NCCL_OK(ncclAllReduce(raw, raw, count, ncclFloat32, ncclSum, comm, st));
        else TRY_CH(ch_comm_allreduce(&g, buf, count, CH_F32, CH_SUM, NULL));
      }
      if (which == 0) CUDA_OK(cudaStreamSynchronize(st));
      else TRY_CH(be->ops->sync(be));
      double t = (MPI_Wtime() - t0) / iters, tmax = 0;
      MPI_Allreduce(&t, &tmax, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD); /* the slowest rank */
      bw[s][which] = 2.0 * (n - 1) / n * (double)bytes / tmax / 1e9;
    }
    if (me == 0) printf("busbw %zu %.1f %.1f\n", bytes, bw[s][0], bw[s][1]);
  }
  if (me == 0) {
    printf("\nallreduce bus bandwidth, %d GPUs, fp32 sum in place (GB/s = 1e9 B/s; busbw = "
           "2(n-1)/n bytes/time; mean of %d)\n", n, iters);
    printf("| size | raw ncclAllReduce | cohort group | cohort / raw |\n|---:|---:|---:|---:|\n");
    for (int s = 0; s < NSIZES; s++)
      printf("| %zu MiB | %.1f | %.1f | %.2f |\n", (MIB << (2 * s)) / MIB, bw[s][0], bw[s][1],
             bw[s][1] / bw[s][0]);
  }
  be->ops->free(be, buf);
  ch_group_destroy(&g);
  ch_group_destroy(&world);
  ch_device_close(dev);
  cudaFree(raw);
  cudaStreamDestroy(st);
  ncclCommDestroy(comm);
  ch_runtime_finalize();
  return 0;
}
