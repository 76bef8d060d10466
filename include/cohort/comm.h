/* Collectives over process groups (DESIGN.md section 2). This is the MPI backend on host
 * memory; the NCCL backend (device memory) keeps the same calls. Every collective is blocking
 * when `req` is NULL and non-blocking otherwise: it then returns at once and the caller
 * completes it with ch_comm_wait / ch_comm_test. Only the main thread may call these. */
#pragma once
#include <mpi.h>
#include <stddef.h>
#include "cohort/status.h"
#include "cohort/tensor.h"

typedef enum ch_redop { CH_SUM = 0, CH_AVG, CH_MAX, CH_MIN } ch_redop;

typedef struct ch_group {
  MPI_Comm comm;
  int rank, size;
} ch_group;

/* A pending collective. Caller-owned; must be completed before its buffers are reused. */
typedef struct ch_request {
  MPI_Request req;
  void *scale_buf;    /* AVG: buffer divided by the group size on completion */
  size_t scale_count;
  ch_dtype dtype;
  int group_size;
  int *counts;        /* partition arrays MPI reads until completion (owned) */
  int active;
} ch_request;

/* A group over all ranks of `world` (a duplicate communicator). Free with ch_group_destroy. */
CH_API ch_status ch_group_create(MPI_Comm world, ch_group *out);
/* Splits `parent` by `color` (ordered by `key`), as MPI_Comm_split. With color MPI_UNDEFINED
 * the rank joins no group: `out` gets MPI_COMM_NULL, rank -1, size 0, and collectives on it
 * return CH_ERR_INVALID. */
CH_API ch_status ch_group_split(const ch_group *parent, int color, int key, ch_group *out);
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

CH_API ch_status ch_comm_barrier(const ch_group *g, ch_request *req);

/* Completes a request (finishing AVG scaling). A no-op on an inactive request. */
CH_API ch_status ch_comm_wait(ch_request *req);
/* Sets *done to 1 and completes the request if it has finished, else 0. Also drives MPI
 * progress, which is how non-blocking collectives advance while the main thread computes. */
CH_API ch_status ch_comm_test(ch_request *req, int *done);
