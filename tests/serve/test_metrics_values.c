/* Value tests of the metrics module: escaping, histograms against a naive count, threads, and
 * the --dump mode for test_metrics_prom.py. See test_metrics.c for the overview. */
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/rng.h"
#include "serve/metrics.h"
#include "test_metrics.h"
#include "test_metrics_parse.h"
#include "testlib.h"

/* Pieces random strings are made of: every character the format treats specially, and é. */
static const char *const PIECES[] = {"\\", "\"", "\n", "{", "}", ",", "=", " ", "#", "a",
                                     "Z", "9", "\xc3\xa9", "\t", "'", "\\n", "le"};
#define NPIECES (sizeof PIECES / sizeof PIECES[0])

/* Appends up to `maxpieces` random pieces to out (which holds at least 4 * maxpieces + 1). */
static void random_string(char *out, uint64_t seed, uint64_t i, int maxpieces) {
  int n = (int)ch_rng_below(seed, 100, i, (uint64_t)maxpieces + 1);
  for (int k = 0; k < n; k++)
    strcat(out, PIECES[ch_rng_below(seed, 101 + (uint64_t)k, i, NPIECES)]);
}

static double random_double(uint64_t seed, uint64_t stream, uint64_t i) {
  uint64_t u = ch_rng_u64(seed, stream, i);
  double v;
  memcpy(&v, &u, sizeof v);
  return v;
}

void test_escaping(void) {
  enum { N = 300 };
  static char a[N][64], b[N][64];
  double val[N];
  metrics *m;
  metric *g, *h;
  CHT_OK(metrics_create(&m));
  const char *names[] = {"a", "b", NULL};
  char help[128] = "x";
  random_string(help, 5, 0, 20);
  CHT_OK(metrics_register(m, "esc", help, CH_METRIC_GAUGE, names, NULL, 0, &g));
  CHT_OK(
      metrics_register(m, "esc_h", "", CH_METRIC_HISTOGRAM, names + 1, (double[]){0.5}, 1, &h));
  for (int i = 0; i < N; i++) {
    snprintf(a[i], sizeof a[i], "i%d:", i); /* unique combination per i */
    random_string(a[i], 6, (uint64_t)i, 12);
    random_string(b[i], 7, (uint64_t)i, 12);
    val[i] = random_double(8, 0, (uint64_t)i);
    const char *v[] = {a[i], b[i]};
    metric_set(g, v, val[i]);
    metric_observe(h, v + 1, 0.25); /* b values repeat rarely; only structure is checked */
  }
  char *text;
  cht_prom p;
  cht_prom_render(m, &text, &p);
  CHT_ASSERT(!strcmp(p.fams[0].help, help), "help '%s' read back as '%s'", help, p.fams[0].help);
  for (int i = 0; i < N; i++) {
    const cht_sample *s = &p.samples[i];
    CHT_ASSERT(!strcmp(s->name, "esc") && s->nlabels == 2 && !strcmp(s->keys[0], "a") &&
                   !strcmp(s->keys[1], "b"),
               "sample %d: %s", i, s->name);
    CHT_ASSERT(!strcmp(s->vals[0], a[i]) && !strcmp(s->vals[1], b[i]),
               "series %d: labels '%s' '%s' read back as '%s' '%s'", i, a[i], b[i], s->vals[0],
               s->vals[1]);
    CHT_ASSERT(isnan(val[i]) ? isnan(s->value) : !memcmp(&s->value, &val[i], sizeof val[i]),
               "series %d: %a read back as %a", i, val[i], s->value);
    CHT_ASSERT(!strchr(s->value_text, '\n'), "newline in value");
  }
  CHT_ASSERT(!strstr(text, "\n\"") && !strstr(text, "\\\n"), "raw newline inside a label");
  free(text), cht_prom_free(&p);
  metrics_destroy(m);
}

/* Observes vals into a labelled histogram over `bounds` and compares every cumulative bucket,
 * _sum and _count with a naive count; series "y" gets every third value. */
