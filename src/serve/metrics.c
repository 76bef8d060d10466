/* Prometheus metrics: a registry of families, lock-free series updates, text format 0.0.4.
 *
 * A family keeps its series in a small hash table whose chains are only ever prepended to,
 * with release stores, and never shrink before destroy; so an update finds an existing series
 * without a lock and a series pointer stays valid for the registry's lifetime. Creating a
 * series takes the family mutex (the chain is scanned again under it, so two threads racing
 * on a new label combination create it once). Values are doubles stored as their bit pattern
 * in a 64-bit atomic: set is a store, add is a compare-and-swap loop. Histogram buckets are
 * non-cumulative atomic counts; render sums them into the cumulative le buckets, and _count is
 * the +Inf bucket of that same read, so the two always agree.
 * Numbers are formatted with snprintf/strtod, which assumes the "C" numeric locale (cohort
 * never calls setlocale). */
#include "serve/metrics_internal.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* *p += v on the double whose bits *p holds. */
static void atomic_add_double(_Atomic uint64_t *p, double v) {
  uint64_t old = atomic_load_explicit(p, memory_order_relaxed);
  while (!atomic_compare_exchange_weak_explicit(p, &old, metric_dbits(metric_dfrom(old) + v),
                                                memory_order_relaxed, memory_order_relaxed)) {
  }
}


/* 1 when family f equals the described one. */
static int same_family(const metric *f, const char *help, metric_type type,
                       const char *const *labels, int nlabels, const double *bounds,
                       int nbounds) {
  if (f->type != type || strcmp(f->help, help) || f->nlabels != nlabels) return 0;
  for (int i = 0; i < nlabels; i++)
    if (strcmp(f->label_names[i], labels[i])) return 0;
  if (f->nbounds != (type == CH_METRIC_HISTOGRAM ? nbounds : 0)) return 0;
  for (int i = 0; i < f->nbounds; i++)
    if (f->bounds[i] != bounds[i]) return 0;
  return 1;
}

static void free_strings(char **s, int n) {
  for (int i = 0; s && i < n; i++) free(s[i]);
  free(s);
}

/* Copies n strings into a new malloc'ed array; NULL when out of memory. */
static char **dup_strings(const char *const *s, int n) {
  char **out = calloc(n ? (size_t)n : 1, sizeof *out);
  for (int i = 0; out && i < n; i++)
    if (!(out[i] = strdup(s[i]))) { free_strings(out, n); return NULL; }
  return out;
}

static void family_free(metric *f) {
  if (!f) return;
  for (series *s = f->first, *next; s; s = next) {
    next = s->order_next;
    free_strings(s->values, f->nlabels);
    free(s);
  }
  pthread_mutex_destroy(&f->lock);
  free_strings(f->label_names, f->nlabels);
  free(f->bounds), free(f->name), free(f->help), free(f);
}

static uint64_t hash_values(const char *const *v, int n) {
  uint64_t h = 1469598103934665603ULL; /* FNV-1a, 0xff between values */
  for (int i = 0; i < n; i++) {
    for (const unsigned char *c = (const unsigned char *)v[i]; *c; c++)
      h = (h ^ *c) * 1099511628211ULL;
    h = (h ^ 0xffu) * 1099511628211ULL;
  }
  return h;
}

static series *chain_find(series *s, uint64_t h, const char *const *v, int n) {
  for (; s; s = s->hash_next) {
    if (s->hash != h) continue;
    int i = 0;
    while (i < n && !strcmp(s->values[i], v[i])) i++;
    if (i == n) return s;
  }
  return NULL;
}

/* The series of f for label values v, created (with zero values) on first use; NULL when v
 * is unusable or memory runs out. Lock-free when the series exists. */
