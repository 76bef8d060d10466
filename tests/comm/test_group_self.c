/* ch_group_self: a group of this process alone, without MPI_Init (the serial checkpoint import
 * writes through it): rank 0 of 1, every collective a copy at most (blocking and with a
 * request), a broadcast from another root refused, splits a self group or no group. */
#include <stdio.h>
#include <string.h>

#include "cohort/comm.h"
#include "testlib.h"

int main(void) {
  ch_group g;
  CHT_OK(ch_group_self(&g));
  CHT_ASSERT(g.rank == 0 && g.size == 1 && g.ops, "rank %d size %d", g.rank, g.size);
  double x[3] = {1.5, -2, 3};
  CHT_OK(ch_comm_allreduce(&g, x, 3, CH_F64, CH_SUM, NULL));
  CHT_ASSERT(x[0] == 1.5 && x[1] == -2 && x[2] == 3, "allreduce changed the values");
  ch_request req = {0};
  CHT_OK(ch_comm_allreduce(&g, x, 3, CH_F64, CH_AVG, &req));
  CHT_OK(ch_comm_wait(&req));
  CHT_ASSERT(x[0] == 1.5 && !req.active, "non-blocking allreduce");
  int64_t in[4] = {1, 2, 3, 4}, out[4] = {0};
  CHT_OK(ch_comm_allgather(&g, in, out, 4, CH_I64, NULL));
  CHT_ASSERT(!memcmp(in, out, sizeof in), "allgather did not copy");
  memset(out, 0, sizeof out);
  CHT_OK(ch_comm_reduce_scatter(&g, in, out, 4, CH_I64, CH_SUM, NULL));
  CHT_ASSERT(!memcmp(in, out, sizeof in), "reduce_scatter did not copy");
  CHT_OK(ch_comm_allgather(&g, out, out, 4, CH_I64, NULL)); /* in place */
  CHT_ASSERT(!memcmp(in, out, sizeof in), "in-place allgather");
  CHT_OK(ch_comm_broadcast(&g, in, 4, CH_I64, 0, NULL));
  CHT_OK(ch_comm_barrier(&g, NULL));
  CHT_ASSERT(ch_comm_broadcast(&g, in, 4, CH_I64, 1, NULL) == CH_ERR_INVALID, "root 1 accepted");
  ch_group sub, none;
  CHT_OK(ch_group_split(&g, 0, 0, &sub));
  CHT_ASSERT(sub.rank == 0 && sub.size == 1 && sub.ops, "split");
  CHT_OK(ch_group_split(&g, CH_GROUP_NO_COLOR, 0, &none));
  CHT_ASSERT(none.rank == -1 && !none.ops, "split without a color");
  CHT_ASSERT(ch_comm_barrier(&none, NULL) == CH_ERR_INVALID, "a collective on no group");
  ch_group_destroy(&sub);
  ch_group_destroy(&g);
  printf("ok: ch_group_self without MPI\n");
  return 0;
}
