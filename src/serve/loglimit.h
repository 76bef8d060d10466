/* A rate limit for log lines that clients can cause (malformed requests, cut connections): at
 * most max_lines per window, then a count of what was left out. One request per line would
 * otherwise let any client fill the disk (a fuzzer's 133,000 requests wrote 5 MB). */
#pragma once
#include <pthread.h>

typedef struct serve_loglimit {
  pthread_mutex_t lock;
  double window;           /* seconds */
  int max_lines;           /* lines per window */
  double start;            /* the current window's start; 0 = none yet */
  int lines;               /* lines logged in it */
  unsigned long suppressed; /* lines left out since the last report of them */
} serve_loglimit;

/* A limiter of max_lines per window seconds. */
void serve_loglimit_init(serve_loglimit *l, int max_lines, double window);
void serve_loglimit_destroy(serve_loglimit *l);
/* Whether one more line may be logged at time `now`. *dropped: the lines left out before this
 * one, when a new window begins (to report first), else 0. Thread-safe. */
int serve_loglimit_take(serve_loglimit *l, double now, unsigned long *dropped);
/* The lines left out and not yet reported (and forgets them): for a last report at shutdown. */
unsigned long serve_loglimit_flush(serve_loglimit *l);