static void check_histogram(const double *bounds, int nb, const double *vals, int n) {
  metrics *m;
  metric *h;
  CHT_OK(metrics_create(&m));
  const char *k[] = {"k", NULL}, *x[] = {"x"}, *y[] = {"y"};
  CHT_OK(metrics_register(m, "h", "", CH_METRIC_HISTOGRAM, k, bounds, nb, &h));
  for (int i = 0; i < n; i++) {
    metric_observe(h, x, vals[i]);
    if (i % 3 == 0) metric_observe(h, y, vals[i]);
  }
  char *text;
  cht_prom p;
  cht_prom_render(m, &text, &p);
  CHT_ASSERT(p.nsamples == 2 * (nb + 3), "%d samples for %d bounds", p.nsamples, nb);
  for (int series = 0; series < 2; series++) {
    const char *label = series ? "y" : "x";
    int first = series * (nb + 3);
    double sum = 0;
    for (int i = 0; i < n; i += series ? 3 : 1) sum += vals[i];
    for (int j = 0; j <= nb; j++) {
      unsigned long long naive = 0;
      for (int i = 0; i < n; i += series ? 3 : 1) naive += j == nb || vals[i] <= bounds[j];
      const cht_sample *s = &p.samples[first + j];
      CHT_ASSERT(!strcmp(s->name, "h_bucket") && s->nlabels == 2 && !strcmp(s->vals[0], label) &&
                     !strcmp(s->keys[1], "le"),
                 "sample %d is not bucket %d of %s", first + j, j, label);
      double le = !strcmp(s->vals[1], "+Inf") ? INFINITY : strtod(s->vals[1], NULL);
      CHT_ASSERT(le == (j < nb ? bounds[j] : INFINITY), "bucket %d: le=\"%s\", bound %.17g", j,
                 s->vals[1], j < nb ? bounds[j] : INFINITY);
      CHT_ASSERT(s->value == (double)naive, "%s bucket le=%s: %s, naive %llu", label, s->vals[1],
                 s->value_text, naive);
    }
    const cht_sample *s = &p.samples[first + nb + 1], *c = &p.samples[first + nb + 2];
    CHT_ASSERT(!strcmp(s->name, "h_sum") && s->value == sum, "%s _sum %s, want %.17g", label,
               s->value_text, sum);
    CHT_ASSERT(!strcmp(c->name, "h_count") && c->value == p.samples[first + nb].value, "%s _count",
               label);
  }
  free(text), cht_prom_free(&p);
  metrics_destroy(m);
}

/* Random values: on a bound, one ulp either side of one, uniform over and beyond the range. */
static void random_values(double *v, int n, const double *b, int nb, uint64_t seed) {
  double lo = b[0] - 1 - fabs(b[0]), hi = b[nb - 1] + 1 + fabs(b[nb - 1]);
  for (int i = 0; i < n; i++) {
    double bound = b[ch_rng_below(seed, 21, (uint64_t)i, (uint64_t)nb)];
    switch (ch_rng_below(seed, 20, (uint64_t)i, 6)) {
      case 0:
      case 1: v[i] = bound; break;
      case 2: v[i] = nextafter(bound, INFINITY); break;
      case 3: v[i] = nextafter(bound, -INFINITY); break;
      case 4: v[i] = lo + (hi - lo) * ch_rng_uniform(seed, 22, (uint64_t)i); break;
      default: v[i] = (i % 2 ? -1e9 : 1e9) * ch_rng_uniform(seed, 23, (uint64_t)i); break;
    }
  }
}

void test_histograms(void) {
  enum { N = 3000 };
  static double vals[N], b[32];
  for (uint64_t seed = 0; seed < 20; seed++) {
    int nb = 1 + (int)ch_rng_below(seed, 1, 0, 20);
    b[0] = 4 * ch_rng_uniform(seed, 2, 0) - 2;
    for (int j = 1; j < nb; j++) b[j] = b[j - 1] + 1e-3 + ch_rng_uniform(seed, 2, (uint64_t)j);
    random_values(vals, N, b, nb, seed);
    check_histogram(b, nb, vals, N);
  }
  random_values(vals, N, metrics_latency_buckets, metrics_latency_nbuckets, 100);
  check_histogram(metrics_latency_buckets, metrics_latency_nbuckets, vals, N);
  int nb = metrics_pow2_buckets(b, 48);
  random_values(vals, N, b, nb, 101);
  check_histogram(b, nb, vals, N);
}

