/* A deadline on the close of a checkpoint whose save already failed. After a failed write,
 * HDF5's H5Fclose retries the metadata flush; if that fails again on some ranks only, they
 * leave HDF5's barrier early and the ranks deadlock inside H5Fclose (issue: "disk full during
 * the metadata flush"). space.c makes that unlikely; this bounds it: a helper thread ends the
 * job with a message naming the file when the close has not returned in time, after rank 0
 * removed the partial file (the other ranks wait a little longer, so that rank 0 does it). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ckpt/ckpt_internal.h"
#include "cohort/runtime.h"

struct ckpt_deadline {
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int done, rank;
  double seconds;
  char path[CH_PATH_MAX * 2 + 16], why[512];
};

static void *watch(void *arg) {
  ckpt_deadline *d = arg;
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  double s = d->seconds + (d->rank == 0 ? 0.0 : 5.0);
  until.tv_sec += (time_t)s;
  until.tv_nsec += (long)((s - (double)(time_t)s) * 1e9);
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&d->lock);
  int rc = 0;
  while (!d->done && rc != ETIMEDOUT) rc = pthread_cond_timedwait(&d->cond, &d->lock, &until);
  int expired = !d->done;
  pthread_mutex_unlock(&d->lock);
  if (!expired) return NULL;
  if (d->rank == 0) unlink(d->path);
  /* `why` names the file already unless it is empty */
  ch_runtime_fatal(CH_ERR_IO, "%s%s%s; closing the file did not finish within %.0f s (HDF5 "
                   "cannot close a file whose flush failed on some ranks): the partial file is "
                   "removed, the previous checkpoints and `latest` are unchanged",
                   strstr(d->why, d->path) ? "" : d->path, strstr(d->why, d->path) ? "" : ": ",
                   d->why, s);
}

ckpt_deadline *ckpt_deadline_arm(const char *path, int rank, double seconds, const char *why) {
  ckpt_deadline *d = calloc(1, sizeof *d);
  if (!d) return NULL;
  snprintf(d->path, sizeof d->path, "%s", path);
  snprintf(d->why, sizeof d->why, "%s", why);
  d->rank = rank;
  d->seconds = seconds;
  pthread_mutex_init(&d->lock, NULL);
  pthread_cond_init(&d->cond, NULL);
  if (pthread_create(&d->thread, NULL, watch, d) != 0) {
    pthread_cond_destroy(&d->cond);
    pthread_mutex_destroy(&d->lock);
    free(d);
    return NULL;
  }
  return d;
}

void ckpt_deadline_disarm(ckpt_deadline *d) {
  if (!d) return;
  pthread_mutex_lock(&d->lock);
  d->done = 1;
  pthread_cond_signal(&d->cond);
  pthread_mutex_unlock(&d->lock);
  pthread_join(d->thread, NULL);
  pthread_cond_destroy(&d->cond);
  pthread_mutex_destroy(&d->lock);
  free(d);
}
