/* Helper for test_watchdog.sh: 3 ranks, collective watchdog with a 2 s timeout. Phase 1 runs
 * collectives that complete while rank 1 computes 1 s before each (the others wait about 1 s,
 * under the timeout: no alarm allowed). Phase 2 (step 99): ranks 0 and 2 enter an allreduce
 * that rank 1 never reaches, in one of these ways (argv[1]):
 *   hang      rank 1's main thread sleeps forever (its watchdog thread still answers)
 *   stop      rank 1 stops itself with SIGSTOP (nothing answers: hung)
 *   dead      rank 1 kills itself with SIGKILL
 *   desync    rank 1 waits in a broadcast on another communicator instead
 *   slow      rank 1 computes 3 s and then joins: the allreduce completes during the report
 *             exchange, after the timeout, so the job still ends, reported as a slow rank
 *   funneled  as hang, but MPI is initialised with MPI_THREAD_FUNNELED beforehand, so the
 *             watchdog cannot exchange reports and each stalled rank reports alone
 * Rank 0 prints "phase 1 done" and then "hang starts at <ms since the epoch>" on stdout. */
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "cohort/comm.h"
#include "cohort/runtime.h"
#include "cohort/watchdog.h"
#include "testlib.h"

static void spin(double seconds) {
  double t0 = ch_time();
  while (ch_time() - t0 < seconds) {
  }
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "";
  if (strcmp(mode, "hang") && strcmp(mode, "stop") && strcmp(mode, "dead") &&
      strcmp(mode, "desync") && strcmp(mode, "funneled") && strcmp(mode, "slow")) {
    fprintf(stderr, "usage: watchdog_hang hang|stop|dead|desync|slow|funneled\n");
    return 2;
  }
  if (!strcmp(mode, "funneled")) {
    int provided = 0;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    if (provided >= MPI_THREAD_MULTIPLE) { /* this MPI gives MULTIPLE anyway */
      printf("SKIP: MPI provides MULTIPLE when asked for FUNNELED\n");
      MPI_Finalize();
      return 77;
    }
  }
  ch_runtime *rt = NULL;
  CHT_OK(ch_runtime_init(&argc, &argv, NULL, &rt));
  if (rt->world_size != 3) {
    if (rt->world_rank == 0) printf("SKIP: needs 3 ranks\n");
    ch_runtime_finalize();
    return 77;
  }
  int rank = rt->world_rank;
  ch_group g, other;
  CHT_OK(ch_group_world(&g));
  CHT_OK(ch_group_world(&other));
  CHT_OK(ch_watchdog_start(&g, 2.0));

  for (int step = 0; step < 2; step++) {
    ch_watchdog_set_step(step);
    if (rank == 1) spin(1.0);
    float v = (float)(rank + 1);
    CHT_OK(ch_comm_allreduce(&g, &v, 1, CH_F32, CH_SUM, NULL));
    CHT_ASSERT(v == 6.0f, "allreduce gave %g, expected 6", v);
    for (int i = 0; i < 50; i++) CHT_OK(ch_comm_barrier(&g, NULL));
  }
  if (rank == 0) {
    printf("phase 1 done\n");
    fflush(stdout);
  }

  ch_watchdog_set_step(99);
  CHT_OK(ch_comm_barrier(&g, NULL));
  if (rank == 0) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    printf("hang starts at %lld\n", (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000);
    fflush(stdout);
  }
  float v = 1.0f;
  int slow = !strcmp(mode, "slow");
  if (!strcmp(mode, "dead")) { /* MPICH's launcher names a pid only: the test maps it back */
    printf("rank %d is pid %d\n", rank, (int)getpid());
    fflush(stdout);
  }
  if (rank == 1 && slow) spin(3.0); /* the watchdog fires 2.0-2.4 s into the others' wait */
  if (rank == 1 && !slow) {
    usleep(300 * 1000); /* let the others block first */
    if (!strcmp(mode, "stop")) raise(SIGSTOP);
    if (!strcmp(mode, "dead")) {
      raise(SIGKILL);
    }
    if (!strcmp(mode, "desync")) {
      ch_status s = ch_comm_broadcast(&other, &v, 1, CH_F32, 0, NULL);
      fprintf(stderr, "watchdog_hang: rank 1 left the broadcast (%s)\n", ch_status_str(s));
      return 1;
    }
    for (;;) sleep(1000);
  }
  ch_status s = ch_comm_allreduce(&g, &v, 1, CH_F32, CH_SUM, NULL);
  if (slow) /* completed, over the timeout: the watchdog ends the job */
    for (;;) sleep(1000);
  /* Reaching this line means the allreduce completed without rank 1: a bug. */
  fprintf(stderr, "watchdog_hang: rank %d left the allreduce (%s)\n", rank, ch_status_str(s));
  return 1;
}
