/* Core binding with hwloc: local rank i of L gets a disjoint, contiguous share of the node's
 * cores (cores i*C/L .. (i+1)*C/L - 1 of the C allowed ones). Internal to src/runtime. */
#pragma once
#include "cohort/status.h"

typedef struct binding {
  int ncores;        /* cores this rank owns (>= 1) */
  int total_cores;   /* allowed cores on the node */
  int shared;        /* more local ranks than cores: ranks share cores */
  char cpuset[128];  /* the cores as a list string, e.g. "2-3" */
} binding;

/* Computes this rank's share and, when `bind` is set, binds the process to it (PUs of those
 * cores). Errors: CH_ERR_UNSUPPORTED when hwloc cannot read the topology. A failed bind
 * (e.g. cgroup limits) is a warning, not an error. */
ch_status binding_apply(int local_rank, int local_size, int bind, binding *out);
