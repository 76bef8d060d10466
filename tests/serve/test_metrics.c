/* Prometheus metrics (src/serve/metrics.c): number formatting round-trips, registration errors,
 * a golden render, label escaping with random strings, cumulative buckets against a naive count
 * (values on, just above and just below the bounds: le is inclusive), misuse that must change
 * nothing, and 8 threads x 10000 updates that must add up exactly while another thread renders.
 * Everything is read back through the strict parser in test_metrics_parse.c; the same program
 * with --dump feeds test_metrics_prom.py, which checks the output with prometheus_client.
 * Exactness: all concurrent increments are multiples of 1/8 or 1/1024 far below 2^53 units,
 * so every summation order gives the same double and totals are compared with ==. */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/rng.h"
#include "serve/metrics.h"
#include "test_metrics.h"
#include "test_metrics_parse.h"
#include "testlib.h"

static double fmt_roundtrip(double v, char *buf) {
  int n = metrics_format_double(buf, 32, v);
  CHT_ASSERT(n > 0 && n < 32 && (size_t)n == strlen(buf), "format length %d for %a", n, v);
  if (!strcmp(buf, "+Inf")) return INFINITY;
  if (!strcmp(buf, "-Inf")) return -INFINITY;
  if (!strcmp(buf, "NaN")) return NAN;
  char *end;
  double back = strtod(buf, &end);
  CHT_ASSERT(!*end && strspn(buf, "0123456789+-.e") == strlen(buf), "bad number '%s'", buf);
  return back;
}

static void test_format(void) {
  static const struct {
    double v;
    const char *s;
  } golden[] = {{0, "0"},
                {1, "1"},
                {-3, "-3"},
                {0.5, "0.5"},
                {0.1, "0.1"},
                {123.456, "123.456"},
                {1e15, "1000000000000000"},
                {9007199254740992.0, "9007199254740992"},
                {99999999999999984.0, "99999999999999984"},
                {1e17, "1e+17"},
                {1e-5, "1e-05"},
                {1.0 / 3, "0.3333333333333333"},
                {DBL_MAX, "1.7976931348623157e+308"},
                {DBL_TRUE_MIN, "4.94065645841247e-324"},
                {-0.0, "-0"},
                {65.536, "65.536"}};
  char buf[32];
  for (size_t i = 0; i < sizeof golden / sizeof golden[0]; i++) {
    fmt_roundtrip(golden[i].v, buf);
    CHT_ASSERT(!strcmp(buf, golden[i].s), "format %a: '%s', want '%s'", golden[i].v, buf,
               golden[i].s);
  }
  fmt_roundtrip(INFINITY, buf);
  CHT_ASSERT(!strcmp(buf, "+Inf"), "+Inf: %s", buf);
  fmt_roundtrip(-INFINITY, buf);
  CHT_ASSERT(!strcmp(buf, "-Inf"), "-Inf: %s", buf);
  fmt_roundtrip(NAN, buf);
  CHT_ASSERT(!strcmp(buf, "NaN"), "NaN: %s", buf);
  for (uint64_t i = 0; i < 200000; i++) { /* random bit patterns: all exponents, subnormals */
    uint64_t u = ch_rng_u64(11, 1, i);
    double v;
    memcpy(&v, &u, sizeof v);
    if (isnan(v)) continue;
    double back = fmt_roundtrip(v, buf);
    CHT_ASSERT(memcmp(&back, &v, sizeof v) == 0, "%a formatted '%s' reads back %a", v, buf, back);
  }
  for (uint64_t i = 0; i < 20000; i++) { /* integers below 1e17 never get an exponent */
    double v = (double)ch_rng_below(11, 2, i, 100000000000000000ULL) * (i % 2 ? 1 : -1);
    double back = fmt_roundtrip(v, buf);
    CHT_ASSERT(back == v && !strpbrk(buf, "e."), "integer %.17g formatted '%s'", v, buf);
  }
}

