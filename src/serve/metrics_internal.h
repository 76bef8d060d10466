/* The registry's data structures, shared by metrics.c (registration, updates) and
 * metrics_text.c (the text format). See metrics.c for the concurrency design. */
#pragma once
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "serve/metrics.h"

#define CH_METRIC_CHAINS 64 /* hash chains per family; servers have a few dozen series */

typedef struct series {
  struct series *hash_next;  /* set before publication, then immutable */
  struct series *order_next; /* creation order; guarded by the family mutex */
  uint64_t hash;
  char **values;                /* nlabels copies of the label values */
  _Atomic uint64_t value;       /* bits of the counter/gauge value or of the histogram sum */
  _Atomic uint64_t buckets[];   /* histogram: nbounds + 1 counts, the last one is +Inf */
} series;

struct metric {
  char *name, *help;
  metric_type type;
  int nlabels, nbounds;
  char **label_names;
  double *bounds;
  pthread_mutex_t lock; /* series creation and render */
  _Atomic(series *) chains[CH_METRIC_CHAINS];
  series *first, *last;
  _Atomic unsigned long long dropped;
};

struct metrics {
  pthread_mutex_t lock; /* the family list */
  metric **fams;
  int n, cap;
};


/* The protocol's name of a metric type. */
static inline const char *metric_type_name(metric_type t) {
  return t == CH_METRIC_COUNTER ? "counter" : t == CH_METRIC_GAUGE ? "gauge" : "histogram";
}

/* A double as the bits an atomic holds, and back. */
static inline uint64_t metric_dbits(double v) { uint64_t u; memcpy(&u, &v, sizeof u); return u; }
static inline double metric_dfrom(uint64_t u) { double v; memcpy(&v, &u, sizeof v); return v; }

/* metrics_names.c: checks metrics_register's arguments (the label count into *nlabels). */
ch_status metric_check_family(const char *name, metric_type type, const char *const *labels,
                              const double *bounds, int nbounds, int *nlabels);
/* 1 when two families' sample names (with _count, _sum, _bucket, _total) could collide. */
int metric_samples_collide(const char *a, metric_type ta, const char *b, metric_type tb);
