/* The batching policy (src/serve/batch.c) alone: no MPI, no HTTP, a made-up clock.
 *  - idle: wait (at most the idle poll); draining with nothing in flight: stop;
 *  - generation: running sequences step; waiting ones join free slots; a reload waits for
 *    running sequences, then goes before new ones join;
 *  - V2: a partial batch waits until its oldest request has waited max_delay (and says until
 *    when), goes at once when full, when draining, or when every accepted request is queued;
 *  - which requests a batch takes: whole requests up to max_batch rows, the first always. */
#include <stdio.h>

#include "serve/batch.h"
#include "testlib.h"

static serve_queue_view base(void) {
  return (serve_queue_view){.accepting = 1, .slots = 4, .max_batch = 8, .max_delay = 0.002};
}

int main(void) {
  double until = 0;
  serve_queue_view q = base();
  CHT_ASSERT(serve_batch_decide(&q, 10.0, &until) == SERVE_DO_WAIT && until > 10.0 &&
             until <= 10.0 + SERVE_IDLE_POLL, "idle: wait, at most the idle poll");
  q.accepting = 0;
  CHT_ASSERT(serve_batch_decide(&q, 10.0, &until) == SERVE_DO_STOP, "draining, nothing in flight");
  q.inflight = 1;
  CHT_ASSERT(serve_batch_decide(&q, 10.0, &until) == SERVE_DO_WAIT, "draining, one in flight");

  q = base();
  q.gen_running = 2;
  q.reload_waiting = 1;
  CHT_ASSERT(serve_batch_decide(&q, 0, &until) == SERVE_DO_GEN, "a reload waits for running sequences");
  q.gen_running = 0;
  q.gen_waiting = 1;
  CHT_ASSERT(serve_batch_decide(&q, 0, &until) == SERVE_DO_RELOAD, "then goes before new ones join");
  q.reload_waiting = 0;
  CHT_ASSERT(serve_batch_decide(&q, 0, &until) == SERVE_DO_GEN, "waiting sequences join");
  q.gen_running = 4;
  q.gen_waiting = 1;
  CHT_ASSERT(serve_batch_decide(&q, 0, &until) == SERVE_DO_GEN, "full slots still step");

  q = base();
  q.inflight = 3;
  q.queued = 2;
  q.infer_rows = 3;
  q.infer_oldest = 5.0;
  CHT_ASSERT(serve_batch_decide(&q, 5.001, &until) == SERVE_DO_WAIT && until == 5.0 + 0.002,
             "a partial batch waits for its oldest request's delay (until %g)", until);
  CHT_ASSERT(serve_batch_decide(&q, 5.002, &until) == SERVE_DO_INFER, "the delay is over");
  q.infer_rows = 8;
  CHT_ASSERT(serve_batch_decide(&q, 5.0, &until) == SERVE_DO_INFER, "a full batch goes at once");
  q.infer_rows = 3;
  q.queued = q.inflight;
  CHT_ASSERT(serve_batch_decide(&q, 5.0, &until) == SERVE_DO_INFER,
             "every accepted request is queued: nothing more can come");
  q.queued = 2;
  q.accepting = 0;
  CHT_ASSERT(serve_batch_decide(&q, 5.0, &until) == SERVE_DO_INFER, "draining: no waiting");

  /* The periodic SYNC op: first when due, and no wait outlasts it. */
  q = base();
  q.sync_due = 7.0;
  CHT_ASSERT(serve_batch_decide(&q, 6.99, &until) == SERVE_DO_WAIT && until <= 7.0, "sync not due");
  CHT_ASSERT(serve_batch_decide(&q, 7.0, &until) == SERVE_DO_SYNC, "sync due while idle");
  q.gen_running = 2;
  CHT_ASSERT(serve_batch_decide(&q, 7.5, &until) == SERVE_DO_SYNC, "sync due while generating");
  q.gen_running = 0;
  q.inflight = q.queued = 1;
  q.infer_rows = 1;
  q.infer_oldest = 6.999;
  q.max_delay = 0.5;
  CHT_ASSERT(serve_batch_decide(&q, 6.9995, &until) == SERVE_DO_INFER, "every accepted request queued");
  q.inflight = 2;
  CHT_ASSERT(serve_batch_decide(&q, 6.9995, &until) == SERVE_DO_WAIT && until == 7.0,
             "a partial batch's wait ends at the sync (until %g)", until);

  int rows[] = {3, 4, 2, 1};
  CHT_ASSERT(serve_batch_take(rows, 4, 8) == 2, "3 + 4 rows fit 8, 3 + 4 + 2 do not");
  CHT_ASSERT(serve_batch_take(rows, 4, 2) == 1, "the first request always goes");
  CHT_ASSERT(serve_batch_take(rows, 0, 8) == 0, "an empty queue");
  int ones[] = {1, 1, 1};
  CHT_ASSERT(serve_batch_take(ones, 3, 8) == 3, "all of a short queue");
  printf("PASS: batching policy\n");
  return 0;
}
