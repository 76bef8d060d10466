/* Binding a rank to the cores nearest its GPU (hwloc's PCI locality), after ch_runtime_init's
 * per-node split. */
#include <hwloc.h>
#include <stdio.h>
#include <string.h>

#include "cohort/log.h"
#include "cohort/runtime.h"
#include "runtime/binding.h"

void ch_runtime_bind_near(const char *pci_bus_id) {
  ch_runtime *rt = ch_runtime_get();
  if (!rt) return;
  hwloc_topology_t topo;
  hwloc_bitmap_t near = NULL;
  char list[128] = "";
  unsigned long long mine = 0; /* 0: nothing to bind to */
  int have = hwloc_topology_init(&topo) == 0;
  if (have) {
    hwloc_topology_set_io_types_filter(topo, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
    if (hwloc_topology_load(topo) == 0) {
      hwloc_obj_t pci = hwloc_get_pcidev_by_busidstring(topo, pci_bus_id);
      hwloc_obj_t anc = pci ? hwloc_get_non_io_ancestor_obj(topo, pci) : NULL;
      if (anc && anc->cpuset) {
        near = hwloc_bitmap_dup(anc->cpuset);
        /* Only what this process inherited (taskset, cgroup, launcher): never widen. */
        hwloc_bitmap_t inh = hwloc_bitmap_alloc();
        if (binding_inherited()[0] && hwloc_bitmap_list_sscanf(inh, binding_inherited()) == 0)
          hwloc_bitmap_and(near, near, inh);
        hwloc_bitmap_free(inh);
        if (hwloc_bitmap_iszero(near)) {
          hwloc_bitmap_free(near);
          near = NULL;
        }
      }
      if (near) {
        hwloc_bitmap_list_snprintf(list, sizeof list, near);
        mine = binding_hash(list); /* equal for ranks whose devices share a socket */
      }
    }
  }
  /* Every local rank takes part, found or not, so the exchange never leaves one waiting. */
  unsigned long long all[1024];
  int n = rt->local_size < 1024 ? rt->local_size : 1024;
  if (MPI_Allgather(&mine, 1, MPI_UNSIGNED_LONG_LONG, all, 1, MPI_UNSIGNED_LONG_LONG,
                    rt->local) != MPI_SUCCESS || !mine || !rt->bind_cores) {
    if (!mine) CH_DEBUG("device %s: no PCI locality known to hwloc; binding kept", pci_bus_id);
    goto done;
  }
  int index = 0, sharing = 0;
  for (int r = 0; r < n; r++)
    if (all[r] == mine) {
      if (r < rt->local_rank) index++;
      sharing++;
    }
  int cores = 0;
  for (hwloc_obj_t c = NULL;
       (c = hwloc_get_next_obj_covering_cpuset_by_type(topo, near, HWLOC_OBJ_CORE, c)) != NULL;)
    cores++;
  if (cores < sharing) {
    CH_WARN("device %s: %d ranks share the %d cores near it (%s); binding kept", pci_bus_id,
            sharing, cores, list);
    goto done;
  }
  int first = index * cores / sharing, count = (index + 1) * cores / sharing - first;
  hwloc_bitmap_t set = hwloc_bitmap_alloc();
  int i = 0;
  for (hwloc_obj_t c = NULL;
       (c = hwloc_get_next_obj_covering_cpuset_by_type(topo, near, HWLOC_OBJ_CORE, c)) != NULL; i++)
    if (i >= first && i < first + count) hwloc_bitmap_or(set, set, c->cpuset);
  hwloc_bitmap_and(set, set, near);
  if (hwloc_set_cpubind(topo, set, HWLOC_CPUBIND_PROCESS) == 0) {
    rt->ncores = count;
    hwloc_bitmap_list_snprintf(rt->cpuset, sizeof rt->cpuset, set); /* OS ids */
    CH_DEBUG("device %s: bound to cores %s (near %s)", pci_bus_id, rt->cpuset, list);
  } else {
    CH_WARN("device %s: could not bind to the cores near it (%s); binding kept", pci_bus_id, list);
  }
  hwloc_bitmap_free(set);
done:
  if (near) hwloc_bitmap_free(near);
  if (have) hwloc_topology_destroy(topo);
}
