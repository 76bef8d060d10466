/* Triton's statistics extension (stats.h): per-version cumulative counts and durations. Few
 * versions live at once (a reload replaces the model), so the store is a small array; when it
 * is full the version observed least recently is dropped, so a long run of reloads never grows
 * it. Batch sizes are at most --max-batch-size rows or sequences (a V2 request may bring more
 * rows in one batch), kept in a sorted array that grows on demand. */
#include "serve/stats.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serve/jsonw.h"

#define STATS_VERSIONS 8

typedef struct dur { uint64_t count, ns; } dur;

typedef struct batch_stat {
  int64_t size;
  dur input, infer, output;
} batch_stat;

typedef struct vstats {
  char version[32];
  uint64_t touched; /* observation sequence number: which version to drop when full */
  uint64_t last_inference_ms, inference_count, execution_count;
  dur success, fail, queue, input, infer, output;
  batch_stat *batch;
  int nbatch, capbatch;
} vstats;

struct serve_stats {
  pthread_mutex_t lock;
  vstats v[STATS_VERSIONS];
  int n;
  uint64_t seq;
};

serve_stats *serve_stats_create(void) {
  serve_stats *st = calloc(1, sizeof *st);
  if (st) pthread_mutex_init(&st->lock, NULL);
  return st;
}

void serve_stats_destroy(serve_stats *st) {
  if (!st) return;
  for (int i = 0; i < st->n; i++) free(st->v[i].batch);
  pthread_mutex_destroy(&st->lock);
  free(st);
}

static uint64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Adds one occurrence of `seconds` (a negative or unknown span counts as 0 ns). */
static void add(dur *d, double seconds) {
  d->count++;
  if (seconds > 0) d->ns += (uint64_t)(seconds * 1e9 + 0.5);
}

/* The version's entry (lock held), created when new; NULL only for a NULL version. */
static vstats *find(serve_stats *st, const char *version, int create) {
  if (!version) return NULL;
  for (int i = 0; i < st->n; i++)
    if (!strcmp(st->v[i].version, version)) return &st->v[i];
  if (!create) return NULL;
  int at = st->n;
  if (st->n == STATS_VERSIONS) { /* full: reuse the least recently observed version's slot */
    at = 0;
    for (int i = 1; i < st->n; i++)
      if (st->v[i].touched < st->v[at].touched) at = i;
    free(st->v[at].batch);
  } else {
    st->n++;
  }
  memset(&st->v[at], 0, sizeof st->v[at]);
  snprintf(st->v[at].version, sizeof st->v[at].version, "%s", version);
  return &st->v[at];
}

/* The entry of batch size `size` in v (lock held), inserted in order; NULL when out of memory. */
static batch_stat *batch_of(vstats *v, int64_t size) {
  int i = 0;
  while (i < v->nbatch && v->batch[i].size < size) i++;
  if (i < v->nbatch && v->batch[i].size == size) return &v->batch[i];
  if (v->nbatch == v->capbatch) {
    int cap = v->capbatch ? 2 * v->capbatch : 8;
    batch_stat *b = realloc(v->batch, sizeof *b * (size_t)cap);
    if (!b) return NULL;
    v->batch = b;
    v->capbatch = cap;
  }
  memmove(&v->batch[i + 1], &v->batch[i], sizeof *v->batch * (size_t)(v->nbatch - i));
  v->nbatch++;
  memset(&v->batch[i], 0, sizeof v->batch[i]);
  v->batch[i].size = size;
  return &v->batch[i];
}

void serve_stats_request(serve_stats *st, const char *version, const serve_req_times *t) {
  if (!st) return;
  pthread_mutex_lock(&st->lock);
  vstats *v = find(st, version, 1);
  if (v) {
    v->touched = ++st->seq;
    v->last_inference_ms = wall_ms();
    if (t->ok) {
      add(&v->success, t->ended - t->created);
      add(&v->input, t->enqueued - t->created);
      add(&v->queue, t->started - t->enqueued);
      add(&v->infer, t->done - t->started);
      add(&v->output, t->ended - t->done);
    } else {
      add(&v->fail, t->ended - t->created);
    }
  }
  pthread_mutex_unlock(&st->lock);
}

void serve_stats_execution(serve_stats *st, const char *version, int64_t batch, double seconds) {
  if (!st || batch < 1) return;
  pthread_mutex_lock(&st->lock);
  vstats *v = find(st, version, 1);
  if (v) {
    v->touched = ++st->seq;
    v->last_inference_ms = wall_ms();
    v->execution_count++;
    v->inference_count += (uint64_t)batch;
    batch_stat *b = batch_of(v, batch);
    if (b) {
      add(&b->input, 0);
      add(&b->infer, seconds);
      add(&b->output, 0);
    }
  }
  pthread_mutex_unlock(&st->lock);
}

static void put_dur(jsonw *w, const char *key, const dur *d, int comma) {
  jsonw_fmt(w, "%s\"%s\":{\"count\":%llu,\"ns\":%llu}", comma ? "," : "", key,
            (unsigned long long)d->count, (unsigned long long)d->ns);
}

static void put_version(jsonw *w, const char *model, const char *version, const vstats *v) {
  static const vstats zero;
  if (!v) v = &zero;
  jsonw_raw(w, "{\"name\":", 8);
  jsonw_str(w, model, strlen(model));
  jsonw_raw(w, ",\"version\":", 11);
  jsonw_str(w, version, strlen(version));
  jsonw_fmt(w, ",\"last_inference\":%llu,\"inference_count\":%llu,\"execution_count\":%llu,",
            (unsigned long long)v->last_inference_ms, (unsigned long long)v->inference_count,
            (unsigned long long)v->execution_count);
  jsonw_raw(w, "\"inference_stats\":{", 19);
  put_dur(w, "success", &v->success, 0);
  put_dur(w, "fail", &v->fail, 1);
  put_dur(w, "queue", &v->queue, 1);
  put_dur(w, "compute_input", &v->input, 1);
  put_dur(w, "compute_infer", &v->infer, 1);
  put_dur(w, "compute_output", &v->output, 1);
  put_dur(w, "cache_hit", &zero.success, 1); /* no response cache: always 0 */
  put_dur(w, "cache_miss", &zero.success, 1);
  jsonw_raw(w, "},\"batch_stats\":[", 17);
  for (int i = 0; i < v->nbatch; i++) {
    const batch_stat *b = &v->batch[i];
    jsonw_fmt(w, "%s{\"batch_size\":%lld", i ? "," : "", (long long)b->size);
    put_dur(w, "compute_input", &b->input, 1);
    put_dur(w, "compute_infer", &b->infer, 1);
    put_dur(w, "compute_output", &b->output, 1);
    jsonw_raw(w, "}", 1);
  }
  jsonw_raw(w, "]}", 2);
}

char *serve_stats_json(serve_stats *st, const char *model, const char *const *versions, int n) {
  jsonw w = {0};
  jsonw_raw(&w, "{\"model_stats\":[", 16);
  if (st) pthread_mutex_lock(&st->lock);
  for (int i = 0; i < n; i++) {
    if (i) jsonw_raw(&w, ",", 1);
    put_version(&w, model, versions[i], st ? find(st, versions[i], 0) : NULL);
  }
  if (st) pthread_mutex_unlock(&st->lock);
  jsonw_raw(&w, "]}", 2);
  return jsonw_finish(&w);
}
