/* The hierarchical allreduce, for groups whose ranks share nodes: the ranks of a node reduce
 * into the node's leader (its first rank), the leaders run the ring allreduce across nodes,
 * and each leader sends the result back inside its node. Only the leaders use the network, and
 * each sends the ring's even share of the payload; the node steps run on point-to-point over
 * shared memory (Open MPI's vader, MPICH's nemesis shm) in segments all posted at once, so a
 * progress thread needs few scheduling rounds (MPI's non-blocking reduce, driven by polling,
 * took seconds for 16 MiB with four ranks on two cores: one round per internal segment).
 * Node traffic is not counted in the group's bytes_sent (it is not network traffic). */
#include <stdlib.h>

#include "comm/mpi_impl.h"
#include "cohort/tensor.h"

/* Node reduce into local rank 0: it receives each other rank's whole buffer in turn and
 * reduces segment by segment as they arrive. */
static int node_reduce(MPI_Comm node, int nrank, int nsize, void *buf, size_t count, ch_dtype t,
                       ch_redop op, int poll) {
  const size_t es = ch_dtype_size(t), seg = SEGMENT_BYTES / es;
  const MPI_Datatype dt = comm_mpi_type(t);
  MPI_Request *reqs = malloc(sizeof(MPI_Request) * ((size_t)p2p_nsegs(count, seg) + 1));
  char *tmp = nrank == 0 ? malloc(count * es + 1) : NULL;
  int rc = MPI_ERR_NO_MEM, n = 0;
  if (!reqs || (nrank == 0 && !tmp)) goto out;
  if (nrank != 0) {
    rc = p2p_post(1, buf, count, seg, es, dt, 0, node, reqs, &n);
    if (rc == MPI_SUCCESS) rc = p2p_wait_all(reqs, n, poll);
    goto out;
  }
  rc = MPI_SUCCESS;
  for (int p = 1; p < nsize && rc == MPI_SUCCESS; p++) {
    rc = p2p_post(0, tmp, count, seg, es, dt, p, node, reqs, &n);
    for (int i = 0; i < n && rc == MPI_SUCCESS; i++) {
      rc = comm_wait_req(&reqs[i], poll);
      size_t o = (size_t)i * seg, c = count - o < seg ? count - o : seg;
      if (rc == MPI_SUCCESS) comm_reduce_local((char *)buf + o * es, tmp + o * es, c, t, op);
    }
  }
out:
  free(tmp);
  free(reqs);
  return rc;
}

/* Node broadcast from local rank 0. */
static int node_bcast(MPI_Comm node, int nrank, int nsize, void *buf, size_t count, ch_dtype t,
                      int poll) {
  const size_t es = ch_dtype_size(t), seg = SEGMENT_BYTES / es;
  const MPI_Datatype dt = comm_mpi_type(t);
  const int per = p2p_nsegs(count, seg);
  MPI_Request *reqs = malloc(sizeof(MPI_Request) * ((size_t)per * (size_t)nsize + 1));
  if (!reqs) return MPI_ERR_NO_MEM;
  int rc = MPI_SUCCESS, n = 0, total = 0;
  if (nrank != 0) {
    rc = p2p_post(0, buf, count, seg, es, dt, 0, node, reqs, &total);
  } else {
    for (int p = 1; p < nsize && rc == MPI_SUCCESS; p++) {
      rc = p2p_post(1, buf, count, seg, es, dt, p, node, reqs + total, &n);
      total += n;
    }
  }
  if (rc == MPI_SUCCESS) rc = p2p_wait_all(reqs, total, poll);
  free(reqs);
  return rc;
}

int hier_allreduce(comm_set *cs, void *buf, size_t count, ch_dtype t, ch_redop op, int poll,
                   _Atomic uint64_t *sent) {
  int nrank = 0, nsize = 1, rc = MPI_SUCCESS;
  MPI_Comm_rank(cs->node, &nrank);
  MPI_Comm_size(cs->node, &nsize);
  if (nsize > 1) rc = node_reduce(cs->node, nrank, nsize, buf, count, t, op, poll);
  if (rc == MPI_SUCCESS && cs->leaders != MPI_COMM_NULL)
    rc = ring_allreduce(cs->leaders, buf, count, t, op, poll, sent);
  if (rc == MPI_SUCCESS && nsize > 1) rc = node_bcast(cs->node, nrank, nsize, buf, count, t, poll);
  return rc;
}
