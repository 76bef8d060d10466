/* ch_runtime_on_finalize: hooks run in ch_runtime_finalize, last registered first, once each,
 * while MPI is still initialised (the watchdog stops its thread from one); a running watchdog
 * is stopped by finalize without an explicit ch_watchdog_stop. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#include "cohort/comm.h"
#include "cohort/runtime.h"
#include "cohort/watchdog.h"
#include "testlib.h"

static int g_order[3], g_calls, g_mpi_alive = 1;

static void hook(void *ctx) {
  int fin = 1;
  MPI_Finalized(&fin);
  if (fin) g_mpi_alive = 0;
  if (g_calls < 3) g_order[g_calls] = *(int *)ctx;
  g_calls++;
}

int main(int argc, char **argv) {
  ch_runtime *rt = NULL;
  CHT_OK(ch_runtime_init(&argc, &argv, NULL, &rt));
  int rank = rt->world_rank;
  CHT_ASSERT(ch_runtime_on_finalize(NULL, NULL) == CH_ERR_INVALID, "null hook accepted");
  ch_error_clear();
  static int ids[3] = {1, 2, 3};
  for (int i = 0; i < 3; i++) CHT_OK(ch_runtime_on_finalize(hook, &ids[i]));
  ch_group g;
  CHT_OK(ch_group_world(&g));
  CHT_OK(ch_watchdog_start(&g, 30.0)); /* registers its own hook: stopped by finalize */
  ch_group_destroy(&g);
  CHT_ASSERT(g_calls == 0, "a hook ran before finalize");
  ch_runtime_finalize();
  ch_runtime_finalize(); /* a second call does nothing */
  if (g_calls != 3 || g_order[0] != 3 || g_order[1] != 2 || g_order[2] != 1 || !g_mpi_alive) {
    fprintf(stderr, "FAIL: %d hook calls, order %d %d %d, MPI alive in hooks %d\n", g_calls,
            g_order[0], g_order[1], g_order[2], g_mpi_alive);
    return 1;
  }
  if (rank == 0) printf("ok finalize hooks\n");
  return 0;
}
