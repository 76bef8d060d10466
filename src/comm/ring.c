/* cohort's ring collectives on MPI point-to-point. Every rank sends (n-1)/n of the payload per
 * reduce-scatter or allgather, to its right neighbour, so traffic is even across ranks and no
 * link is a hotspot (Open MPI's non-blocking reduce-scatter is a reduce to rank 0 plus a
 * scatter). Each step's part is cut into segments, all posted at once, so this rank reduces a
 * segment that arrived while the next ones are still on the wire. */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "comm/mpi_impl.h"
#include "cohort/tensor.h"

#define RING_TAG 0x5C0

/* Back-off of a poll that found nothing: yield for a while (a message is usually close),
 * then sleep for doubling times, 1 us up to 1 ms. A progress thread sharing a core with
 * compute must not wake every few microseconds for as long as a late peer keeps it waiting:
 * with 4 ranks on 2 cores, waiters polling every 50 us slowed the rank everyone waited for so
 * much that a DDP test took 20x longer now and then. The cap bounds what a waiter adds once
 * the peer is ready (at most 1 ms after at least as long idle); each collective step's wait
 * starts over from the yields. */
static void backoff(int *idle) {
  if (*idle < 16) {
    sched_yield();
  } else {
    int shift = *idle - 16 < 10 ? *idle - 16 : 10;
    struct timespec ts = {0, 1000L << shift}; /* 1 us .. 1.024 ms */
    nanosleep(&ts, NULL);
  }
  (*idle)++;
}

int comm_wait_req(MPI_Request *req, int poll) {
  if (!poll) return MPI_Wait(req, MPI_STATUS_IGNORE);
  int idle = 0;
  for (;;) {
    int flag = 0;
    int rc = MPI_Test(req, &flag, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS || flag) return rc;
    backoff(&idle);
  }
}

int p2p_wait_all(MPI_Request *reqs, int n, int poll) {
  for (int i = 0; i < n; i++) {
    int rc = comm_wait_req(&reqs[i], poll);
    if (rc != MPI_SUCCESS) return rc;
  }
  return MPI_SUCCESS;
}

static int mod(int a, int n) { return ((a % n) + n) % n; }

/* Number of segments of a part of `count` elements. */
int p2p_nsegs(size_t count, size_t seg) { return (int)((count + seg - 1) / seg); }

int p2p_post(int send, void *p, size_t count, size_t seg, size_t es, MPI_Datatype dt,
                int peer, MPI_Comm comm, MPI_Request *reqs, int *posted) {
  *posted = 0;
  for (size_t o = 0; o < count; o += seg) {
    int c = (int)(count - o < seg ? count - o : seg);
    char *q = (char *)p + o * es;
    int rc = send ? MPI_Isend(q, c, dt, peer, RING_TAG, comm, &reqs[*posted])
                  : MPI_Irecv(q, c, dt, peer, RING_TAG, comm, &reqs[*posted]);
    if (rc != MPI_SUCCESS) return rc;
    (*posted)++;
  }
  return MPI_SUCCESS;
}

