/* The TensorBoard event file of a run (run.tensorboard): rank 0 appends one Event of scalars per
 * progress line, the same numbers as metrics.jsonl (progress_scalars). A plot never stops a
 * run: any failure warns once and turns the writer off. At the end, one Event of the per-rank
 * memory (memory.json's numbers in MiB). Encoding: src/train/tfevents.c. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cohort/fs.h"
#include "cohort/log.h"
#include "train/tfevents.h"
#include "train/train_internal.h"

struct tb_writer {
  FILE *f;
  char path[CH_PATH_MAX + 128];
};

static double wall_time(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Frames the event built by the arguments (tfevents_event's) and writes it; 0 or -1 (errno). */
static int write_event(FILE *f, int64_t step, const char *file_version, int session_start,
                       const tfevents_scalar *s, int n) {
  double now = wall_time();
  size_t len = tfevents_event(now, step, file_version, session_start, s, n, NULL);
  uint8_t *buf = malloc(2 * len + TFEVENTS_RECORD_OVERHEAD);
  if (!buf) return -1;
  tfevents_event(now, step, file_version, session_start, s, n, buf);
  uint8_t *rec = buf + len;
  size_t total = tfevents_record(buf, len, rec);
  int ok = fwrite(rec, 1, total, f) == total && fflush(f) == 0;
  free(buf);
  return ok ? 0 : -1;
}

/* The one warning, then the writer stays off (w->f NULL). */
static void fail(tb_writer *w, const char *what) {
  CH_WARN("TensorBoard: cannot %s %s: %s; training goes on without it (run.tensorboard)", what,
          w->path, strerror(errno));
  if (w->f) fclose(w->f);
  w->f = NULL;
}

tb_writer *tb_open(const char *run_dir, int64_t step) {
  tb_writer *w = calloc(1, sizeof *w);
  if (!w) {
    CH_WARN("TensorBoard: out of memory; training goes on without it (run.tensorboard)");
    return NULL;
  }
  char host[256] = "localhost";
  if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "localhost");
  host[sizeof host - 1] = '\0';
  snprintf(w->path, sizeof w->path, "%s/events.out.tfevents.%lld.%s.%ld", run_dir,
           (long long)time(NULL), host, (long)getpid());
  w->f = fopen(w->path, "wbx"); /* a new file: never another process's */
  if (!w->f) fail(w, "create");
  else if (write_event(w->f, step, "brain.Event:2", 0, NULL, 0) != 0) fail(w, "write");
  /* TensorBoard keeps the points before a START's step: those up to the resumed step, which
   * metrics.jsonl keeps too; none of an earlier run restarted from scratch (step 0). */
  else if (write_event(w->f, step + 1, NULL, 1, NULL, 0) != 0) fail(w, "write");
  if (!w->f) {
    free(w);
    return NULL;
  }
  CH_DEBUG("TensorBoard events: %s", w->path);
  return w;
}

void tb_write(tb_writer *w, const progress *p) {
  if (!w || !w->f) return;
  progress_scalar s[PROGRESS_MAX_SCALARS];
  tfevents_scalar v[PROGRESS_MAX_SCALARS];
  int n = progress_scalars(p, s), k = 0;
  for (int i = 0; i < n; i++)
    if (s[i].tag && isfinite(s[i].value)) v[k++] = (tfevents_scalar){s[i].tag, (float)s[i].value};
  if (write_event(w->f, p->step, NULL, 0, v, k) != 0) fail(w, "write");
}

void tb_write_memory(tb_writer *w, int64_t step, const char *const *names, const double *mib,
                     int n) {
  if (!w || !w->f) return;
  enum { MAX = 8 };
  char tags[MAX][48];
  tfevents_scalar v[MAX];
  int k = 0;
  for (int i = 0; i < n && k < MAX; i++) {
    snprintf(tags[k], sizeof tags[k], "memory/%s_mib", names[i]);
    v[k] = (tfevents_scalar){tags[k], (float)mib[i]};
    k++;
  }
  if (write_event(w->f, step, NULL, 0, v, k) != 0) fail(w, "write");
}

void tb_close(tb_writer *w) {
  if (!w) return;
  if (w->f && fclose(w->f) != 0) CH_WARN("TensorBoard: closing %s: %s", w->path, strerror(errno));
  free(w);
}
