/* hwloc core binding: disjoint core sets per local rank, inside the inherited affinity. */
#include "runtime/binding.h"

#include <hwloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/log.h"

static char g_inherited[1024];

const char *binding_inherited(void) { return g_inherited; }

unsigned long long binding_hash(const char *s) {
  unsigned long long h = 1469598103934665603ull; /* FNV-1a */
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h ? h : 1;
}

/* The set this process may run on: its current binding (taskset, the launcher's binding) within
 * what the topology allows (a cgroup cpuset). The whole allowed set where the binding cannot be
 * read. */
static hwloc_bitmap_t inherited_set(hwloc_topology_t topo) {
  hwloc_bitmap_t set = hwloc_bitmap_alloc();
  hwloc_const_bitmap_t allowed = hwloc_topology_get_allowed_cpuset(topo);
  if (hwloc_get_cpubind(topo, set, HWLOC_CPUBIND_PROCESS) != 0) hwloc_bitmap_copy(set, allowed);
  hwloc_bitmap_and(set, set, allowed);
  if (hwloc_bitmap_iszero(set)) hwloc_bitmap_copy(set, allowed);
  return set;
}

/* This rank's place among the local ranks that inherited the same set: *index of *peers. */
static ch_status find_peers(MPI_Comm local, const char *list, int *index, int *peers) {
  int lrank = 0, lsize = 1;
  MPI_Comm_rank(local, &lrank);
  MPI_Comm_size(local, &lsize);
  unsigned long long mine = binding_hash(list);
  unsigned long long *all = malloc(sizeof *all * (size_t)lsize);
  if (!all) return CH_FAIL(CH_ERR_NOMEM, "binding: %d local ranks", lsize);
  if (MPI_Allgather(&mine, 1, MPI_UNSIGNED_LONG_LONG, all, 1, MPI_UNSIGNED_LONG_LONG, local) !=
      MPI_SUCCESS) {
    free(all);
    return CH_FAIL(CH_ERR_MPI, "MPI_Allgather(inherited CPU sets) failed");
  }
  *index = *peers = 0;
  for (int r = 0; r < lsize; r++)
    if (all[r] == mine) {
      if (r < lrank) (*index)++;
      (*peers)++;
    }
  free(all);
  return CH_OK;
}

ch_status binding_apply(MPI_Comm local, int bind, binding *out) {
  memset(out, 0, sizeof *out);
  hwloc_topology_t topo;
  int loaded = hwloc_topology_init(&topo) == 0;
  if (loaded && hwloc_topology_load(topo) != 0) {
    hwloc_topology_destroy(topo);
    loaded = 0;
  }
  hwloc_bitmap_t avail = loaded ? inherited_set(topo) : NULL;
  char *list = NULL;
  if (avail && hwloc_bitmap_list_asprintf(&list, avail) < 0) list = NULL;
  /* Every local rank takes part in the exchange, even one that failed, so none is left
   * waiting in it. */
  int index = 0, peers = 1;
  ch_status st = find_peers(local, list ? list : "", &index, &peers);
  if (st == CH_OK && !list)
    st = CH_FAIL(CH_ERR_UNSUPPORTED, "hwloc cannot load the machine topology or the binding");
  if (list) {
    snprintf(g_inherited, sizeof g_inherited, "%s", list);
    snprintf(out->inherited, sizeof out->inherited, "%s", list);
    free(list);
  }
  if (st != CH_OK) {
    if (avail) hwloc_bitmap_free(avail);
    if (loaded) hwloc_topology_destroy(topo);
    return st;
  }

  /* Units: the cores that have at least one inherited PU (some VMs expose PUs only). */
  hwloc_obj_type_t unit_type =
      hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE) > 0 ? HWLOC_OBJ_CORE : HWLOC_OBJ_PU;
  int total = 0;
  for (hwloc_obj_t o = NULL;
       (o = hwloc_get_next_obj_covering_cpuset_by_type(topo, avail, unit_type, o)) != NULL;)
    total++;
  if (total <= 0) {
    hwloc_bitmap_free(avail);
    hwloc_topology_destroy(topo);
    return CH_FAIL(CH_ERR_UNSUPPORTED, "hwloc found no cores in the inherited CPU set");
  }
  int first, count;
  if (peers <= total) {
    first = (int)((long)index * total / peers);
    count = (int)((long)(index + 1) * total / peers) - first;
  } else { /* oversubscribed: one core each, wrapping around */
    first = index % total;
    count = 1;
    out->shared = 1;
  }
  hwloc_bitmap_t set = hwloc_bitmap_alloc();
  int u = 0;
  for (hwloc_obj_t o = NULL;
       (o = hwloc_get_next_obj_covering_cpuset_by_type(topo, avail, unit_type, o)) != NULL; u++)
    if (u >= first && u < first + count) hwloc_bitmap_or(set, set, o->cpuset);
  hwloc_bitmap_and(set, set, avail); /* only the inherited PUs of those cores */
  hwloc_bitmap_list_snprintf(out->cpuset, sizeof out->cpuset, set);
  if (bind && hwloc_set_cpubind(topo, set, HWLOC_CPUBIND_PROCESS) != 0)
    CH_WARN("could not bind to cpus %s; running unbound", out->cpuset);
  out->ncores = count;
  out->total_cores = total;
  out->peers = peers;
  out->first_peer = index == 0;
  hwloc_bitmap_free(set);
  hwloc_bitmap_free(avail);
  hwloc_topology_destroy(topo);
  return CH_OK;
}