static series *series_get(metric *f, const char *const *v) {
  if (f->nlabels > 0) {
    if (!v) return NULL;
    for (int i = 0; i < f->nlabels; i++)
      if (!v[i]) return NULL;
  }
  uint64_t h = hash_values(v, f->nlabels);
  _Atomic(series *) *chain = &f->chains[h % CH_METRIC_CHAINS];
  series *s = chain_find(atomic_load_explicit(chain, memory_order_acquire), h, v, f->nlabels);
  if (s) return s;
  pthread_mutex_lock(&f->lock);
  series *head = atomic_load_explicit(chain, memory_order_relaxed);
  s = chain_find(head, h, v, f->nlabels);
  if (!s) {
    size_t nb = f->type == CH_METRIC_HISTOGRAM ? (size_t)f->nbounds + 1 : 0;
    s = malloc(sizeof *s + nb * sizeof s->buckets[0]);
    if (s && !(s->values = dup_strings(v, f->nlabels))) { free(s); s = NULL; }
    if (s) {
      s->hash_next = head, s->order_next = NULL, s->hash = h;
      atomic_init(&s->value, metric_dbits(0.0));
      for (size_t i = 0; i < nb; i++) atomic_init(&s->buckets[i], 0);
      if (f->last) f->last->order_next = s; else f->first = s;
      f->last = s;
      atomic_store_explicit(chain, s, memory_order_release); /* publishes the fields above */
    }
  }
  pthread_mutex_unlock(&f->lock);
  return s;
}

ch_status metrics_create(metrics **out) {
  if (!out) return CH_FAIL(CH_ERR_INVALID, "metrics_create: out is NULL");
  metrics *m = calloc(1, sizeof *m);
  if (!m) return CH_FAIL(CH_ERR_NOMEM, "metrics_create: out of memory");
  pthread_mutex_init(&m->lock, NULL);
  *out = m;
  return CH_OK;
}

void metrics_destroy(metrics *m) {
  if (!m) return;
  for (int i = 0; i < m->n; i++) family_free(m->fams[i]);
  free(m->fams);
  pthread_mutex_destroy(&m->lock);
  free(m);
}

/* Builds a new family (unlabelled ones get their single series); NULL when out of memory. */
static metric *family_new(const char *name, const char *help, metric_type type,
                          const char *const *labels, int nlabels, const double *bounds,
                          int nbounds) {
  metric *f = calloc(1, sizeof *f);
  if (!f) return NULL;
  pthread_mutex_init(&f->lock, NULL);
  f->type = type, f->nlabels = nlabels;
  f->nbounds = type == CH_METRIC_HISTOGRAM ? nbounds : 0;
  for (int i = 0; i < CH_METRIC_CHAINS; i++) atomic_init(&f->chains[i], NULL);
  atomic_init(&f->dropped, 0);
  f->name = strdup(name), f->help = strdup(help);
  f->label_names = dup_strings(labels, nlabels);
  f->bounds = malloc(sizeof *f->bounds * (f->nbounds ? (size_t)f->nbounds : 1));
  if (!f->name || !f->help || !f->label_names || !f->bounds) goto fail;
  if (f->nbounds) memcpy(f->bounds, bounds, sizeof *f->bounds * (size_t)f->nbounds);
  if (nlabels == 0 && !series_get(f, NULL)) goto fail;
  return f;
fail:
  family_free(f);
  return NULL;
}