enum { NTHREADS = 8, NOPS = 10000, NB = 8, NROUTES = 4 };
static const double TB[NB] = {0.0625, 0.125, 0.25, 0.5, 0.75, 1, 1.5, 2};
static const char *const ROUTES[NROUTES] = {"/a", "/b", "/c\"q", "/d\\e\n"};

typedef struct {
  int id;
  atomic_int *ready; /* start gate: all workers begin their updates together */
  metrics *m;
  metric *ops, *lat, *req, *gauge;
  double ops_sum[3], lat_sum[NROUTES], gauge_sum;
  unsigned long long lat_cum[NROUTES][NB + 1];
} worker_t;

static void *worker(void *arg) {
  worker_t *w = arg;
  metric *f = NULL;
  const char *kind[] = {"kind", NULL};
  CHT_OK(metrics_register(w->m, "ops_total", "Ops.", CH_METRIC_COUNTER, kind, NULL, 0, &f));
  CHT_ASSERT(f == w->ops, "thread %d: re-registration gave another family", w->id);
  char own[16], name[32];
  snprintf(own, sizeof own, "t%d", w->id);
  snprintf(name, sizeof name, "worker_%d_total", w->id);
  CHT_OK(metrics_register(w->m, name, "Per thread.", CH_METRIC_COUNTER, NULL, NULL, 0, &f));
  metric_inc(f, NULL, w->id + 1);
  atomic_fetch_add(w->ready, 1);
  while (atomic_load(w->ready) < NTHREADS) sched_yield();
  const char *kinds[3] = {"read", "write", own};
  for (int j = 0; j < NOPS; j++) {
    uint64_t u = ch_rng_u64(99, (uint64_t)w->id, (uint64_t)j);
    int k = (int)(u % 3), r = (int)((u >> 20) % NROUTES);
    double v = (double)((u >> 8) % 1000) / 8;
    double hv = (u >> 24) % 4 == 0 ? TB[(u >> 28) % NB] : (double)((u >> 32) % 2560) / 1024;
    double g = ((double)((u >> 44) % 201) - 100) / 4;
    metric_inc(w->ops, &kinds[k], v);
    metric_observe(w->lat, &ROUTES[r], hv);
    metric_inc(w->req, NULL, 1);
    metric_inc(w->gauge, NULL, g);
    w->ops_sum[k] += v, w->lat_sum[r] += hv, w->gauge_sum += g;
    for (int b = 0; b < NB; b++) w->lat_cum[r][b] += hv <= TB[b];
    w->lat_cum[r][NB]++;
  }
  return NULL;
}

/* Threads spinning on a shared round number all touch the same new label value as soon as it
 * changes, round after round; the last thread of a round starts the next one. Spinning rather
 * than a barrier, so that the threads on the CPUs start within a microsecond of each other, and
 * long label values (RACE_LEN bytes), so that creating a series (copying the value) takes longer
 * than that: each series must still be created once and count every thread. */
enum { NRACERS = 8, ROUNDS = 300, RACE_LEN = 1 << 16 };
typedef struct {
  metric *f;
  atomic_int round, arrived;
} race_t;

static void *racer(void *arg) {
  race_t *r = arg;
  char *lv = malloc(RACE_LEN + 1);
  memset(lv, 'x', RACE_LEN), lv[RACE_LEN] = '\0';
  for (int round = 0; round < ROUNDS; round++) {
    lv[snprintf(lv, 16, "r%d:", round)] = 'x';
    const char *v[] = {lv};
    while (atomic_load(&r->round) != round) sched_yield();
    metric_inc(r->f, v, 1);
    if (atomic_fetch_add(&r->arrived, 1) == NRACERS * (round + 1) - 1) /* the last one */
      atomic_store(&r->round, round + 1);
  }
  free(lv);
  return NULL;
}

