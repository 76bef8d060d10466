/* Prometheus text format 0.0.4 of a registry (metrics.c), number formatting and bucket
 * helpers. Render reads each series' atomics once, so _count is the +Inf bucket it printed. */
#include "serve/metrics_internal.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double metrics_latency_buckets[] = {
    0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128,
    0.256,  0.512, 1.024, 2.048, 4.096, 8.192, 16.384, 32.768, 65.536};
const int metrics_latency_nbuckets =
    (int)(sizeof metrics_latency_buckets / sizeof metrics_latency_buckets[0]);

int metrics_format_double(char *buf, size_t size, double v) {
  if (isnan(v)) return snprintf(buf, size, "NaN");
  if (isinf(v)) return snprintf(buf, size, v > 0 ? "+Inf" : "-Inf");
  if (v == floor(v) && fabs(v) < 1e17) return snprintf(buf, size, "%.0f", v);
  int n = 0;
  for (int prec = 15; prec <= 17; prec++) { /* shortest of %.15g..%.17g that round-trips */
    n = snprintf(buf, size, "%.*g", prec, v);
    if (strtod(buf, NULL) == v) break;
  }
  return n;
}

int metrics_pow2_buckets(double *out, int max_value) {
  if (max_value < 1) return 0;
  int n = 0;
  for (long long p = 1; p < max_value; p *= 2) {
    if (out) out[n] = (double)p;
    n++;
  }
  if (out) out[n] = max_value;
  return n + 1;
}

/* A growing output string; `oom` latches the first allocation failure. */
typedef struct { char *p; size_t len, cap; int oom; } buf_t;

static void put(buf_t *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (b->len + n + 1 > cap) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) { b->oom = 1; return; }
    b->p = p, b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static void puts_(buf_t *b, const char *s) { put(b, s, strlen(s)); }

/* Appends s escaping backslash and newline, and double quotes when `quote` (label values). */
static void put_escaped(buf_t *b, const char *s, int quote) {
  for (const char *c = s; *c; c++) {
    if (*c == '\\') puts_(b, "\\\\");
    else if (*c == '\n') puts_(b, "\\n");
    else if (*c == '"' && quote) puts_(b, "\\\"");
    else put(b, c, 1);
  }
}

/* Appends `{k="v",...[,le="le"]}` (nothing when there are no labels and no le). */
static void put_labels(buf_t *b, const metric *f, const series *s, const char *le) {
  if (f->nlabels == 0 && !le) return;
  puts_(b, "{");
  for (int i = 0; i < f->nlabels; i++) {
    if (i) puts_(b, ",");
    puts_(b, f->label_names[i]), puts_(b, "=\"");
    put_escaped(b, s->values[i], 1), puts_(b, "\"");
  }
  if (le) puts_(b, f->nlabels ? ",le=\"" : "le=\""), puts_(b, le), puts_(b, "\"");
  puts_(b, "}");
}

/* Appends one sample line: name+suffix, labels, value. */
static void put_sample(buf_t *b, const metric *f, const char *suffix, const series *s,
                       const char *le, const char *value) {
  puts_(b, f->name), puts_(b, suffix), put_labels(b, f, s, le);
  puts_(b, " "), puts_(b, value), puts_(b, "\n");
}

static void render_family(buf_t *b, metric *f) {
  char num[64], le[64];
  puts_(b, "# HELP "), puts_(b, f->name), puts_(b, " "), put_escaped(b, f->help, 0);
  puts_(b, "\n# TYPE "), puts_(b, f->name), puts_(b, " "), puts_(b, metric_type_name(f->type));
  puts_(b, "\n");
  pthread_mutex_lock(&f->lock);
  for (const series *s = f->first; s; s = s->order_next) {
    double value = metric_dfrom(atomic_load_explicit(&s->value, memory_order_relaxed));
    metrics_format_double(num, sizeof num, value);
    if (f->type != CH_METRIC_HISTOGRAM) {
      put_sample(b, f, "", s, NULL, num);
      continue;
    }
    unsigned long long cum = 0;
    for (int i = 0; i <= f->nbounds; i++) {
      char count[32];
      cum += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
      snprintf(count, sizeof count, "%llu", cum);
      if (i < f->nbounds) metrics_format_double(le, sizeof le, f->bounds[i]);
      put_sample(b, f, "_bucket", s, i < f->nbounds ? le : "+Inf", count);
    }
    put_sample(b, f, "_sum", s, NULL, num);
    snprintf(num, sizeof num, "%llu", cum);
    put_sample(b, f, "_count", s, NULL, num);
  }
  pthread_mutex_unlock(&f->lock);
}

char *metrics_render(metrics *m, size_t *len) {
  if (!m) {
    (void)CH_FAIL(CH_ERR_INVALID, "metrics_render: registry is NULL");
    return NULL;
  }
  buf_t b = {0};
  put(&b, "", 0); /* an empty registry renders as "" */
  pthread_mutex_lock(&m->lock);
  for (int i = 0; i < m->n; i++) render_family(&b, m->fams[i]);
  pthread_mutex_unlock(&m->lock);
  if (b.oom) {
    free(b.p);
    (void)CH_FAIL(CH_ERR_NOMEM, "metrics_render: out of memory");
    return NULL;
  }
  if (len) *len = b.len;
  return b.p;
}
