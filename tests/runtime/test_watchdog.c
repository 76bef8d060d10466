/* The collective watchdog's lifecycle and cheap paths (include/cohort/watchdog.h): start with
 * timeout 0 is a no-op (no thread), enter/leave cost a few nanoseconds whether it runs or not,
 * start/stop pairs repeat, stop is immediate (not a tick later), and collectives that complete,
 * including waits below the timeout, raise no alarm (ctest fails the test on any watchdog
 * report in the output). The cost bounds are loose on purpose: they catch a lock, a clock read
 * per call or a system call, not a slower machine. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cohort/comm.h"
#include "cohort/runtime.h"
#include "cohort/watchdog.h"
#include "testlib.h"

/* Threads of this process, from /proc. */
static int threads_now(void) {
  FILE *f = fopen("/proc/self/status", "r");
  CHT_ASSERT(f, "cannot open /proc/self/status");
  char line[256];
  int n = -1;
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, "Threads:", 8)) n = atoi(line + 8);
  fclose(f);
  CHT_ASSERT(n > 0, "no Threads: line in /proc/self/status");
  return n;
}

/* The thread count once it reaches `want`, or after 1 s: pthread_join returns when the thread
 * has exited, but the kernel may still count it in /proc for a moment after. */
static int threads_settled(int want) {
  int n = threads_now();
  for (int i = 0; i < 1000 && n != want; i++) {
    struct timespec ms = {0, 1000000};
    nanosleep(&ms, NULL);
    n = threads_now();
  }
  return n;
}

__attribute__((noinline)) static void empty_call(const char *op) { __asm__ volatile("" ::"r"(op)); }

/* Best-of-5 nanoseconds per enter/leave pair (or per pair of empty calls, for scale). */
static double pair_ns(int baseline) {
  const int iters = 5 * 1000 * 1000;
  double best = 1e30;
  for (int rep = 0; rep < 5; rep++) {
    double t0 = ch_time();
    for (int i = 0; i < iters; i++) {
      if (baseline) {
        empty_call("allreduce");
        empty_call(NULL);
      } else {
        ch_watchdog_enter("allreduce");
        ch_watchdog_leave();
      }
    }
    double ns = (ch_time() - t0) * 1e9 / iters;
    if (ns < best) best = ns;
  }
  return best;
}

static void some_collectives(const ch_group *g, int rounds) {
  for (int i = 0; i < rounds; i++) {
    double v = g->rank + 1, want = g->size * (g->size + 1) / 2.0;
    CHT_OK(ch_comm_allreduce(g, &v, 1, CH_F64, CH_SUM, NULL));
    CHT_ASSERT(v == want, "allreduce gave %g, expected %g", v, want);
    ch_request req;
    v = g->rank + 1;
    CHT_OK(ch_comm_allreduce(g, &v, 1, CH_F64, CH_SUM, &req));
    CHT_OK(ch_comm_wait(&req));
    CHT_OK(ch_comm_wait(&req)); /* inactive now: still a no-op */
    CHT_ASSERT(v == want, "non-blocking allreduce gave %g, expected %g", v, want);
    CHT_OK(ch_comm_barrier(g, NULL));
  }
}

int main(int argc, char **argv) {
  ch_runtime *rt = NULL;
  CHT_OK(ch_runtime_init(&argc, &argv, NULL, &rt));
  ch_group g;
  CHT_OK(ch_group_world(&g));
  int lead = rt->world_rank == 0;

  /* Off (never started): enter/leave and stop do nothing. */
  ch_watchdog_stop();
  double base = pair_ns(1), off = pair_ns(0);
  if (lead) printf("enter+leave, watchdog off: %.2f ns per pair (two empty calls: %.2f ns)\n", off, base);
  CHT_ASSERT(off < 50.0, "enter+leave with the watchdog off cost %.1f ns per pair", off);

  /* Timeout 0 or negative: disabled, no thread. */
  int t0 = threads_now();
  CHT_OK(ch_watchdog_start(&g, 0.0));
  CHT_OK(ch_watchdog_start(&g, -1.0));
  CHT_ASSERT(threads_now() == t0, "start with timeout <= 0 started a thread (%d -> %d)", t0, threads_now());
  ch_watchdog_set_step(3);
  ch_watchdog_enter("allreduce");
  ch_watchdog_enter("wait");
  ch_watchdog_leave();
  ch_watchdog_leave();
  ch_watchdog_leave(); /* unbalanced leave: ignored */
  some_collectives(&g, 10);
  ch_watchdog_stop();
  CHT_ASSERT(ch_watchdog_start(NULL, 1.0) == CH_ERR_INVALID, "start on a NULL group must fail");
  /* The first non-blocking collective started the group's progress thread (src/comm/progress.c). */
  t0 = threads_now();

  /* On: one more thread; a second start is refused; enter/leave stay cheap. */
  CHT_OK(ch_watchdog_start(&g, 5.0));
  CHT_ASSERT(threads_now() == t0 + 1, "watchdog running: %d threads, expected %d", threads_now(), t0 + 1);
  CHT_ASSERT(ch_watchdog_start(&g, 5.0) == CH_ERR_INVALID, "a second start must fail");
  ch_error_clear();
  double on = pair_ns(0);
  if (lead) printf("enter+leave, watchdog on: %.2f ns per pair\n", on);
  CHT_ASSERT(on < 100.0, "enter+leave with the watchdog on cost %.1f ns per pair", on);
  for (int64_t s = 0; s < 20; s++) {
    ch_watchdog_set_step(s);
    some_collectives(&g, 10);
  }
  double t = ch_time();
  ch_watchdog_stop();
  double stop_s = ch_time() - t;
  if (lead) printf("stop took %.3f ms\n", stop_s * 1e3);
  CHT_ASSERT(stop_s < 0.1, "stop took %.3f s: it must wake the thread, not wait for a tick", stop_s);
  int after = threads_settled(t0);
  CHT_ASSERT(after == t0, "after stop: %d threads, expected %d", after, t0);

  /* Restart with a short timeout; waits of half the timeout raise no alarm. */
  CHT_OK(ch_watchdog_start(&g, 1.0));
  for (int i = 0; i < 3; i++) {
    if (rt->world_rank == i % rt->world_size) usleep(500 * 1000);
    some_collectives(&g, 2);
  }
  ch_watchdog_stop();
  ch_watchdog_stop(); /* twice: no-op */

  /* Left running: ch_runtime_finalize stops it. */
  CHT_OK(ch_watchdog_start(&g, 5.0));
  some_collectives(&g, 5);
  if (lead) printf("ok watchdog (%d ranks)\n", rt->world_size);
  ch_group_destroy(&g);
  ch_runtime_finalize();
  return 0;
}
