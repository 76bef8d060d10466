/* A strict little parser of the Prometheus text format 0.0.4 as cohort renders it (HELP and
 * TYPE before each family's samples, no timestamps), for the metrics tests. It rejects what
 * cohort must never emit: unknown escapes, empty label sets, inf/nan spelled other than
 * +Inf/-Inf/NaN, samples outside their family, a missing final newline. */
#pragma once
#include <stddef.h>

#include "serve/metrics.h"

typedef struct {
  char *name;          /* sample name (family name + _bucket/_sum/_count for histograms) */
  int nlabels;
  char **keys, **vals; /* unescaped, in rendered order */
  char *value_text;    /* the value as written */
  double value;
  int family;          /* index into cht_prom.fams */
} cht_sample;

typedef struct {
  char *name, *help, *type; /* help unescaped */
} cht_family;

typedef struct {
  cht_family *fams;
  int nfams;
  cht_sample *samples;
  int nsamples;
} cht_prom;

/* Parses len bytes of text into *p (free with cht_prom_free, also after a failure). Returns 0,
 * or -1 with a message naming the line in err. */
int cht_prom_parse(const char *text, size_t len, cht_prom *p, char *err, size_t errsz);

/* Frees what cht_prom_parse stored in *p. */
void cht_prom_free(cht_prom *p);

/* Index of the first sample from `from` on with this name and exactly these labels, given as a
 * NULL-terminated list k1, v1, k2, v2, ... in rendered order (NULL = no labels); -1 if none. */
int cht_prom_find(const cht_prom *p, int from, const char *name, const char *const *kv);

/* Renders m and parses the result, failing the test on any error; the caller frees *text and
 * *p. */
void cht_prom_render(metrics *m, char **text, cht_prom *p);

/* Value of the one sample with this name and labels (kv as in cht_prom_find); fails the test
 * when there is none or more than one. */
double cht_prom_value(const cht_prom *p, const char *name, const char *const *kv);
