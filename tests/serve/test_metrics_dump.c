/* test_metrics --dump RENDER EXPECT: fills a registry with random families, series and values
 * (special characters, non-finite numbers, exact bucket bounds), writes its render to RENDER
 * and, independently of the renderer, what it must contain to EXPECT, one line per family
 * ("F name type help") or sample ("S name value nlabels k1 v1 ..."), strings as hex bytes ("-"
 * when empty) and numbers as C hex floats, so that test_metrics_prom.py can compare the
 * prometheus_client parse of RENDER with them exactly. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/rng.h"
#include "serve/metrics.h"
#include "test_metrics.h"
#include "testlib.h"

static void put_hex(FILE *f, const char *s) {
  fputs(*s ? " " : " -", f);
  for (; *s; s++) fprintf(f, "%02x", (unsigned char)*s);
}

static void put_num(FILE *f, double v) {
  if (isnan(v)) fputs(" nan", f);
  else fprintf(f, " %a", v);
}

/* One expected sample: name, value, labels (label_names/values, then le when le_on). */
static void put_sample(FILE *f, const char *name, double v, const char *const *keys,
                       const char *const *vals, int n, int le_on, double le) {
  fputs("S", f), put_hex(f, name), put_num(f, v);
  fprintf(f, " %d", n + le_on);
  for (int i = 0; i < n; i++) put_hex(f, keys[i]), put_hex(f, vals[i]);
  if (le_on) put_hex(f, "le"), put_num(f, le);
  fputs("\n", f);
}

static void put_family(FILE *f, const char *name, const char *type, const char *help) {
  fputs("F", f), put_hex(f, name), fprintf(f, " %s", type), put_hex(f, help), fputs("\n", f);
}

/* A random label value made of characters the format treats specially (valid UTF-8). */
static void random_label(char *out, size_t size, const char *prefix, uint64_t i) {
  static const char *const pieces[] = {"\\", "\"", "\n", "{", "}", ",", "=",
                                       " ", "#", "x", "\xc3\xa9", "\\n", "'"};
  snprintf(out, size, "%s", prefix);
  int n = (int)ch_rng_below(77, 1, i, 10);
  for (int k = 0; k < n; k++) strcat(out, pieces[ch_rng_below(77, 2 + (uint64_t)k, i, 13)]);
}

/* Registers a histogram, observes nser series of nval values each, writes the expectations. */
static void dump_histogram(metrics *m, FILE *e, const char *name, const char *help,
                           const char *label, int nser, const double *b, int nb, uint64_t seed) {
  metric *h;
  const char *keys[] = {label, NULL};
  char bname[64], sname[64], cname[64];
  snprintf(bname, sizeof bname, "%s_bucket", name);
  snprintf(sname, sizeof sname, "%s_sum", name);
  snprintf(cname, sizeof cname, "%s_count", name);
  CHT_OK(metrics_register(m, name, help, CH_METRIC_HISTOGRAM, label ? keys : NULL, b, nb, &h));
  put_family(e, name, "histogram", help);
  enum { NVAL = 400 };
  for (int s = 0; s < nser; s++) {
    char lv[80], prefix[16];
    snprintf(prefix, sizeof prefix, "model%d", s); /* distinct series */
    random_label(lv, sizeof lv, prefix, seed * 100 + (uint64_t)s);
    const char *vals[] = {lv};
    double v[NVAL], sum = 0;
    for (int i = 0; i < NVAL; i++) {
      uint64_t c = (uint64_t)(s * NVAL + i);
      int pick = (int)ch_rng_below(seed, 1, c, 3);
      v[i] = pick == 0 ? b[ch_rng_below(seed, 2, c, (uint64_t)nb)]
                       : b[nb - 1] * 1.2 * ch_rng_uniform(seed, 3, c) - (pick == 2 ? 0.01 : 0);
      metric_observe(h, label ? vals : NULL, v[i]);
      sum += v[i];
    }
    for (int j = 0; j <= nb; j++) {
      int cum = 0;
      for (int i = 0; i < NVAL; i++) cum += j == nb || v[i] <= b[j];
      put_sample(e, bname, cum, keys, vals, label ? 1 : 0, 1, j < nb ? b[j] : INFINITY);
    }
    put_sample(e, sname, sum, keys, vals, label ? 1 : 0, 0, 0);
    put_sample(e, cname, NVAL, keys, vals, label ? 1 : 0, 0, 0);
  }
}

