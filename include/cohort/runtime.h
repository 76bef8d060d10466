/* Process runtime: MPI initialisation, rank discovery, core binding, finalize hooks.
 * One context per process; it is the only global state cohort keeps. */
#pragma once
#include <mpi.h>
#include "cohort/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ch_runtime {
  int world_rank, world_size;
  int local_rank, local_size; /* ranks on this node, from MPI_Comm_split_type(SHARED) */
  int node_id, node_count;    /* node index (by lowest world rank on it) and number of nodes */
  int thread_level;           /* provided by MPI: MULTIPLE requested (the watchdog thread also
                               * calls MPI), FUNNELED at least; the main thread makes every
                               * other MPI call */
  int ncores;                 /* cores bound to this rank (callers size BLAS threads by it) */
  char cpuset[128];           /* the bound CPUs as OS ids ("0-3"; Cpus_allowed_list's numbers),
                               * always inside the affinity the process inherited */
  int bind_cores;             /* binding was asked for (ch_runtime_opts.bind_cores) */
  char hostname[64];
  const char *launcher;       /* "slurm", "openmpi", "mpich" or "unknown" (information only) */
  int verbose;
  MPI_Comm world;             /* duplicate of MPI_COMM_WORLD owned by cohort */
  MPI_Comm local;
} ch_runtime;

typedef struct ch_runtime_opts {
  int verbose;     /* print binding facts on every rank */
  int bind_cores;  /* bind each local rank to a disjoint set of cores (default on): local ranks
                    * that inherited the same CPU set (taskset, cgroup, launcher) split it */
} ch_runtime_opts;

/* Initialises MPI (MULTIPLE requested, FUNNELED required), logging and core binding, and
 * fills `*out` (the process-wide context, also returned by ch_runtime_get). `opts` may be NULL
 * for defaults. Call once, before any other cohort function. BLAS threads are the caller's
 * (ch_blas_init(rt->ncores)): runtime uses nothing above it. Errors: CH_ERR_MPI,
 * CH_ERR_UNSUPPORTED. */
CH_API ch_status ch_runtime_init(int *argc, char ***argv, const ch_runtime_opts *opts, ch_runtime **out);

/* The context made by ch_runtime_init, or NULL before it. */
CH_API ch_runtime *ch_runtime_get(void);

/* Registers `fn(ctx)` to run in ch_runtime_finalize before MPI_Finalize, last registered first
 * (each runs once). For layers above runtime that must clean up while MPI is alive (the
 * collective watchdog's thread). Errors: CH_ERR_INVALID (null fn), CH_ERR_NOMEM (table full). */
CH_API ch_status ch_runtime_on_finalize(void (*fn)(void *), void *ctx);

/* Runs the finalize hooks, frees the communicators and finalises MPI. */
CH_API void ch_runtime_finalize(void);

/* Ends the whole job: prints "[cohort rR] fatal on rank R (host): <status>: <message>: <error
 * trace>" to stderr, then MPI_Abort. For unrecoverable failures (a collective failed, a rank must
 * not continue alone). */
#ifdef __cplusplus
[[noreturn]]
#else
_Noreturn
#endif
CH_API void ch_runtime_fatal(ch_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Rebinds this rank to the cores nearest the PCI device `pci_bus_id` ("0000:3b:00.0", a GPU):
 * the local ranks whose devices share a locality split its cores evenly. Collective over the
 * node's ranks (every local rank calls it, with its own device). A device hwloc does not know
 * (no PCI information, an emulated GPU) keeps the current binding; so does a run without
 * binding. Never an error: a failed bind is a warning. */
CH_API void ch_runtime_bind_near(const char *pci_bus_id);

/* Checks that every rank of `comm` sees directory `dir` as rank 0 does: rank 0 creates it and
 * writes a token file with content unique to this job, every rank reads it back, the verdict
 * is agreed collectively, and the token is removed. Collective over `comm`; returns the same
 * status on every rank. A single rank returns CH_OK without touching the directory. Errors:
 * CH_ERR_CONFIG "<key> <dir> is not shared: rank R on host H does not see the file rank 0 wrote
 * there ...; put <key> on a filesystem every node mounts" (the lowest failing rank, with a count
 * of the others), or rank 0's own failure to create the directory or write the token (naming
 * the path); CH_ERR_MPI. `key` names the setting in messages ("run.dir"). */
CH_API ch_status ch_runtime_check_shared_dir(MPI_Comm comm, const char *key, const char *dir);

/* Seconds on a monotonic clock. */
CH_API double ch_time(void);

#ifdef __cplusplus
}
#endif