static void expect_invalid(ch_status s, const char *what) {
  CHT_ASSERT(s == CH_ERR_INVALID, "%s: got %s, want invalid", what, ch_status_str(s));
  CHT_ASSERT(ch_error_message()[0], "%s: no error message", what);
  ch_error_clear();
}

static void test_registration(void) {
  metrics *m;
  metric *f = NULL, *g = NULL;
  CHT_OK(metrics_create(&m));
  static const char *bad_names[] = {"", "1abc", "a-b", "a b", "x\xc3\xa9", "a{b}"};
  for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++)
    expect_invalid(metrics_register(m, bad_names[i], "h", CH_METRIC_GAUGE, NULL, NULL, 0, &f),
                   bad_names[i]);
  expect_invalid(metrics_register(m, NULL, "h", CH_METRIC_GAUGE, NULL, NULL, 0, &f),
                 "NULL name");
  expect_invalid(metrics_register(m, "t", "h", (metric_type)7, NULL, NULL, 0, &f),
                 "bad type");
  static const char *const bad_labels[][3] = {{"__x", NULL}, {"1a", NULL}, {"a", "a", NULL},
                                              {"a:b", NULL}, {"", NULL},   {"a-b", NULL}};
  for (size_t i = 0; i < sizeof bad_labels / sizeof bad_labels[0]; i++)
    expect_invalid(
        metrics_register(m, "c_total", "h", CH_METRIC_COUNTER, bad_labels[i], NULL, 0, &f),
        bad_labels[i][0]);
  const char *le[] = {"route", "le", NULL};
  double b2[] = {1, 2}, same[] = {1, 1}, down[] = {2, 1}, nan[] = {NAN}, inf[] = {1, INFINITY};
  expect_invalid(metrics_register(m, "h_seconds", "h", CH_METRIC_HISTOGRAM, le, b2, 2, &f),
                 "le label");
  expect_invalid(metrics_register(m, "h_seconds", "h", CH_METRIC_HISTOGRAM, NULL, b2, 0, &f),
                 "0 bounds");
  expect_invalid(metrics_register(m, "h_seconds", "h", CH_METRIC_HISTOGRAM, NULL, NULL, 2, &f),
                 "NULL bounds");
  expect_invalid(metrics_register(m, "h_seconds", "h", CH_METRIC_HISTOGRAM, NULL, same, 2, &f),
                 "equal bounds");
  expect_invalid(metrics_register(m, "h_seconds", "h", CH_METRIC_HISTOGRAM, NULL, down, 2, &f),
                 "descending");
  expect_invalid(metrics_register(m, "h_seconds", "h", CH_METRIC_HISTOGRAM, NULL, nan, 1, &f),
                 "NaN bound");
  expect_invalid(metrics_register(m, "h_seconds", "h", CH_METRIC_HISTOGRAM, NULL, inf, 2, &f),
                 "Inf bound");
  expect_invalid(metrics_register(m, "g", "h", CH_METRIC_GAUGE, NULL, b2, 2, &f),
                 "gauge bounds");
  CHT_ASSERT(metrics_find(m, "h_seconds") == NULL, "failed registration left a family");

  /* Odd but valid names; le is fine as a label of a non-histogram. */
  CHT_OK(metrics_register(m, ":a:b_9", "h", CH_METRIC_GAUGE, NULL, NULL, 0, NULL));
  CHT_OK(metrics_register(m, "_x", NULL, CH_METRIC_GAUGE, le, NULL, 0, NULL));

  const char *ab[] = {"a", "b", NULL}, *ba[] = {"b", "a", NULL}, *a[] = {"a", NULL};
  CHT_OK(metrics_register(m, "c_total", "help", CH_METRIC_COUNTER, ab, NULL, 0, &f));
  CHT_OK(metrics_register(m, "c_total", "help", CH_METRIC_COUNTER, ab, NULL, 0, &g));
  CHT_ASSERT(f && f == g && metrics_find(m, "c_total") == f,
             "identical registration: other family");
  expect_invalid(metrics_register(m, "c_total", "other", CH_METRIC_COUNTER, ab, NULL, 0, &g),
                 "help");
  expect_invalid(metrics_register(m, "c_total", "help", CH_METRIC_GAUGE, ab, NULL, 0, &g),
                 "type");
  expect_invalid(metrics_register(m, "c_total", "help", CH_METRIC_COUNTER, ba, NULL, 0, &g),
                 "order");
  expect_invalid(metrics_register(m, "c_total", "help", CH_METRIC_COUNTER, a, NULL, 0, &g),
                 "count");
  expect_invalid(metrics_register(m, "c_total", "help", CH_METRIC_COUNTER, NULL, NULL, 0, &g),
                 "none");

  double b3[] = {1, 2, 3}, b2x[] = {1, 2.5};
  CHT_OK(metrics_register(m, "lat", "h", CH_METRIC_HISTOGRAM, NULL, b2, 2, &f));
  CHT_OK(metrics_register(m, "lat", "h", CH_METRIC_HISTOGRAM, NULL, b2, 2, &g));
  CHT_ASSERT(f == g, "identical histogram: other family");
  expect_invalid(metrics_register(m, "lat", "h", CH_METRIC_HISTOGRAM, NULL, b3, 3, &g),
                 "more bounds");
  expect_invalid(metrics_register(m, "lat", "h", CH_METRIC_HISTOGRAM, NULL, b2x, 2, &g),
                 "other bound");
  /* Sample names must not collide across families (in either registration order). */
  expect_invalid(metrics_register(m, "lat_count", "h", CH_METRIC_GAUGE, NULL, NULL, 0, &g),
                 "lat_count");
  expect_invalid(metrics_register(m, "lat_bucket", "h", CH_METRIC_COUNTER, NULL, NULL, 0, &g),
                 "lat_bucket");
  CHT_OK(metrics_register(m, "q_sum", "h", CH_METRIC_GAUGE, NULL, NULL, 0, NULL));
  expect_invalid(metrics_register(m, "q", "h", CH_METRIC_HISTOGRAM, NULL, b2, 2, &g),
                 "q vs q_sum");
  CHT_OK(metrics_register(m, "q_su", "h", CH_METRIC_HISTOGRAM, NULL, b2, 2, NULL));

  char *text;
  cht_prom p;
  cht_prom_render(m, &text, &p);
  static const char *const order[] = {":a:b_9", "_x", "c_total", "lat", "q_sum", "q_su"};
  CHT_ASSERT(p.nfams == 6, "%d families rendered, want 6:\n%s", p.nfams, text);
  for (int i = 0; i < 6; i++)
    CHT_ASSERT(!strcmp(p.fams[i].name, order[i]), "family %d is %s, want %s", i, p.fams[i].name,
               order[i]);
  CHT_ASSERT(!strcmp(p.fams[1].help, "") && !strcmp(p.fams[2].type, "counter"), "help/type");
  free(text), cht_prom_free(&p);
  metrics_destroy(m);
  metrics_destroy(NULL);
}

