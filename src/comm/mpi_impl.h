/* Internals of the MPI backend shared by its files: mpi.c (the ops table), coll.c (one
 * collective run to completion on a communicator set, choosing MPI's algorithm, the ring or
 * the hierarchical allreduce), ring.c (cohort's ring collectives on point-to-point), reduce.c
 * (local reductions, dtype mapping) and progress.c (the thread that runs non-blocking
 * collectives). Not part of the public API. */
#pragma once
#include <mpi.h>
#include <stdatomic.h>
#include <stdint.h>

#include "cohort/comm.h"

/* Which algorithm a collective uses (COHORT_COMM_ALGO). MPI: MPI's own collectives, and
 * non-blocking calls through MPI's non-blocking collectives as before issue 15. RING: cohort's
 * ring (and hierarchical allreduce where it applies) at every size. AUTO: MPI's below
 * COHORT_COMM_RING_MIN bytes, the ring above. */
typedef enum comm_algo { ALGO_AUTO = 0, ALGO_MPI, ALGO_RING } comm_algo;

/* Communicators one thread runs collectives on. `node`/`leaders` are the hierarchical
 * allreduce's (made on first use; `leaders` is MPI_COMM_NULL on ranks that lead no node). */
typedef struct comm_set {
  MPI_Comm comm;
  MPI_Comm node, leaders;
  int hier_ready; /* node/leaders made */
  int hier;       /* the hierarchical allreduce applies: > 1 node and some node has > 1 rank */
} comm_set;

typedef struct progress progress; /* progress.c */

/* The group's backend state. The main thread's collectives use `main`; the progress thread
 * uses `thread`, a duplicate made when the first non-blocking collective starts, so its
 * messages never match the main thread's. */
typedef struct mpi_group {
  comm_set main, thread;
  int thread_ready;
  progress *prog;
  _Atomic uint64_t bytes_sent; /* point-to-point payload bytes of cohort's own collectives */
} mpi_group;

typedef enum coll_kind { K_ALLREDUCE, K_REDUCE_SCATTER, K_ALLGATHER, K_BROADCAST, K_BARRIER } coll_kind;

/* One collective's arguments (as the public functions take them). */
typedef struct coll_args {
  coll_kind kind;
  const void *send; /* reduce_scatter, allgather */
  void *buf;        /* allreduce / broadcast buffer, reduce_scatter / allgather receive */
  size_t count;     /* allreduce / broadcast count, reduce_scatter / allgather total */
  ch_dtype dtype;
  ch_redop op;
  int root;
} coll_args;

/* Runs collective `a` to completion on `cs` (rank/size of the group), AVG scaling included.
 * `poll`: wait by MPI_Test with back-off (the progress thread) instead of blocking MPI calls.
 * Payload bytes this rank sends point-to-point are added to `m->bytes_sent`. */
ch_status coll_run(mpi_group *m, comm_set *cs, int rank, int size, const coll_args *a, int poll);

/* Starts MPI's own collective for `a` on `comm`: blocking (completed on return) or
 * non-blocking (*rq to complete; *counts, the v-collectives' partition arrays, must live until
 * then and are the caller's to free; NULL when none). Returns an MPI error code. */
int coll_start_mpi(MPI_Comm comm, int rank, int size, const coll_args *a, int nonblocking,
                   MPI_Request *rq, int **counts);

/* "allreduce", "reduce_scatter", ... */
const char *coll_kind_name(coll_kind k);

/* The algorithm chosen by COHORT_COMM_ALGO (read once). */
comm_algo coll_algo(void);

/* Ring collectives on `comm` (rank r of n), partitions as ch_part_offset/ch_part_count.
 * ring_reduce_scatter: rank r gets the reduced part r of `send` in `recv` (SUM/MAX/MIN; AVG is
 * the caller's). `send` == NULL reduces `recv` (the whole `total`) in place, leaving part r
 * reduced at its offset. ring_allgather: `buf` holds this rank's part at its offset; every
 * part ends everywhere. Return an MPI error code; add the bytes they send to `*sent`. */
