/* The log-line rate limit (loglimit.h). */
#include "serve/loglimit.h"

void serve_loglimit_init(serve_loglimit *l, int max_lines, double window) {
  pthread_mutex_init(&l->lock, NULL);
  l->window = window;
  l->max_lines = max_lines;
  l->start = 0;
  l->lines = 0;
  l->suppressed = 0;
}

void serve_loglimit_destroy(serve_loglimit *l) { pthread_mutex_destroy(&l->lock); }

int serve_loglimit_take(serve_loglimit *l, double now, unsigned long *dropped) {
  pthread_mutex_lock(&l->lock);
  *dropped = 0;
  if (l->start == 0 || now - l->start >= l->window) {
    l->start = now;
    l->lines = 0;
    *dropped = l->suppressed;
    l->suppressed = 0;
  }
  int ok = l->lines < l->max_lines;
  if (ok) l->lines++;
  else l->suppressed++;
  pthread_mutex_unlock(&l->lock);
  return ok;
}

unsigned long serve_loglimit_flush(serve_loglimit *l) {
  pthread_mutex_lock(&l->lock);
  unsigned long n = l->suppressed;
  l->suppressed = 0;
  pthread_mutex_unlock(&l->lock);
  return n;
}
