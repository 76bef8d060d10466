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
#include "serve/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CH_METRIC_CHAINS 64 /* hash chains per family; servers have a few dozen series */

typedef struct ch_series {
  struct ch_series *hash_next;  /* set before publication, then immutable */
  struct ch_series *order_next; /* creation order; guarded by the family mutex */
  uint64_t hash;
  char **values;                /* nlabels copies of the label values */
  _Atomic uint64_t value;       /* bits of the counter/gauge value or of the histogram sum */
  _Atomic uint64_t buckets[];   /* histogram: nbounds + 1 counts, the last one is +Inf */
} ch_series;

struct ch_metric {
  char *name, *help;
  ch_metric_type type;
  int nlabels, nbounds;
  char **label_names;
  double *bounds;
  pthread_mutex_t lock; /* series creation and render */
  _Atomic(ch_series *) chains[CH_METRIC_CHAINS];
  ch_series *first, *last;
  _Atomic unsigned long long dropped;
};

struct ch_metrics {
  pthread_mutex_t lock; /* the family list */
  ch_metric **fams;
  int n, cap;
};

const double ch_metrics_latency_buckets[] = {
    0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128,
    0.256,  0.512, 1.024, 2.048, 4.096, 8.192, 16.384, 32.768, 65.536};
const int ch_metrics_latency_nbuckets =
    (int)(sizeof ch_metrics_latency_buckets / sizeof ch_metrics_latency_buckets[0]);

static const char *type_name(ch_metric_type t) {
  return t == CH_METRIC_COUNTER ? "counter" : t == CH_METRIC_GAUGE ? "gauge" : "histogram";
}

static uint64_t dbits(double v) { uint64_t u; memcpy(&u, &v, sizeof u); return u; }
static double dfrom(uint64_t u) { double v; memcpy(&v, &u, sizeof v); return v; }

/* *p += v on the double whose bits *p holds. */
static void atomic_add_double(_Atomic uint64_t *p, double v) {
  uint64_t old = atomic_load_explicit(p, memory_order_relaxed);
  while (!atomic_compare_exchange_weak_explicit(p, &old, dbits(dfrom(old) + v),
                                                memory_order_relaxed, memory_order_relaxed)) {
  }
}

/* 1 when s matches [a-zA-Z_:][a-zA-Z0-9_:]* (colon allowed only when `colon`). */
static int valid_name(const char *s, int colon) {
  if (!s || !*s) return 0;
  for (const char *c = s; *c; c++) {
    int alpha = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || *c == '_' ||
                (colon && *c == ':');
    if (!alpha && !(c > s && *c >= '0' && *c <= '9')) return 0;
  }
  return 1;
}

/* 1 when the strings a+sa and b+sb are equal (no allocation). */
static int cat_eq(const char *a, const char *sa, const char *b, const char *sb) {
  size_t la = strlen(a), lsa = strlen(sa), lb = strlen(b), lsb = strlen(sb);
  if (la + lsa != lb + lsb) return 0;
  for (size_t i = 0; i < la + lsa; i++)
    if ((i < la ? a[i] : sa[i - la]) != (i < lb ? b[i] : sb[i - lb])) return 0;
  return 1;
}

/* 1 when a family (a, ta) and a family (b, tb) would render a sample of the same name. */
static int samples_collide(const char *a, ch_metric_type ta, const char *b, ch_metric_type tb) {
  static const char *const hist[] = {"_bucket", "_sum", "_count"}, *const plain[] = {""};
  const char *const *sa = ta == CH_METRIC_HISTOGRAM ? hist : plain;
  const char *const *sb = tb == CH_METRIC_HISTOGRAM ? hist : plain;
  int na = ta == CH_METRIC_HISTOGRAM ? 3 : 1, nb = tb == CH_METRIC_HISTOGRAM ? 3 : 1;
  for (int i = 0; i < na; i++)
    for (int j = 0; j < nb; j++)
      if (cat_eq(a, sa[i], b, sb[j])) return 1;
  return 0;
}

