/* One collective run to completion on a communicator set, by the main thread (blocking calls)
 * or the progress thread (non-blocking ones, `poll`). Chooses the algorithm: MPI's own
 * collectives below COHORT_COMM_RING_MIN bytes (latency-bound: MPI's tree/recursive-doubling
 * algorithms take log n steps where the ring takes 2(n-1)), cohort's ring above, and for an
 * allreduce over several nodes holding several ranks each, the hierarchical allreduce (reduce
 * inside the node through shared memory, ring across node leaders, broadcast back). */
#include <stdlib.h>
#include <string.h>

#include "comm/mpi_impl.h"
#include "cohort/tensor.h"

/* Measured crossover on one host (bench/allreduce.sh, bench/RESULTS.md): below this MPI's
 * latency-optimised algorithms win. */
#define RING_MIN_DEFAULT ((size_t)64 << 10)

static size_t env_size(const char *name, size_t dflt) {
  const char *v = getenv(name);
  if (!v || !*v) return dflt;
  char *end = NULL;
  unsigned long long x = strtoull(v, &end, 10);
  return end && *end == '\0' ? (size_t)x : dflt;
}

comm_algo coll_algo(void) {
  static int algo = -1; /* read once: every call of a job must choose alike */
  if (algo < 0) {
    const char *v = getenv("COHORT_COMM_ALGO");
    algo = !v || !*v || !strcmp(v, "auto") ? ALGO_AUTO
           : !strcmp(v, "mpi")             ? ALGO_MPI
           : !strcmp(v, "ring")            ? ALGO_RING
                                           : ALGO_AUTO;
  }
  return (comm_algo)algo;
}

static size_t ring_min(void) {
  static size_t v = (size_t)-1;
  if (v == (size_t)-1) v = env_size("COHORT_COMM_RING_MIN", RING_MIN_DEFAULT);
  return v;
}

/* Whether a payload of `bytes` goes through cohort's ring (the decision depends only on the
 * call's arguments, so every rank takes the same path). */
static int use_ring(size_t bytes) {
  comm_algo a = coll_algo();
  return a == ALGO_RING || (a == ALGO_AUTO && bytes >= ring_min());
}

/* Makes the node and leader communicators of `cs` (collective over cs->comm). Nodes are the
 * shared-memory domains, or with COHORT_COMM_NODE_SIZE=k (tests on one machine) runs of k
 * consecutive ranks. */
static int hier_setup(comm_set *cs, int rank) {
  cs->hier_ready = 1;
  cs->node = cs->leaders = MPI_COMM_NULL;
  size_t fake = env_size("COHORT_COMM_NODE_SIZE", 0);
  int rc = fake > 0 ? MPI_Comm_split(cs->comm, (int)((size_t)rank / fake), rank, &cs->node)
                    : MPI_Comm_split_type(cs->comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL,
                                          &cs->node);
  if (rc != MPI_SUCCESS) return rc;
  int nrank = 0, nsize = 1;
  MPI_Comm_rank(cs->node, &nrank);
  MPI_Comm_size(cs->node, &nsize);
  rc = MPI_Comm_split(cs->comm, nrank == 0 ? 0 : MPI_UNDEFINED, rank, &cs->leaders);
  if (rc != MPI_SUCCESS) return rc;
  int mine[2] = {nsize, nrank == 0}, all[2] = {0, 0}; /* largest node, number of nodes */
  int maxnode = 0;
  rc = MPI_Allreduce(&mine[0], &all[0], 1, MPI_INT, MPI_MAX, cs->comm);
  if (rc == MPI_SUCCESS) rc = MPI_Allreduce(&mine[1], &all[1], 1, MPI_INT, MPI_SUM, cs->comm);
  maxnode = all[0];
  cs->hier = rc == MPI_SUCCESS && all[1] > 1 && maxnode > 1;
  return rc;
}

void comm_set_init(comm_set *cs, MPI_Comm comm) {
  *cs = (comm_set){.comm = comm, .node = MPI_COMM_NULL, .leaders = MPI_COMM_NULL};
}

int comm_set_prepare(comm_set *cs, int rank) {
  return cs->hier_ready ? MPI_SUCCESS : hier_setup(cs, rank);
}

void comm_set_free(comm_set *cs) {
  if (cs->leaders != MPI_COMM_NULL) MPI_Comm_free(&cs->leaders);
  if (cs->node != MPI_COMM_NULL) MPI_Comm_free(&cs->node);
  if (cs->comm != MPI_COMM_NULL) MPI_Comm_free(&cs->comm);
  cs->hier_ready = 0;
}

/* Ring allreduce: reduce-scatter in place, then allgather. */
int ring_allreduce(MPI_Comm comm, void *buf, size_t count, ch_dtype t, ch_redop op, int poll,
                   _Atomic uint64_t *sent) {
  int r = 0, n = 1;
  MPI_Comm_rank(comm, &r);
  MPI_Comm_size(comm, &n);
  int rc = ring_reduce_scatter(comm, r, n, NULL, buf, count, t, op, poll, sent);
  return rc == MPI_SUCCESS ? ring_allgather(comm, r, n, buf, count, t, poll, sent) : rc;
}

