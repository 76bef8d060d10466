/* Helper for test_fatal.sh: rank 1 fails fatally while every other rank waits in a barrier.
 * The job must end quickly (no hang), non-zero, with a message naming rank 1 and the cause. */
#include <stdio.h>
#include <unistd.h>

#include "cohort/comm.h"
#include "cohort/runtime.h"

/* A failing library call two levels down, so that the fatal message carries a trace. */
static ch_status write_shard(void) { return CH_FAIL(CH_ERR_IO, "write of shard 7 failed"); }
static ch_status save(void) {
  CH_CHECK(write_shard());
  return CH_OK;
}

int main(int argc, char **argv) {
  ch_runtime *rt = NULL;
  if (ch_runtime_init(&argc, &argv, NULL, &rt) != CH_OK) {
    fprintf(stderr, "fatal_rank: init failed: %s\n", ch_error_message());
    return 2;
  }
  if (rt->world_size < 2) {
    ch_runtime_finalize();
    return 77;
  }
  ch_group g;
  if (ch_group_world(&g) != CH_OK) return 2;
  if (rt->world_rank == 1) {
    usleep(300 * 1000); /* let the others block in the barrier first */
    ch_status s = save();
    ch_runtime_fatal(s, "disk on fire");
  }
  ch_status s = ch_comm_barrier(&g, NULL);
  /* Reaching this line means the barrier completed without rank 1: a bug. */
  fprintf(stderr, "fatal_rank: rank %d left the barrier (%s)\n", rt->world_rank, ch_status_str(s));
  ch_group_destroy(&g);
  ch_runtime_finalize();
  return 0;
}