static void test_creation_race(void) {
  metrics *m;
  const char *k[] = {"k", NULL};
  CHT_OK(metrics_create(&m));
  static race_t r;
  atomic_init(&r.round, 0), atomic_init(&r.arrived, 0);
  CHT_OK(metrics_register(m, "race_total", "", CH_METRIC_COUNTER, k, NULL, 0, &r.f));
  pthread_t th[NRACERS];
  for (int i = 0; i < NRACERS; i++)
    CHT_ASSERT(!pthread_create(&th[i], NULL, racer, &r), "pthread_create");
  for (int i = 0; i < NRACERS; i++) pthread_join(th[i], NULL);
  char *text;
  cht_prom p;
  cht_prom_render(m, &text, &p);
  CHT_ASSERT(p.nsamples == ROUNDS, "%d series for %d label values", p.nsamples, ROUNDS);
  for (int i = 0; i < ROUNDS; i++)
    CHT_ASSERT(p.samples[i].value == NRACERS && strlen(p.samples[i].vals[0]) == RACE_LEN,
               "series %.8s: %s", p.samples[i].vals[0], p.samples[i].value_text);
  free(text), cht_prom_free(&p);
  metrics_destroy(m);
}

typedef struct {
  metrics *m;
  atomic_int done;
  int renders;
} renderer_t;

/* Renders until the workers finish: every render parses, histogram series are cumulative with
 * _count equal to the +Inf bucket, and the request counter never goes down. */
static void *renderer(void *arg) {
  renderer_t *r = arg;
  double last_req = 0;
  for (int more = 1; more;) {
    more = !atomic_load(&r->done);
    char *text;
    cht_prom p;
    cht_prom_render(r->m, &text, &p);
    double req = cht_prom_value(&p, "requests_total", NULL);
    CHT_ASSERT(req >= last_req, "requests_total went from %g to %g", last_req, req);
    last_req = req;
    for (int i = 0; i < p.nsamples; i++) {
      const cht_sample *s = &p.samples[i];
      if (strcmp(s->name, "lat_seconds_bucket")) continue;
      int last_bucket = !strcmp(s->vals[1], "+Inf");
      const cht_sample *next = &p.samples[i + 1];
      if (!last_bucket) CHT_ASSERT(next->value >= s->value, "buckets not cumulative");
      else
        CHT_ASSERT(p.samples[i + 2].value == s->value &&
                       !strcmp(p.samples[i + 2].name, "lat_seconds_count"),
                   "_count != +Inf bucket");
    }
    free(text), cht_prom_free(&p);
    r->renders++;
  }
  return NULL;
}

