/* Connection tracking and the request deadline (conns.h). */
#include "serve/conns.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include "cohort/log.h"
#include "cohort/runtime.h"

typedef struct track {
  int fd;
  double since;    /* when the current request's clock started */
  int arrived;     /* the request has fully arrived: no deadline */
  int cut;         /* shut down already */
  struct track *prev, *next;
} track;

struct serve_conns {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  pthread_t thread;
  int stopping;
  double deadline, tick;
  serve_loglimit log;  /* its own: libmicrohttpd's lines must not crowd these out */
  track *head;
  unsigned long cut, unlogged; /* cut in all; of them, not yet in a log line */
};

void serve_conns_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                        enum MHD_ConnectionNotificationCode code) {
  serve_conns *t = cls;
  if (code == MHD_CONNECTION_NOTIFY_STARTED) {
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    track *k = info ? calloc(1, sizeof *k) : NULL;
    *socket_context = k;
    if (!k) return; /* untracked: only libmicrohttpd's own timeout applies */
    k->fd = info->connect_fd;
    k->since = ch_time();
    pthread_mutex_lock(&t->lock);
    k->next = t->head;
    if (t->head) t->head->prev = k;
    t->head = k;
    pthread_mutex_unlock(&t->lock);
    return;
  }
  track *k = *socket_context;
  if (!k) return;
  pthread_mutex_lock(&t->lock);
  if (k->prev) k->prev->next = k->next;
  else t->head = k->next;
  if (k->next) k->next->prev = k->prev;
  pthread_mutex_unlock(&t->lock);
  free(k);
  *socket_context = NULL;
}

void serve_conns_arrived(serve_conns *t, struct MHD_Connection *c, int arrived) {
  const union MHD_ConnectionInfo *info =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  track *k = info ? info->socket_context : NULL;
  if (!k) return;
  pthread_mutex_lock(&t->lock);
  k->arrived = arrived;
  if (!arrived) k->since = ch_time();
  pthread_mutex_unlock(&t->lock);
}

unsigned long serve_conns_cut(serve_conns *t) {
  pthread_mutex_lock(&t->lock);
  unsigned long n = t->cut;
  pthread_mutex_unlock(&t->lock);
  return n;
}

/* Shuts down the late connections (lock held); returns how many. */
static int sweep(serve_conns *t, double now) {
  int n = 0;
  for (track *k = t->head; k; k = k->next) {
    if (k->arrived || k->cut || now - k->since <= t->deadline) continue;
    shutdown(k->fd, SHUT_RDWR); /* the connection's thread reads end-of-stream and closes it */
    k->cut = 1;
    n++;
  }
  t->cut += (unsigned long)n;
  t->unlogged += (unsigned long)n;
  return n;
}

static void *sweeper(void *arg) {
  serve_conns *t = arg;
  pthread_mutex_lock(&t->lock);
  while (!t->stopping) {
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    long ns = until.tv_nsec + (long)(t->tick * 1e9);
    until.tv_sec += ns / 1000000000L;
    until.tv_nsec = ns % 1000000000L;
    pthread_cond_timedwait(&t->cond, &t->lock, &until);
    if (t->stopping) break;
    if (sweep(t, ch_time()) == 0) continue;
    /* A line counts every cut since the last line, so none goes unreported for long. */
    unsigned long dropped;
    if (!serve_loglimit_take(&t->log, ch_time(), &dropped)) continue;
    unsigned long n = t->unlogged, total = t->cut;
    t->unlogged = 0;
    pthread_mutex_unlock(&t->lock);
    CH_WARN("http: closed %lu connection(s) whose request had not arrived within %g s (%lu in all)",
            n, t->deadline, total);
    pthread_mutex_lock(&t->lock);
  }
  pthread_mutex_unlock(&t->lock);
  return NULL;
}

serve_conns *serve_conns_start(double deadline) {
  serve_conns *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->deadline = deadline;
  t->tick = deadline / 8 < 0.25 ? deadline / 8 : 0.25;
  if (t->tick < 0.01) t->tick = 0.01;
  serve_loglimit_init(&t->log, 6, 60.0);
  pthread_mutex_init(&t->lock, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&t->cond, &ca);
  pthread_condattr_destroy(&ca);
  /* Signals belong to the main thread (it polls them). */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  int rc = pthread_create(&t->thread, NULL, sweeper, t);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0) {
    serve_loglimit_destroy(&t->log);
    pthread_cond_destroy(&t->cond);
    pthread_mutex_destroy(&t->lock);
    free(t);
    return NULL;
  }
  return t;
}

void serve_conns_stop(serve_conns *t) {
  if (!t) return;
  pthread_mutex_lock(&t->lock);
  t->stopping = 1;
  pthread_cond_signal(&t->cond);
  pthread_mutex_unlock(&t->lock);
  pthread_join(t->thread, NULL);
  while (t->head) { /* none after MHD_stop_daemon; freed in case */
    track *k = t->head;
    t->head = k->next;
    free(k);
  }
  if (t->unlogged)
    CH_WARN("http: closed %lu connection(s) whose request had not arrived within %g s (%lu in all)",
            t->unlogged, t->deadline, t->cut);
  serve_loglimit_destroy(&t->log);
  pthread_cond_destroy(&t->cond);
  pthread_mutex_destroy(&t->lock);
  free(t);
}