int ring_reduce_scatter(MPI_Comm comm, int r, int n, const void *send, void *recv, size_t total,
                        ch_dtype t, ch_redop op, int poll, _Atomic uint64_t *sent) {
  const size_t es = ch_dtype_size(t);
  if (n == 1) {
    if (send && total) memcpy(recv, send, total * es);
    return MPI_SUCCESS;
  }
  const int inplace = send == NULL;
  const size_t maxpart = ch_part_count(total, n, 0), seg = SEGMENT_BYTES / es;
  const int maxseg = p2p_nsegs(maxpart, seg);
  const MPI_Datatype dt = comm_mpi_type(t);
  const int left = mod(r - 1, n), right = mod(r + 1, n);
  /* tmp receives; acc (not in place) holds the two partial sums in flight: the one being
   * sent and the one being accumulated. */
  char *tmp = malloc(maxpart * es + 1);
  char *acc = inplace ? NULL : malloc(2 * maxpart * es + 1);
  MPI_Request *reqs = malloc(sizeof(MPI_Request) * (2 * (size_t)maxseg + 1));
  int rc = MPI_ERR_NO_MEM;
  if (!tmp || (!inplace && !acc) || !reqs) goto out;
  rc = MPI_SUCCESS;
  const char *prev = NULL;
  for (int s = 0; s < n - 1 && rc == MPI_SUCCESS; s++) {
    const int ks = mod(r - s - 1, n), kr = mod(r - s - 2, n);
    const size_t cs = ch_part_count(total, n, ks), cr = ch_part_count(total, n, kr);
    const size_t offr = ch_part_offset(total, n, kr);
    const char *sp = prev ? prev
                     : inplace ? (char *)recv + ch_part_offset(total, n, ks) * es
                               : (const char *)send + ch_part_offset(total, n, ks) * es;
    char *ap = inplace ? (char *)recv + offr * es
               : s == n - 2 ? (char *)recv
                            : acc + (size_t)(s & 1) * maxpart * es;
    int nr = 0, ns = 0;
    rc = p2p_post(0, tmp, cr, seg, es, dt, left, comm, reqs, &nr);
    if (rc == MPI_SUCCESS) rc = p2p_post(1, (void *)sp, cs, seg, es, dt, right, comm, reqs + maxseg, &ns);
    if (rc != MPI_SUCCESS) break;
    atomic_fetch_add(sent, (uint64_t)(cs * es));
    /* This rank's own contribution to part kr, copied while the segments arrive. */
    if (!inplace && cr) memcpy(ap, (const char *)send + offr * es, cr * es);
    for (int i = 0; i < nr && rc == MPI_SUCCESS; i++) {
      rc = comm_wait_req(&reqs[i], poll);
      size_t o = (size_t)i * seg, c = cr - o < seg ? cr - o : seg;
      if (rc == MPI_SUCCESS) comm_reduce_local(ap + o * es, tmp + o * es, c, t, op);
    }
    if (rc == MPI_SUCCESS) rc = p2p_wait_all(reqs + maxseg, ns, poll);
    prev = ap;
  }
out:
  free(reqs);
  free(acc);
  free(tmp);
  return rc;
}

int ring_allgather(MPI_Comm comm, int r, int n, void *buf, size_t total, ch_dtype t, int poll,
                   _Atomic uint64_t *sent) {
  if (n == 1) return MPI_SUCCESS;
  const size_t es = ch_dtype_size(t), seg = SEGMENT_BYTES / es;
  const int maxseg = p2p_nsegs(ch_part_count(total, n, 0), seg);
  const MPI_Datatype dt = comm_mpi_type(t);
  const int left = mod(r - 1, n), right = mod(r + 1, n);
  MPI_Request *reqs = malloc(sizeof(MPI_Request) * (2 * (size_t)maxseg + 1));
  if (!reqs) return MPI_ERR_NO_MEM;
  int rc = MPI_SUCCESS;
  for (int s = 0; s < n - 1 && rc == MPI_SUCCESS; s++) {
    const int ks = mod(r - s, n), kr = mod(r - s - 1, n);
    const size_t cs = ch_part_count(total, n, ks);
    int nr = 0, ns = 0;
    rc = p2p_post(0, (char *)buf + ch_part_offset(total, n, kr) * es, ch_part_count(total, n, kr), seg,
              es, dt, left, comm, reqs, &nr);
    if (rc == MPI_SUCCESS)
      rc = p2p_post(1, (char *)buf + ch_part_offset(total, n, ks) * es, cs, seg, es, dt, right, comm,
                reqs + nr, &ns);
    if (rc != MPI_SUCCESS) break;
    atomic_fetch_add(sent, (uint64_t)(cs * es));
    rc = p2p_wait_all(reqs, nr + ns, poll);
  }
  free(reqs);
  return rc;
}