void test_threads(void) {
  test_creation_race();
  metrics *m;
  CHT_OK(metrics_create(&m));
  static worker_t w[NTHREADS];
  const char *kind[] = {"kind", NULL}, *route[] = {"route", NULL};
  metric *ops, *lat, *req, *gauge;
  CHT_OK(metrics_register(m, "ops_total", "Ops.", CH_METRIC_COUNTER, kind, NULL, 0, &ops));
  CHT_OK(
      metrics_register(m, "lat_seconds", "Latency.", CH_METRIC_HISTOGRAM, route, TB, NB, &lat));
  CHT_OK(metrics_register(m, "requests_total", "Requests.", CH_METRIC_COUNTER, NULL, NULL, 0,
                          &req));
  CHT_OK(metrics_register(m, "level", "Level.", CH_METRIC_GAUGE, NULL, NULL, 0, &gauge));
  renderer_t r = {.m = m, .done = 0, .renders = 0};
  pthread_t th[NTHREADS], rt;
  atomic_int ready = 0;
  CHT_ASSERT(!pthread_create(&rt, NULL, renderer, &r), "pthread_create");
  for (int i = 0; i < NTHREADS; i++) {
    w[i] = (worker_t){.id = i, .ready = &ready, .m = m, .ops = ops, .lat = lat, .req = req,
                      .gauge = gauge};
    CHT_ASSERT(!pthread_create(&th[i], NULL, worker, &w[i]), "pthread_create");
  }
  for (int i = 0; i < NTHREADS; i++) pthread_join(th[i], NULL);
  atomic_store(&r.done, 1);
  pthread_join(rt, NULL);

  char *text;
  cht_prom p;
  cht_prom_render(m, &text, &p);
  double ops_read = 0, ops_write = 0, gsum = 0;
  for (int i = 0; i < NTHREADS; i++) {
    char own[16], name[32];
    snprintf(own, sizeof own, "t%d", i);
    snprintf(name, sizeof name, "worker_%d_total", i);
    ops_read += w[i].ops_sum[0], ops_write += w[i].ops_sum[1], gsum += w[i].gauge_sum;
    CHT_ASSERT(
        cht_prom_value(&p, "ops_total", (const char *[]){"kind", own, NULL}) == w[i].ops_sum[2],
        "ops t%d", i);
    CHT_ASSERT(cht_prom_value(&p, name, NULL) == i + 1, "%s", name);
  }
  CHT_ASSERT(cht_prom_value(&p, "ops_total", (const char *[]){"kind", "read", NULL}) == ops_read,
             "ops read");
  CHT_ASSERT(cht_prom_value(&p, "ops_total", (const char *[]){"kind", "write", NULL}) == ops_write,
             "ops write");
  CHT_ASSERT(cht_prom_value(&p, "requests_total", NULL) == NTHREADS * NOPS, "requests_total");
  CHT_ASSERT(cht_prom_value(&p, "level", NULL) == gsum, "level %.17g, want %.17g",
             cht_prom_value(&p, "level", NULL), gsum);
  int nops = 0, nbuckets = 0;
  for (int i = 0; i < p.nsamples; i++) {
    nops += !strcmp(p.samples[i].name, "ops_total");
    nbuckets += !strcmp(p.samples[i].name, "lat_seconds_bucket");
  }
  CHT_ASSERT(nops == 2 + NTHREADS && nbuckets == NROUTES * (NB + 1),
             "%d ops series, %d buckets: a series was created twice", nops, nbuckets);
  for (int rr = 0; rr < NROUTES; rr++) {
    double sum = 0;
    unsigned long long cum[NB + 1] = {0};
    for (int i = 0; i < NTHREADS; i++) {
      sum += w[i].lat_sum[rr];
      for (int b = 0; b <= NB; b++) cum[b] += w[i].lat_cum[rr][b];
    }
    for (int b = 0; b <= NB; b++) {
      char le[32];
      metrics_format_double(le, sizeof le, b < NB ? TB[b] : INFINITY);
      double got = cht_prom_value(&p, "lat_seconds_bucket",
                                  (const char *[]){"route", ROUTES[rr], "le", le, NULL});
      CHT_ASSERT(got == (double)cum[b], "route %d le=%s: %.0f, want %llu", rr, le, got, cum[b]);
    }
    CHT_ASSERT(
        cht_prom_value(&p, "lat_seconds_sum", (const char *[]){"route", ROUTES[rr], NULL}) == sum,
        "route %d sum", rr);
    CHT_ASSERT(cht_prom_value(&p, "lat_seconds_count",
                              (const char *[]){"route", ROUTES[rr], NULL}) == (double)cum[NB],
               "route %d count", rr);
  }
  CHT_ASSERT(metric_dropped(ops) + metric_dropped(lat) + metric_dropped(req) +
                     metric_dropped(gauge) ==
                 0,
             "dropped updates");
  CHT_ASSERT(r.renders >= 1, "no concurrent render");
  printf("test_threads: %d x %d updates, %d concurrent renders\n", NTHREADS, NOPS, r.renders);
  free(text), cht_prom_free(&p);
  metrics_destroy(m);
}