/* A small registry rendered in full: registration and creation order, unlabelled series present
 * from the start, a labelled family without series, escaping, non-finite observations. */
static void test_golden(void) {
  static const char *want =
      "# HELP cohort_requests_total Requests answered, by route and status.\n"
      "# TYPE cohort_requests_total counter\n"
      "cohort_requests_total{route=\"/v1/generate\",code=\"200\"} 3\n"
      "cohort_requests_total{route=\"/v1/models\",code=\"200\"} 0.25\n"
      "cohort_requests_total{route=\"a\\\\b\\\"c\\nd\",code=\"404\"} 1\n"
      "# HELP cohort_queue_depth Requests waiting.\\nSecond line with a \\\\ and \"quotes\".\n"
      "# TYPE cohort_queue_depth gauge\n"
      "cohort_queue_depth 0\n"
      "# HELP cohort_unused Never used.\n"
      "# TYPE cohort_unused gauge\n"
      "# HELP cohort_batch_size Sequences per batch.\n"
      "# TYPE cohort_batch_size histogram\n"
      "cohort_batch_size_bucket{le=\"1\"} 2\n"
      "cohort_batch_size_bucket{le=\"2\"} 2\n"
      "cohort_batch_size_bucket{le=\"4\"} 3\n"
      "cohort_batch_size_bucket{le=\"6\"} 3\n"
      "cohort_batch_size_bucket{le=\"+Inf\"} 5\n"
      "cohort_batch_size_sum NaN\n"
      "cohort_batch_size_count 5\n"
      "# HELP cohort_ttft_seconds Time to first token.\n"
      "# TYPE cohort_ttft_seconds histogram\n"
      "cohort_ttft_seconds_bucket{model=\"m\",le=\"0.0005\"} 0\n"
      "cohort_ttft_seconds_bucket{model=\"m\",le=\"0.001\"} 1\n";
  metrics *m;
  metric *req, *depth, *batch, *ttft;
  CHT_OK(metrics_create(&m));
  const char *rc[] = {"route", "code", NULL}, *model[] = {"model", NULL};
  double b[8];
  int nb = metrics_pow2_buckets(b, 6);
  CHT_OK(metrics_register(m, "cohort_requests_total", "Requests answered, by route and status.",
                          CH_METRIC_COUNTER, rc, NULL, 0, &req));
  CHT_OK(metrics_register(m, "cohort_queue_depth",
                          "Requests waiting.\nSecond line with a \\ and \"quotes\".",
                          CH_METRIC_GAUGE, NULL, NULL, 0, &depth));
  CHT_OK(metrics_register(m, "cohort_unused", "Never used.", CH_METRIC_GAUGE, model, NULL, 0,
                          NULL));
  CHT_OK(metrics_register(m, "cohort_batch_size", "Sequences per batch.", CH_METRIC_HISTOGRAM,
                          NULL, b, nb, &batch));
  CHT_OK(metrics_register(m, "cohort_ttft_seconds", "Time to first token.", CH_METRIC_HISTOGRAM,
                          model, metrics_latency_buckets, metrics_latency_nbuckets,
                          &ttft));
  const char *gen[] = {"/v1/generate", "200"}, *mod[] = {"/v1/models", "200"},
             *odd[] = {"a\\b\"c\nd", "404"};
  metric_inc(req, gen, 1), metric_inc(req, mod, 0.25), metric_inc(req, odd, 1);
  metric_inc(req, gen, 2);
  metric_observe(batch, NULL, 1), metric_observe(batch, NULL, -INFINITY);
  metric_observe(batch, NULL, 3), metric_observe(batch, NULL, INFINITY);
  metric_observe(batch, NULL, NAN);
  const char *mv[] = {"m"};
  metric_observe(ttft, mv, 0.001);
  size_t len;
  char *text = metrics_render(m, &len);
  CHT_ASSERT(text && !strncmp(text, want, strlen(want)), "render:\n%s\nwant (prefix):\n%s", text,
             want);
  CHT_ASSERT(strstr(text,
                    "cohort_ttft_seconds_bucket{model=\"m\",le=\"65.536\"} 1\n"
                    "cohort_ttft_seconds_bucket{model=\"m\",le=\"+Inf\"} 1\n"
                    "cohort_ttft_seconds_sum{model=\"m\"} 0.001\n"
                    "cohort_ttft_seconds_count{model=\"m\"} 1\n"),
             "ttft tail:\n%s", text);
  free(text);
  metrics_destroy(m);
}