/* Checks the arguments of ch_metrics_register; stores the label count in *nlabels. */
static ch_status check_family(const char *name, ch_metric_type type, const char *const *labels,
                              const double *bounds, int nbounds, int *nlabels) {
  if (!valid_name(name, 1))
    return CH_FAIL(CH_ERR_INVALID, "metric name '%s' is not [a-zA-Z_:][a-zA-Z0-9_:]*",
                   name ? name : "(null)");
  if (type != CH_METRIC_COUNTER && type != CH_METRIC_GAUGE && type != CH_METRIC_HISTOGRAM)
    return CH_FAIL(CH_ERR_INVALID, "metric %s: unknown type %d", name, (int)type);
  int n = 0;
  for (; labels && labels[n]; n++) {
    const char *l = labels[n];
    if (!valid_name(l, 0) || !strncmp(l, "__", 2))
      return CH_FAIL(CH_ERR_INVALID, "metric %s: label name '%s' is not [a-zA-Z_][a-zA-Z0-9_]* "
                     "or starts with __ (reserved)", name, l);
    if (type == CH_METRIC_HISTOGRAM && !strcmp(l, "le"))
      return CH_FAIL(CH_ERR_INVALID, "histogram %s: label name 'le' is reserved", name);
    for (int j = 0; j < n; j++)
      if (!strcmp(labels[j], l))
        return CH_FAIL(CH_ERR_INVALID, "metric %s: label '%s' given twice", name, l);
  }
  if (type != CH_METRIC_HISTOGRAM) {
    if (bounds || nbounds)
      return CH_FAIL(CH_ERR_INVALID, "metric %s: bounds given for a %s", name, type_name(type));
  } else {
    if (!bounds || nbounds < 1)
      return CH_FAIL(CH_ERR_INVALID, "histogram %s: needs nbounds >= 1 (got %d)", name, nbounds);
    for (int i = 0; i < nbounds; i++) {
      if (!isfinite(bounds[i]))
        return CH_FAIL(CH_ERR_INVALID, "histogram %s: bound %d is not finite (+Inf is implicit)",
                       name, i);
      if (i > 0 && !(bounds[i] > bounds[i - 1]))
        return CH_FAIL(CH_ERR_INVALID, "histogram %s: bounds not strictly ascending at %d "
                       "(%g after %g)", name, i, bounds[i], bounds[i - 1]);
    }
  }
  *nlabels = n;
  return CH_OK;
}