int ring_reduce_scatter(MPI_Comm comm, int r, int n, const void *send, void *recv, size_t total,
                        ch_dtype t, ch_redop op, int poll, _Atomic uint64_t *sent);
int ring_allgather(MPI_Comm comm, int r, int n, void *buf, size_t total, ch_dtype t, int poll,
                   _Atomic uint64_t *sent);

/* Point-to-point in segments (ring.c), shared by the ring and the hierarchical allreduce's
 * node steps. SEGMENT_BYTES: large enough that per-message costs vanish, small enough that
 * reducing one segment overlaps receiving the next few. p2p_post posts the segments of
 * `count` elements at `p` (send: Isend, else Irecv, to/from `peer`) into reqs[] and stores how
 * many in *posted; p2p_nsegs is that number; p2p_wait_all completes n requests in order. All
 * return MPI error codes. */
#define SEGMENT_BYTES ((size_t)512 << 10)
int p2p_post(int send, void *p, size_t count, size_t seg, size_t es, MPI_Datatype dt, int peer,
             MPI_Comm comm, MPI_Request *reqs, int *posted);
int p2p_nsegs(size_t count, size_t seg);
int p2p_wait_all(MPI_Request *reqs, int n, int poll);

/* hier.c: the hierarchical allreduce on `cs` (comm_set_prepare'd, cs->hier set). */
int hier_allreduce(comm_set *cs, void *buf, size_t count, ch_dtype t, ch_redop op, int poll,
                   _Atomic uint64_t *sent);
/* coll.c: ring allreduce (reduce-scatter in place, then allgather) over `comm`. */
int ring_allreduce(MPI_Comm comm, void *buf, size_t count, ch_dtype t, ch_redop op, int poll,
                   _Atomic uint64_t *sent);

/* Completes `req`: MPI_Wait, or with `poll` MPI_Test with back-off (yield, then short sleeps)
 * so a waiting progress thread leaves the core to compute. Returns an MPI error code. */
int comm_wait_req(MPI_Request *req, int poll);

/* reduce.c: dtype/op mapping and local arithmetic. */
MPI_Datatype comm_mpi_type(ch_dtype t);
MPI_Op comm_mpi_op(ch_redop op);
/* dst[i] = dst[i] op src[i] for n elements (AVG reduces as SUM). */
void comm_reduce_local(void *dst, const void *src, size_t n, ch_dtype t, ch_redop op);
/* Divides n elements by the group size (AVG). */
void comm_scale_avg(void *buf, size_t n, ch_dtype t, int size);
/* CH_ERR_MPI with MPI's message for `rc`. */
ch_status comm_mpi_fail(int rc, const char *what);

/* progress.c: the per-group thread that runs non-blocking collectives in FIFO order. */
typedef struct comm_job comm_job;
/* Makes the thread's communicator set: a duplicate of the group's, with the hierarchical
 * allreduce's communicators, made on the main thread so the thread never creates
 * communicators concurrently with it. Collective over the group: called when the group is
 * made (a lazy dup at the first non-blocking collective would block, unseen by the watchdog,
 * until every rank starts one: a serving follower waiting for a stopped leader hung there). */
ch_status progress_prepare(mpi_group *m, int rank, int size);
/* Queues `a` on the group's thread (started on first use); `*out` is the job to wait on. */
ch_status progress_submit(mpi_group *m, int rank, int size, const coll_args *a, comm_job **out);
/* Whether the job has finished (acquire). */
int progress_done(const comm_job *j);
/* Blocks until the job has finished (without spinning). */
void progress_wait(comm_job *j);
/* Frees a finished job and returns its status (re-raising the thread's error message). */
ch_status progress_take(comm_job *j);
/* Stops and joins the group's thread after its queue drains (a no-op without one). */
void progress_stop(mpi_group *m);

/* coll.c: a set over `comm` (adopted) without node communicators yet; makes the hierarchical allreduce's communicators of `cs` if not yet made
 * (collective over cs->comm); frees every communicator of the set. */
void comm_set_init(comm_set *cs, MPI_Comm comm);
int comm_set_prepare(comm_set *cs, int rank);
void comm_set_free(comm_set *cs);