int test_metrics_dump(const char *render_path, const char *expect_path) {
  metrics *m;
  metric *req, *spec;
  FILE *e = fopen(expect_path, "w"), *r = fopen(render_path, "w");
  CHT_ASSERT(e && r, "cannot open %s or %s", render_path, expect_path);
  CHT_OK(metrics_create(&m));

  const char *rc[] = {"route", "code", NULL}, *codes[] = {"200", "404", "503"};
  const char *help1 = "Requests by route and code; \\ backslash, \"quotes\"\nand a second line.";
  CHT_OK(
      metrics_register(m, "dump_requests_total", help1, CH_METRIC_COUNTER, rc, NULL, 0, &req));
  put_family(e, "dump_requests_total", "counter", help1);
  for (int s = 0; s < 40; s++) {
    char route[80], prefix[16];
    snprintf(prefix, sizeof prefix, "/r%d", s); /* distinct series */
    random_label(route, sizeof route, prefix, (uint64_t)s);
    const char *vals[] = {route, codes[s % 3]};
    double total = 0;
    int n = 1 + (int)ch_rng_below(5, 1, (uint64_t)s, 20);
    for (int i = 0; i < n; i++) {
      double v = (double)ch_rng_below(5, 2, (uint64_t)(s * 100 + i), 1000) / 16;
      metric_inc(req, vals, v);
      total += v;
    }
    if (s == 7) metric_inc(req, vals, INFINITY), total = INFINITY;
    put_sample(e, "dump_requests_total", total, rc, vals, 2, 0, 0);
  }

  const char *which[] = {"which", NULL};
  const char *help2 = "Special values: NaN, +Inf, -0, extremes and random bit patterns.";
  CHT_OK(metrics_register(m, "dump_special", help2, CH_METRIC_GAUGE, which, NULL, 0, &spec));
  put_family(e, "dump_special", "gauge", help2);
  double special[] = {
      NAN, INFINITY, -INFINITY,           -0.0,      DBL_MAX, -DBL_MAX, DBL_TRUE_MIN, DBL_MIN,
      0.1, 1e17,     99999999999999984.0, 123456789, -2.5,    1.0 / 3,  1e-300};
  int nspecial = (int)(sizeof special / sizeof special[0]);
  for (int s = 0; s < nspecial + 60; s++) {
    double v = special[s < nspecial ? s : 0];
    if (s >= nspecial) {
      uint64_t u = ch_rng_u64(6, 1, (uint64_t)s);
      memcpy(&v, &u, sizeof v);
    }
    char lv[16];
    snprintf(lv, sizeof lv, "v%d", s);
    const char *vals[] = {lv};
    metric_set(spec, vals, 1234.5); /* overwritten: set is not add */
    metric_set(spec, vals, v);
    put_sample(e, "dump_special", v, which, vals, 1, 0, 0);
  }

  dump_histogram(m, e, "dump_latency_seconds", "Request latency.", "model", 3,
                 metrics_latency_buckets, metrics_latency_nbuckets, 8);
  double pow2[32];
  int np = metrics_pow2_buckets(pow2, 64);
  dump_histogram(m, e, "dump_batch_size", "Batch size.", NULL, 1, pow2, np, 9);

  const char *x[] = {"x", NULL};
  CHT_OK(metrics_register(m, "dump_empty", "No series yet.", CH_METRIC_GAUGE, x, NULL, 0, NULL));
  put_family(e, "dump_empty", "gauge", "No series yet.");
  CHT_OK(metrics_register(m, "dump_plain_total", "Never incremented.", CH_METRIC_COUNTER, NULL,
                          NULL, 0, NULL));
  put_family(e, "dump_plain_total", "counter", "Never incremented.");
  put_sample(e, "dump_plain_total", 0, NULL, NULL, 0, 0, 0);

  size_t len;
  char *text = metrics_render(m, &len);
  CHT_ASSERT(text && fwrite(text, 1, len, r) == len, "render or write failed");
  free(text);
  metrics_destroy(m);
  CHT_ASSERT(!fclose(r) && !fclose(e), "close failed");
  return 0;
}