/* Updates that do not fit the family change nothing and are counted. */
static void test_misuse(void) {
  metrics *m;
  metric *c, *g, *h, *cl;
  CHT_OK(metrics_create(&m));
  double b[] = {1};
  const char *k[] = {"k", NULL}, *v[] = {"x"};
  CHT_OK(metrics_register(m, "c_total", "", CH_METRIC_COUNTER, NULL, NULL, 0, &c));
  CHT_OK(metrics_register(m, "g", "", CH_METRIC_GAUGE, NULL, NULL, 0, &g));
  CHT_OK(metrics_register(m, "h", "", CH_METRIC_HISTOGRAM, NULL, b, 1, &h));
  CHT_OK(metrics_register(m, "cl_total", "", CH_METRIC_COUNTER, k, NULL, 0, &cl));
  metric_inc(c, NULL, 2.5), metric_set(g, NULL, -7.5), metric_observe(h, NULL, 0.5);
  metric_inc(cl, v, 1);
  char *before = metrics_render(m, NULL);
  metric_inc(c, NULL, -1), metric_inc(c, NULL, NAN), metric_set(c, NULL, 0);
  metric_observe(c, NULL, 1), metric_inc(h, NULL, 1), metric_set(h, NULL, 1);
  metric_observe(g, NULL, 1), metric_inc(cl, NULL, 1), metric_set(cl, v, 1);
  const char *nullv[] = {NULL};
  metric_inc(cl, nullv, 1);
  metric_inc(NULL, NULL, 1), metric_set(NULL, NULL, 1), metric_observe(NULL, NULL, 1);
  CHT_ASSERT(ch_error_message()[0], "misuse left no error message");
  ch_error_clear();
  char *after = metrics_render(m, NULL);
  CHT_ASSERT(before && after && !strcmp(before, after), "misuse changed the registry:\n%s\n---\n%s",
             before, after);
  unsigned long long dropped =
      metric_dropped(c) + metric_dropped(g) + metric_dropped(h) + metric_dropped(cl);
  CHT_ASSERT(metric_dropped(c) == 4 && dropped == 10, "dropped c=%llu total=%llu",
             metric_dropped(c), dropped);
  /* Gauges take any sign and any value, counters +Inf. */
  metric_inc(g, NULL, -2.5), metric_inc(c, NULL, INFINITY);
  char *text;
  cht_prom p;
  cht_prom_render(m, &text, &p);
  CHT_ASSERT(
      cht_prom_value(&p, "g", NULL) == -10 && cht_prom_value(&p, "c_total", NULL) == INFINITY,
      "values\n%s", text);
  free(before), free(after), free(text), cht_prom_free(&p);
  metrics_destroy(m);
}

