/* Core binding with hwloc, inside the affinity each rank inherits (taskset, a cgroup cpuset, the
 * launcher's own binding): local ranks that inherited the same CPU set split its cores among
 * them (rank i of L: cores i*C/L .. (i+1)*C/L - 1 of its C cores); a binding is never widened.
 * CPUs are reported by their OS ids (what taskset and /proc/PID/status Cpus_allowed_list show).
 * Internal to src/runtime. */
#pragma once
#include <mpi.h>
#include "cohort/status.h"

typedef struct binding {
  int ncores;        /* cores this rank owns (>= 1) */
  int total_cores;   /* cores in the set this rank inherited (shared with `peers` local ranks) */
  int peers;         /* local ranks that inherited the same set, this one included */
  int first_peer;    /* this is the lowest local rank of those peers */
  int shared;        /* more such ranks than cores: ranks share cores */
  char cpuset[128];  /* this rank's CPUs as OS ids, e.g. "2-3" */
  char inherited[128]; /* the inherited set as OS ids */
} binding;

/* Computes this rank's share of its inherited CPU set and, when `bind` is set, binds the process
 * to it. Collective over `local` (the node's ranks): they compare what they inherited. Errors:
 * CH_ERR_UNSUPPORTED when hwloc cannot read the topology or the current binding; CH_ERR_MPI. A
 * failed bind (e.g. cgroup limits) is a warning, not an error. */
ch_status binding_apply(MPI_Comm local, int bind, binding *out);

/* The CPU set this process inherited (OS ids, hwloc list syntax), as binding_apply saw it; ""
 * before it ran. Rebinding later (ch_runtime_bind_near) stays inside it. */
const char *binding_inherited(void);

/* A non-zero hash of a CPU list string: local ranks compare sets by exchanging it. */
unsigned long long binding_hash(const char *s);
