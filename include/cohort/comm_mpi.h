/* MPI-specific access to process groups, for the code that genuinely needs an MPI communicator
 * (parallel HDF5 / MPI-IO in the data and checkpoint layers, the collective watchdog, tests).
 * Everything else uses cohort/comm.h, which does not depend on MPI. */
#pragma once
#include <mpi.h>
#include <stdint.h>
#include "cohort/comm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The group's communicator, or MPI_COMM_NULL when the group is not a live MPI group (no
 * color, destroyed, another backend). Borrowed: the group keeps owning it. */
CH_API MPI_Comm ch_group_mpi_comm(const ch_group *g);

/* A group over all ranks of `c`, on a duplicate of it (errors returned, not fatal). Collective
 * over `c`. Free with ch_group_destroy. Errors: CH_ERR_MPI, CH_ERR_NOMEM. */
CH_API ch_status ch_group_from_mpi(MPI_Comm c, ch_group *out);

/* Payload bytes this rank has sent point-to-point in cohort's own collectives on `g` (the
 * ring reduce-scatter, allgather and allreduce, and the node leaders' ring of the hierarchical
 * allreduce) since the group was made; collectives run by MPI's own algorithms (below
 * COHORT_COMM_RING_MIN, or all of them with COHORT_COMM_ALGO=mpi) and shared-memory traffic
 * inside a node are not counted. 0 for a group that is not a live MPI group. With
 * COHORT_COMM_STATS=1 each group prints its count to stderr when destroyed. */
CH_API uint64_t ch_comm_bytes_sent(const ch_group *g);

#ifdef __cplusplus
}
#endif