/* Counts and displacements of the 1/n partition for MPI's v-collectives (displs = counts+n). */
static int *partition(size_t total, int n) {
  int *c = malloc(sizeof(int) * 2 * (size_t)n);
  if (c)
    for (int r = 0; r < n; r++) {
      c[r] = (int)ch_part_count(total, n, r);
      c[n + r] = (int)ch_part_offset(total, n, r);
    }
  return c;
}

int coll_start_mpi(MPI_Comm comm, int rank, int size, const coll_args *a, int nonblocking,
                   MPI_Request *rq, int **counts_out) {
  MPI_Datatype dt = comm_mpi_type(a->dtype);
  MPI_Op mop = comm_mpi_op(a->op);
  const int nb = nonblocking;
  int *counts = NULL, rc = MPI_SUCCESS;
  *rq = MPI_REQUEST_NULL;
  if (a->kind == K_REDUCE_SCATTER || a->kind == K_ALLGATHER) {
    counts = partition(a->count, size);
    if (!counts) return MPI_ERR_NO_MEM;
  }
  switch (a->kind) {
    case K_ALLREDUCE:
      rc = nb ? MPI_Iallreduce(MPI_IN_PLACE, a->buf, (int)a->count, dt, mop, comm, rq)
              : MPI_Allreduce(MPI_IN_PLACE, a->buf, (int)a->count, dt, mop, comm);
      break;
    case K_REDUCE_SCATTER:
      rc = nb ? MPI_Ireduce_scatter(a->send, a->buf, counts, dt, mop, comm, rq)
              : MPI_Reduce_scatter(a->send, a->buf, counts, dt, mop, comm);
      break;
    case K_ALLGATHER: {
      const char *own = (const char *)a->buf + (size_t)counts[size + rank] * ch_dtype_size(a->dtype);
      const void *sb = a->send == own ? MPI_IN_PLACE : a->send;
      rc = nb ? MPI_Iallgatherv(sb, counts[rank], dt, a->buf, counts, counts + size, dt, comm, rq)
              : MPI_Allgatherv(sb, counts[rank], dt, a->buf, counts, counts + size, dt, comm);
      break;
    }
    case K_BROADCAST:
      rc = nb ? MPI_Ibcast(a->buf, (int)a->count, dt, a->root, comm, rq)
              : MPI_Bcast(a->buf, (int)a->count, dt, a->root, comm);
      break;
    case K_BARRIER:
      rc = nb ? MPI_Ibarrier(comm, rq) : MPI_Barrier(comm);
      break;
  }
  if (rc != MPI_SUCCESS || !nb) {
    free(counts);
    counts = NULL;
  }
  *counts_out = counts;
  return rc;
}

/* MPI's own algorithm for `a`, blocking or (poll) non-blocking waited by polling. */
static int run_mpi(MPI_Comm comm, int rank, int size, const coll_args *a, int poll) {
  MPI_Request rq = MPI_REQUEST_NULL;
  int *counts = NULL;
  int rc = coll_start_mpi(comm, rank, size, a, poll, &rq, &counts);
  if (rc == MPI_SUCCESS && poll) rc = comm_wait_req(&rq, 1);
  free(counts);
  return rc;
}

const char *coll_kind_name(coll_kind k) {
  static const char *names[] = {"allreduce", "reduce_scatter", "allgather", "broadcast", "barrier"};
  return names[k];
}

ch_status coll_run(mpi_group *m, comm_set *cs, int rank, int size, const coll_args *a, int poll) {
  const size_t es = ch_dtype_size(a->dtype);
  int ring = size > 1 && use_ring(a->count * es) &&
             (a->kind == K_ALLREDUCE || a->kind == K_REDUCE_SCATTER || a->kind == K_ALLGATHER);
  int rc = MPI_SUCCESS;
  if (!ring) {
    rc = run_mpi(cs->comm, rank, size, a, poll);
  } else if (a->kind == K_ALLREDUCE) {
    rc = comm_set_prepare(cs, rank);
    if (rc == MPI_SUCCESS)
      rc = cs->hier ? hier_allreduce(cs, a->buf, a->count, a->dtype, a->op, poll, &m->bytes_sent)
                    : ring_allreduce(cs->comm, a->buf, a->count, a->dtype, a->op, poll, &m->bytes_sent);
  } else if (a->kind == K_REDUCE_SCATTER) {
    rc = ring_reduce_scatter(cs->comm, rank, size, a->send, a->buf, a->count, a->dtype, a->op, poll,
                             &m->bytes_sent);
  } else {
    size_t off = ch_part_offset(a->count, size, rank) * es;
    size_t mine = ch_part_count(a->count, size, rank) * es;
    if (mine && a->send != (const char *)a->buf + off) memcpy((char *)a->buf + off, a->send, mine);
    rc = ring_allgather(cs->comm, rank, size, a->buf, a->count, a->dtype, poll, &m->bytes_sent);
  }
  if (rc != MPI_SUCCESS) return comm_mpi_fail(rc, coll_kind_name(a->kind));
  if (a->op == CH_AVG && a->kind == K_ALLREDUCE) comm_scale_avg(a->buf, a->count, a->dtype, size);
  if (a->op == CH_AVG && a->kind == K_REDUCE_SCATTER)
    comm_scale_avg(a->buf, ch_part_count(a->count, size, rank), a->dtype, size);
  return CH_OK;
}
