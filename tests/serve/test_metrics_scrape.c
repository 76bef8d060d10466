/* A live server's /metrics through the metrics tests' strict parser (test_metrics_parse.c):
 *   test_metrics_scrape FILE
 * parses FILE (a scrape) and fails on anything cohort must never emit; then checks what holds
 * for any server: every sample of a family with a "model" label also has a "version" label,
 * histograms' buckets are cumulative with _count equal to the +Inf bucket, and
 * cohort_inferences_total >= cohort_executions_total for each series. Prints each sample as
 *   name{k="v",...} value
 * (labels in rendered order) for the calling script to check values. Exit 0, or 1 with a
 * message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_metrics_parse.h"
#include "testlib.h"

static char *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  CHT_ASSERT(f, "cannot open %s", path);
  size_t cap = 1 << 16, len = 0;
  char *buf = malloc(cap);
  for (size_t got; buf && (got = fread(buf + len, 1, cap - len, f)) > 0;) {
    len += got;
    if (len == cap) buf = realloc(buf, cap *= 2);
  }
  CHT_ASSERT(buf, "out of memory");
  fclose(f);
  *n = len;
  return buf;
}

static const char *label(const cht_sample *s, const char *key) {
  for (int i = 0; i < s->nlabels; i++)
    if (!strcmp(s->keys[i], key)) return s->vals[i];
  return NULL;
}

/* Whether two bucket samples belong to one series: the same labels but le (the last). */
static int same_series(const cht_sample *a, const cht_sample *b) {
  if (strcmp(a->name, b->name) || a->nlabels != b->nlabels) return 0;
  for (int k = 0; k + 1 < a->nlabels; k++)
    if (strcmp(a->keys[k], b->keys[k]) || strcmp(a->vals[k], b->vals[k])) return 0;
  return 1;
}

/* The value of the sample `name` whose labels are those of s (same order), or -1 if none. */
static double twin(const cht_prom *p, const char *name, const cht_sample *s) {
  for (int i = 0; i < p->nsamples; i++) {
    const cht_sample *t = &p->samples[i];
    if (strcmp(t->name, name) || t->nlabels != s->nlabels) continue;
    int same = 1;
    for (int k = 0; k < s->nlabels && same; k++)
      same = !strcmp(t->keys[k], s->keys[k]) && !strcmp(t->vals[k], s->vals[k]);
    if (same) return t->value;
  }
  return -1;
}

int main(int argc, char **argv) {
  CHT_ASSERT(argc == 2, "usage: test_metrics_scrape FILE");
  size_t n;
  char *text = slurp(argv[1], &n), err[256];
  cht_prom p;
  CHT_ASSERT(cht_prom_parse(text, n, &p, err, sizeof err) == 0, "%s: %s", argv[1], err);
  const cht_sample *prev = NULL; /* the previous sample when it was a bucket */
  for (int i = 0; i < p.nsamples; i++) {
    const cht_sample *s = &p.samples[i];
    CHT_ASSERT(!label(s, "model") || label(s, "version"), "%s: a model label without a version",
               s->name);
    size_t ln = strlen(s->name);
    int bucket = ln > 7 && !strcmp(s->name + ln - 7, "_bucket");
    if (bucket) { /* cumulative within a series */
      if (prev && same_series(prev, s))
        CHT_ASSERT(s->value >= prev->value, "%s: buckets not cumulative", s->name);
      if (!strcmp(label(s, "le"), "+Inf")) {
        char count[256];
        snprintf(count, sizeof count, "%.*s_count", (int)(ln - 7), s->name);
        cht_sample base = *s; /* the series' labels without le */
        base.nlabels = s->nlabels - 1;
        CHT_ASSERT(twin(&p, count, &base) == s->value, "%s: _count is not the +Inf bucket", count);
      }
    }
    prev = bucket ? s : NULL;
    if (!strcmp(s->name, "cohort_executions_total"))
      CHT_ASSERT(twin(&p, "cohort_inferences_total", s) >= s->value,
                 "fewer inferences than executions");
    printf("%s", s->name);
    for (int k = 0; k < s->nlabels; k++)
      printf("%s%s=\"%s\"", k ? "," : "{", s->keys[k], s->vals[k]);
    printf("%s %s\n", s->nlabels ? "}" : "", s->value_text);
  }
  cht_prom_free(&p);
  free(text);
  return 0;
}
