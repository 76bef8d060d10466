/* hwloc core binding: disjoint core sets per local rank. */
#include "runtime/binding.h"

#include <hwloc.h>
#include <stdio.h>
#include <string.h>

#include "cohort/log.h"

ch_status binding_apply(int local_rank, int local_size, int bind, binding *out) {
  memset(out, 0, sizeof *out);
  hwloc_topology_t topo;
  if (hwloc_topology_init(&topo) != 0 || hwloc_topology_load(topo) != 0)
    return CH_FAIL(CH_ERR_UNSUPPORTED, "hwloc cannot load the machine topology");
  int total = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
  hwloc_obj_type_t unit_type = HWLOC_OBJ_CORE;
  if (total <= 0) { /* some VMs expose PUs only */
    unit_type = HWLOC_OBJ_PU;
    total = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PU);
  }
  if (total <= 0) {
    hwloc_topology_destroy(topo);
    return CH_FAIL(CH_ERR_UNSUPPORTED, "hwloc found no cores");
  }
  int first, count;
  if (local_size <= total) {
    first = (int)((long)local_rank * total / local_size);
    count = (int)((long)(local_rank + 1) * total / local_size) - first;
  } else { /* oversubscribed: one core each, wrapping around */
    first = local_rank % total;
    count = 1;
    out->shared = 1;
  }
  hwloc_bitmap_t set = hwloc_bitmap_alloc();
  hwloc_bitmap_t cores = hwloc_bitmap_alloc();
  for (int i = first; i < first + count; i++) {
    hwloc_obj_t obj = hwloc_get_obj_by_type(topo, unit_type, (unsigned)i);
    if (obj && obj->cpuset) hwloc_bitmap_or(set, set, obj->cpuset);
    hwloc_bitmap_set(cores, (unsigned)(obj ? obj->logical_index : (unsigned)i));
  }
  hwloc_bitmap_list_snprintf(out->cpuset, sizeof out->cpuset, cores);
  if (bind && hwloc_set_cpubind(topo, set, HWLOC_CPUBIND_PROCESS) != 0)
    CH_WARN("could not bind local rank %d to cores %s; running unbound", local_rank, out->cpuset);
  out->ncores = count;
  out->total_cores = total;
  hwloc_bitmap_free(cores);
  hwloc_bitmap_free(set);
  hwloc_topology_destroy(topo);
  return CH_OK;
}