ch_status metrics_register(metrics *m, const char *name, const char *help,
                           metric_type type, const char *const *label_names,
                           const double *bounds, int nbounds, metric **out) {
  if (!m) return CH_FAIL(CH_ERR_INVALID, "metrics_register: registry is NULL");
  if (!help) help = "";
  int nlabels = 0;
  CH_CHECK(metric_check_family(name, type, label_names, bounds, nbounds, &nlabels));
  ch_status st = CH_OK;
  metric *f = NULL;
  pthread_mutex_lock(&m->lock);
  for (int i = 0; i < m->n; i++) {
    metric *g = m->fams[i];
    if (!strcmp(g->name, name)) {
      if (same_family(g, help, type, label_names, nlabels, bounds, nbounds)) f = g;
      else
        st = CH_FAIL(CH_ERR_INVALID, "metric %s is already registered with a different type, "
                     "help, labels or buckets", name);
      goto done;
    }
    if (metric_samples_collide(g->name, g->type, name, type)) {
      st = CH_FAIL(CH_ERR_INVALID, "metric %s (%s) would render samples named like those "
                   "of %s (%s)", name, metric_type_name(type), g->name, metric_type_name(g->type));
      goto done;
    }
  }
  if (m->n == m->cap) {
    int cap = m->cap ? 2 * m->cap : 16;
    metric **fams = realloc(m->fams, sizeof *fams * (size_t)cap);
    if (!fams) { st = CH_FAIL(CH_ERR_NOMEM, "metric %s: out of memory", name); goto done; }
    m->fams = fams, m->cap = cap;
  }
  if (!(f = family_new(name, help, type, label_names, nlabels, bounds, nbounds))) {
    st = CH_FAIL(CH_ERR_NOMEM, "metric %s: out of memory", name);
    goto done;
  }
  m->fams[m->n++] = f;
done:
  pthread_mutex_unlock(&m->lock);
  if (st == CH_OK && out) *out = f;
  return st;
}

metric *metrics_find(metrics *m, const char *name) {
  metric *f = NULL;
  if (!m || !name) return NULL;
  pthread_mutex_lock(&m->lock);
  for (int i = 0; i < m->n && !f; i++)
    if (!strcmp(m->fams[i]->name, name)) f = m->fams[i];
  pthread_mutex_unlock(&m->lock);
  return f;
}

/* Counts and reports an ignored update on f. */
static void drop(metric *f, const char *op, const char *why) {
  if (f) atomic_fetch_add_explicit(&f->dropped, 1, memory_order_relaxed);
  (void)CH_FAIL(CH_ERR_INVALID, "%s on metric %s ignored: %s", op, f ? f->name : "(null)", why);
}

/* The series of f that an update `op` goes to, or NULL after drop(): no family, `refused` (why
 * this update does not apply to the family; NULL when it does), or no series (label values
 * missing, out of memory). */
static series *target(metric *f, const char *const *label_values, const char *op,
                      const char *refused) {
  if (!f) refused = "family is NULL";
  if (refused) {
    drop(f, op, refused);
    return NULL;
  }
  series *s = series_get(f, label_values);
  if (!s) drop(f, op, "missing label values or out of memory");
  return s;
}

void metric_inc(metric *f, const char *const *label_values, double v) {
  const char *refused = NULL;
  if (f && f->type == CH_METRIC_HISTOGRAM) refused = "it is a histogram (use observe)";
  else if (f && f->type == CH_METRIC_COUNTER && !(v >= 0))
    refused = "counter increment is negative or NaN";
  series *s = target(f, label_values, "inc", refused);
  if (s) atomic_add_double(&s->value, v);
}

void metric_set(metric *f, const char *const *label_values, double v) {
  series *s = target(f, label_values, "set",
                     f && f->type != CH_METRIC_GAUGE ? "only gauges can be set" : NULL);
  if (s) atomic_store_explicit(&s->value, metric_dbits(v), memory_order_relaxed);
}

void metric_observe(metric *f, const char *const *label_values, double v) {
  series *s = target(f, label_values, "observe",
                     f && f->type != CH_METRIC_HISTOGRAM ? "it is not a histogram" : NULL);
  if (!s) return;
  int lo = 0, hi = f->nbounds; /* first bound >= v; NaN compares false and lands in +Inf */
  while (lo < hi) {
    int mid = (lo + hi) / 2;
    if (v <= f->bounds[mid]) hi = mid; else lo = mid + 1;
  }
  atomic_fetch_add_explicit(&s->buckets[lo], 1, memory_order_relaxed);
  atomic_add_double(&s->value, v);
}

unsigned long long metric_dropped(const metric *f) {
  return f ? atomic_load_explicit(&((metric *)f)->dropped, memory_order_relaxed) : 0;
}
