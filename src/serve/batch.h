/* The executor's batching policy as pure functions: given the queue's state and the clock, what
 * to run now (no locks, MPI or HTTP; tests/serve/test_batch.c checks it alone). lead.c fills
 * the state from the queue under its lock and does what this says. */
#pragma once
#include <stdint.h>

typedef enum serve_action {
  SERVE_DO_WAIT,   /* nothing to do before *until (or new work) */
  SERVE_DO_INFER,  /* run a V2 batch (serve_batch_take says which requests) */
  SERVE_DO_GEN,    /* run one continuous-batching generation step */
  SERVE_DO_RELOAD, /* switch models (no generation is running) */
  SERVE_DO_SYNC,   /* the periodic op every rank joins: signal vote, liveness (wire.h) */
  SERVE_DO_STOP    /* shut down: not accepting, nothing in flight */
} serve_action;

typedef struct serve_queue_view {
  int accepting;         /* still taking requests (no shutdown signal yet) */
  int inflight;          /* accepted and not finished */
  int queued;            /* of them, waiting in a queue */
  int reload_waiting;    /* a reload is queued */
  int gen_running;       /* sequences in KV slots */
  int gen_waiting;       /* generation requests queued */
  int slots;             /* KV slots (--max-batch-size) */
  int64_t infer_rows;    /* rows of the queued V2 requests, counted until max_batch is reached */
  double infer_oldest;   /* when the oldest queued V2 request was queued (if infer_rows > 0) */
  int max_batch;         /* --max-batch-size */
  double max_delay;      /* --max-queue-delay-us, in seconds */
  double sync_due;       /* when the next SYNC op is due; 0 = never */
} serve_queue_view;

/* How often an idle executor looks again (to notice signals). */
#define SERVE_IDLE_POLL 0.050
/* How often the leader runs a SYNC op, busy or idle: a signal that reached any rank stops the
 * server within about this long, and a hung rank stalls the leader in a collective, where the
 * watchdog sees it. */
#define SERVE_SYNC_EVERY 0.5

/* What the executor does at time `now`; for SERVE_DO_WAIT, *until is the latest time to decide
 * again (new work may come sooner). A due SYNC goes first (it is cheap). Running generations go first and hold back a reload (their
 * KV caches belong to the old weights); a V2 batch waits for more rows up to max_delay after
 * its oldest request, unless it is full, the server is draining, or every accepted request is
 * already queued (closed-loop clients: nothing more can come). */
serve_action serve_batch_decide(const serve_queue_view *q, double now, double *until);

/* How many queued V2 requests (rows[i] each, in queue order) one batch takes: whole requests
 * up to max_batch rows, and always the first. */
int serve_batch_take(const int *rows, int n, int max_batch);
