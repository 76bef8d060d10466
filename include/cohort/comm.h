/* Collectives over process groups. A group is backend-neutral: callers see its rank and size
 * and call the ch_comm_* functions below, which dispatch through the group's ops table (one
 * function pointer per call). The MPI backend (src/comm/mpi.c, host memory) is the only one
 * today; a NCCL backend on device memory slots in by providing another ch_comm_ops.
 * Every collective is blocking when `req` is NULL and non-blocking otherwise: it then returns at
 * once and the caller completes it with ch_comm_wait / ch_comm_test. Only the main thread may
 * call these. Code that genuinely needs the MPI communicator (MPI-IO, parallel HDF5) uses
 * cohort/comm_mpi.h. */
#pragma once
#include <stddef.h>
#include "cohort/status.h"
#include "cohort/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ch_redop { CH_SUM = 0, CH_AVG, CH_MAX, CH_MIN } ch_redop;

/* ch_group_split color for "join no group" (MPI_UNDEFINED is accepted too). */
#define CH_GROUP_NO_COLOR (-1)

typedef struct ch_comm_ops ch_comm_ops;

/* A process group. rank/size are public; ops/impl belong to the backend. ops == NULL marks a
 * group that is not live: zeroed, destroyed (rank/size are left as they were), or a split with
 * no color (rank -1, size 0); collectives on it return CH_ERR_INVALID. Copies share the
 * backend state: destroy one only. */
typedef struct ch_group {
  int rank, size;
  const ch_comm_ops *ops;
  void *impl;
} ch_group;

/* A pending collective. Caller-owned and reusable (arrays of them are fine; zero-initialised
 * means inactive); must be completed before its buffers are reused and before its group is
 * destroyed. `active` is public; `state`
 * is the backend's (it keeps its handle and completion work there, so starting a collective
 * allocates nothing for the request itself). */
typedef struct ch_request {
  const ch_comm_ops *ops; /* backend that started it */
  int active;
#ifdef __cplusplus
  alignas(16) unsigned char state[64];
#else
  _Alignas(16) unsigned char state[64];
#endif
} ch_request;

/* What a backend provides. Each entry has the contract of the public function of the same
 * name; the front (src/comm/group.c) has already checked that the group is live (ops != NULL)
 * and, for wait/test, that the request is active. A backend validates its own limits (dtypes,
 * counts, roots), keeps its per-request state in ch_request.state (at most 64 bytes), sets
 * req->ops and req->active when it starts a non-blocking call, clears active on completion,
 * and marks its blocking waits for the collective watchdog (cohort/watchdog.h). */
struct ch_comm_ops {
  const char *name;
  ch_status (*allreduce)(const ch_group *g, void *buf, size_t count, ch_dtype t, ch_redop op,
                         ch_request *req);
  ch_status (*reduce_scatter)(const ch_group *g, const void *send, void *recv, size_t total,
                              ch_dtype t, ch_redop op, ch_request *req);
  ch_status (*allgather)(const ch_group *g, const void *send, void *recv, size_t total,
                         ch_dtype t, ch_request *req);
  ch_status (*broadcast)(const ch_group *g, void *buf, size_t count, ch_dtype t, int root,
                         ch_request *req);
  ch_status (*barrier)(const ch_group *g, ch_request *req);
  ch_status (*wait)(ch_request *req);
  ch_status (*test)(ch_request *req, int *done);
  ch_status (*split)(const ch_group *parent, int color, int key, ch_group *out);
  void (*destroy)(ch_group *g);
};

/* A group over all ranks of the job (the MPI backend: a duplicate of MPI_COMM_WORLD).
 * Collective over the job. Free with ch_group_destroy. */
CH_API ch_status ch_group_world(ch_group *out);
/* A group of this process alone, without MPI (rank 0, size 1: every collective is a copy at
 * most): for serial tools that call collective code, such as `cohort ckpt import` writing a
 * checkpoint. Needs no MPI_Init; ch_group_destroy is a no-op on it. Never fails. */
CH_API ch_status ch_group_self(ch_group *out);
/* Splits `parent` by `color` (ordered by `key`), as MPI_Comm_split. With a negative color
 * (CH_GROUP_NO_COLOR, MPI_UNDEFINED) the rank joins no group: `out` gets ops NULL, rank -1,
 * size 0, and collectives on it return CH_ERR_INVALID. */
CH_API ch_status ch_group_split(const ch_group *parent, int color, int key, ch_group *out);
/* Frees the group's backend state; a no-op on a zeroed, destroyed or no-color group. */
CH_API void ch_group_destroy(ch_group *g);

/* In-place reduction of `count` elements of `buf` across the group. */
CH_API ch_status ch_comm_allreduce(const ch_group *g, void *buf, size_t count, ch_dtype t, ch_redop op,
                            ch_request *req);

/* Reduces `total` elements of `send` across the group; rank r receives the reduced part
 * [ch_part_offset(total,n,r), +ch_part_count(total,n,r)) into `recv`. */
CH_API ch_status ch_comm_reduce_scatter(const ch_group *g, const void *send, void *recv, size_t total,
                                 ch_dtype t, ch_redop op, ch_request *req);

/* Inverse of reduce_scatter's partition: each rank contributes its part `send` (of
 * ch_part_count(total,n,rank) elements) and `recv` gets all `total` elements in rank order.
 * `send` may point into `recv` at the rank's own offset (in place). */
CH_API ch_status ch_comm_allgather(const ch_group *g, const void *send, void *recv, size_t total,
                            ch_dtype t, ch_request *req);

/* Copies `count` elements of `buf` from `root` to every rank. */
CH_API ch_status ch_comm_broadcast(const ch_group *g, void *buf, size_t count, ch_dtype t, int root,
                            ch_request *req);

/* Blocks (or, with `req`, starts) until every rank of the group has entered it. */
CH_API ch_status ch_comm_barrier(const ch_group *g, ch_request *req);

/* Completes a request (finishing AVG scaling), blocking until it has finished; returns the
 * collective's own status (an error in the progress thread surfaces here). A no-op on an
 * inactive request. */
CH_API ch_status ch_comm_wait(ch_request *req);
/* Sets *done to 1 and completes the request if it has finished, else 0. The MPI backend runs
 * non-blocking collectives on a progress thread, so they advance while the main thread
 * computes and this only reads a flag; without MPI_THREAD_MULTIPLE (or with
 * COHORT_COMM_ALGO=mpi) they are MPI's, and this call is what drives them. */
CH_API ch_status ch_comm_test(ch_request *req, int *done);

#ifdef __cplusplus
}
#endif