static void test_bucket_helpers(void) {
  const double *lb = metrics_latency_buckets;
  int n = metrics_latency_nbuckets;
  CHT_ASSERT(n == 18 && lb[0] == 0.0005 && lb[n - 1] >= 60 && lb[n - 1] < 70,
             "latency buckets n=%d", n);
  for (int i = 1; i < n; i++)
    CHT_ASSERT(lb[i] == 2 * lb[i - 1], "latency bucket %d = %g", i, lb[i]);
  static const struct {
    int max, n;
    double last;
  } cases[] = {{64, 7, 64},   {48, 7, 48},           {1, 1, 1}, {2, 2, 2}, {3, 3, 3},
               {256, 9, 256}, {INT_MAX, 32, INT_MAX}};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    double b[32];
    int k = metrics_pow2_buckets(b, cases[c].max);
    CHT_ASSERT(k == cases[c].n && metrics_pow2_buckets(NULL, cases[c].max) == k,
               "pow2(%d) -> %d", cases[c].max, k);
    CHT_ASSERT(b[k - 1] == cases[c].last, "pow2(%d) last %g", cases[c].max, b[k - 1]);
    for (int i = 0; i < k - 1; i++)
      CHT_ASSERT(b[i] == ldexp(1, i), "pow2(%d)[%d] = %g", cases[c].max, i, b[i]);
  }
  CHT_ASSERT(metrics_pow2_buckets(NULL, 0) == 0 && metrics_pow2_buckets(NULL, -5) == 0,
             "pow2 of < 1");
}

int main(int argc, char **argv) {
  if (argc == 4 && !strcmp(argv[1], "--dump")) return test_metrics_dump(argv[2], argv[3]);
  test_format();
  test_registration();
  test_golden();
  test_misuse();
  test_bucket_helpers();
  test_escaping();
  test_histograms();
  /* Lost updates and double creations need threads that really overlap, which a loaded 2-core
   * machine grants only some of the time: a few repetitions make a miss unlikely. */
  for (int rep = 0; rep < 4; rep++) test_threads();
  printf("test_metrics: ok\n");
  return 0;
}