/* 1 when family f equals the described one. */
static int same_family(const ch_metric *f, const char *help, ch_metric_type type,
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

static void family_free(ch_metric *f) {
  if (!f) return;
  for (ch_series *s = f->first, *next; s; s = next) {
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

static ch_series *chain_find(ch_series *s, uint64_t h, const char *const *v, int n) {
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
static ch_series *series_get(ch_metric *f, const char *const *v) {
  if (f->nlabels > 0) {
    if (!v) return NULL;
    for (int i = 0; i < f->nlabels; i++)
      if (!v[i]) return NULL;
  }
  uint64_t h = hash_values(v, f->nlabels);
  _Atomic(ch_series *) *chain = &f->chains[h % CH_METRIC_CHAINS];
  ch_series *s = chain_find(atomic_load_explicit(chain, memory_order_acquire), h, v, f->nlabels);
  if (s) return s;
  pthread_mutex_lock(&f->lock);
  ch_series *head = atomic_load_explicit(chain, memory_order_relaxed);
  s = chain_find(head, h, v, f->nlabels);
  if (!s) {
    size_t nb = f->type == CH_METRIC_HISTOGRAM ? (size_t)f->nbounds + 1 : 0;
    s = malloc(sizeof *s + nb * sizeof s->buckets[0]);
    if (s && !(s->values = dup_strings(v, f->nlabels))) { free(s); s = NULL; }
    if (s) {
      s->hash_next = head, s->order_next = NULL, s->hash = h;
      atomic_init(&s->value, dbits(0.0));
      for (size_t i = 0; i < nb; i++) atomic_init(&s->buckets[i], 0);
      if (f->last) f->last->order_next = s; else f->first = s;
      f->last = s;
      atomic_store_explicit(chain, s, memory_order_release); /* publishes the fields above */
    }
  }
  pthread_mutex_unlock(&f->lock);
  return s;
}

ch_status ch_metrics_create(ch_metrics **out) {
  if (!out) return CH_FAIL(CH_ERR_INVALID, "ch_metrics_create: out is NULL");
  ch_metrics *m = calloc(1, sizeof *m);
  if (!m) return CH_FAIL(CH_ERR_NOMEM, "ch_metrics_create: out of memory");
  pthread_mutex_init(&m->lock, NULL);
  *out = m;
  return CH_OK;
}

void ch_metrics_destroy(ch_metrics *m) {
  if (!m) return;
  for (int i = 0; i < m->n; i++) family_free(m->fams[i]);
  free(m->fams);
  pthread_mutex_destroy(&m->lock);
  free(m);
}

/* Builds a new family (unlabelled ones get their single series); NULL when out of memory. */
static ch_metric *family_new(const char *name, const char *help, ch_metric_type type,
                             const char *const *labels, int nlabels, const double *bounds,
                             int nbounds) {
  ch_metric *f = calloc(1, sizeof *f);
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

ch_status ch_metrics_register(ch_metrics *m, const char *name, const char *help,
                              ch_metric_type type, const char *const *label_names,
                              const double *bounds, int nbounds, ch_metric **out) {
  if (!m) return CH_FAIL(CH_ERR_INVALID, "ch_metrics_register: registry is NULL");
  if (!help) help = "";
  int nlabels = 0;
  CH_CHECK(check_family(name, type, label_names, bounds, nbounds, &nlabels));
  ch_status st = CH_OK;
  ch_metric *f = NULL;
  pthread_mutex_lock(&m->lock);
  for (int i = 0; i < m->n; i++) {
    ch_metric *g = m->fams[i];
    if (!strcmp(g->name, name)) {
      if (same_family(g, help, type, label_names, nlabels, bounds, nbounds)) f = g;
      else
        st = CH_FAIL(CH_ERR_INVALID, "metric %s is already registered with a different type, "
                     "help, labels or buckets", name);
      goto done;
    }
    if (samples_collide(g->name, g->type, name, type)) {
      st = CH_FAIL(CH_ERR_INVALID, "metric %s (%s) would render samples named like those "
                   "of %s (%s)", name, type_name(type), g->name, type_name(g->type));
      goto done;
    }
  }
  if (m->n == m->cap) {
    int cap = m->cap ? 2 * m->cap : 16;
    ch_metric **fams = realloc(m->fams, sizeof *fams * (size_t)cap);
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

ch_metric *ch_metrics_find(ch_metrics *m, const char *name) {
  ch_metric *f = NULL;
  if (!m || !name) return NULL;
  pthread_mutex_lock(&m->lock);
  for (int i = 0; i < m->n && !f; i++)
    if (!strcmp(m->fams[i]->name, name)) f = m->fams[i];
  pthread_mutex_unlock(&m->lock);
  return f;
}

/* Counts and reports an ignored update on f. */
static void drop(ch_metric *f, const char *op, const char *why) {
  if (f) atomic_fetch_add_explicit(&f->dropped, 1, memory_order_relaxed);
  (void)CH_FAIL(CH_ERR_INVALID, "%s on metric %s ignored: %s", op, f ? f->name : "(null)", why);
}

void ch_metric_inc(ch_metric *f, const char *const *label_values, double v) {
  if (!f) { drop(f, "inc", "family is NULL"); return; }
  if (f->type == CH_METRIC_HISTOGRAM) {
    drop(f, "inc", "it is a histogram (use observe)");
    return;
  }
  if (f->type == CH_METRIC_COUNTER && !(v >= 0)) {
    drop(f, "inc", "counter increment is negative or NaN");
    return;
  }
  ch_series *s = series_get(f, label_values);
  if (!s) {
    drop(f, "inc", "missing label values or out of memory");
    return;
  }
  atomic_add_double(&s->value, v);
}

void ch_metric_set(ch_metric *f, const char *const *label_values, double v) {
  if (!f) { drop(f, "set", "family is NULL"); return; }
  if (f->type != CH_METRIC_GAUGE) { drop(f, "set", "only gauges can be set"); return; }
  ch_series *s = series_get(f, label_values);
  if (!s) {
    drop(f, "set", "missing label values or out of memory");
    return;
  }
  atomic_store_explicit(&s->value, dbits(v), memory_order_relaxed);
}

void ch_metric_observe(ch_metric *f, const char *const *label_values, double v) {
  if (!f) { drop(f, "observe", "family is NULL"); return; }
  if (f->type != CH_METRIC_HISTOGRAM) { drop(f, "observe", "it is not a histogram"); return; }
  ch_series *s = series_get(f, label_values);
  if (!s) {
    drop(f, "observe", "missing label values or out of memory");
    return;
  }
  int lo = 0, hi = f->nbounds; /* first bound >= v; NaN compares false and lands in +Inf */
  while (lo < hi) {
    int mid = (lo + hi) / 2;
    if (v <= f->bounds[mid]) hi = mid; else lo = mid + 1;
  }
  atomic_fetch_add_explicit(&s->buckets[lo], 1, memory_order_relaxed);
  atomic_add_double(&s->value, v);
}

unsigned long long ch_metric_dropped(const ch_metric *f) {
  return f ? atomic_load_explicit(&((ch_metric *)f)->dropped, memory_order_relaxed) : 0;
}

int ch_metrics_format_double(char *buf, size_t size, double v) {
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

int ch_metrics_pow2_buckets(double *out, int max_value) {
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
static void put_labels(buf_t *b, const ch_metric *f, const ch_series *s, const char *le) {
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
static void put_sample(buf_t *b, const ch_metric *f, const char *suffix, const ch_series *s,
                       const char *le, const char *value) {
  puts_(b, f->name), puts_(b, suffix), put_labels(b, f, s, le);
  puts_(b, " "), puts_(b, value), puts_(b, "\n");
}

static void render_family(buf_t *b, ch_metric *f) {
  char num[64], le[64];
  puts_(b, "# HELP "), puts_(b, f->name), puts_(b, " "), put_escaped(b, f->help, 0);
  puts_(b, "\n# TYPE "), puts_(b, f->name), puts_(b, " "), puts_(b, type_name(f->type));
  puts_(b, "\n");
  pthread_mutex_lock(&f->lock);
  for (const ch_series *s = f->first; s; s = s->order_next) {
    double value = dfrom(atomic_load_explicit(&s->value, memory_order_relaxed));
    ch_metrics_format_double(num, sizeof num, value);
    if (f->type != CH_METRIC_HISTOGRAM) {
      put_sample(b, f, "", s, NULL, num);
      continue;
    }
    unsigned long long cum = 0;
    for (int i = 0; i <= f->nbounds; i++) {
      char count[32];
      cum += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
      snprintf(count, sizeof count, "%llu", cum);
      if (i < f->nbounds) ch_metrics_format_double(le, sizeof le, f->bounds[i]);
      put_sample(b, f, "_bucket", s, i < f->nbounds ? le : "+Inf", count);
    }
    put_sample(b, f, "_sum", s, NULL, num);
    snprintf(num, sizeof num, "%llu", cum);
    put_sample(b, f, "_count", s, NULL, num);
  }
  pthread_mutex_unlock(&f->lock);
}

char *ch_metrics_render(ch_metrics *m, size_t *len) {
  if (!m) {
    (void)CH_FAIL(CH_ERR_INVALID, "ch_metrics_render: registry is NULL");
    return NULL;
  }
  buf_t b = {0};
  put(&b, "", 0); /* an empty registry renders as "" */
  pthread_mutex_lock(&m->lock);
  for (int i = 0; i < m->n; i++) render_family(&b, m->fams[i]);
  pthread_mutex_unlock(&m->lock);
  if (b.oom) {
    free(b.p);
    (void)CH_FAIL(CH_ERR_NOMEM, "ch_metrics_render: out of memory");
    return NULL;
  }
  if (len) *len = b.len;
  return b.p;
}
