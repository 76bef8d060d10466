/* ch_train_run when the collective watchdog cannot start (here: one is already running): the
 * error comes back, and nothing that was never set up is torn down (the trainer used to be
 * torn down uninitialised: fclose/free of stack garbage, a crash). */
#include <stdio.h>

#include "cohort/config.h"
#include "cohort/runtime.h"
#include "cohort/train.h"
#include "cohort/watchdog.h"
#include "testlib.h"

/* Leaves non-zero garbage in the stack that ch_train_run's frame will reuse next, so that an
 * uninitialised trainer is garbage rather than (by luck) zeros. */
static __attribute__((noinline)) void dirty_stack(void) {
  volatile unsigned char junk[64 * 1024];
  for (size_t i = 0; i < sizeof junk; i++) junk[i] = 0xA5;
}

int main(int argc, char **argv) {
  ch_runtime *rt;
  CHT_OK(ch_runtime_init(&argc, &argv, NULL, &rt));
  ch_group world;
  CHT_OK(ch_group_world(&world));
  CHT_OK(ch_watchdog_start(&world, 60.0));
  ch_config c;
  ch_config_defaults(&c);
  c.run.watchdog_timeout = 60.0; /* ch_train_run starts its own: refused, one is running */
  ch_train_result r;
  dirty_stack();
  ch_status st = ch_train_run(&c, &world, 0, &r);
  CHT_ASSERT(st != CH_OK, "ch_train_run ran although its watchdog could not start");
  printf("PASS: a watchdog that cannot start fails ch_train_run cleanly (%s)\n", ch_error_message());
  ch_watchdog_stop();
  ch_group_destroy(&world);
  ch_runtime_finalize();
  return 0;
}
