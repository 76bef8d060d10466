/* What metrics_register accepts (metrics.c): valid metric and label names, bucket bounds,
 * and family names whose samples would collide in the text format (a counter "x" and a
 * histogram "x" both print "x_count"-like names). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "serve/metrics_internal.h"

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
int metric_samples_collide(const char *a, metric_type ta, const char *b, metric_type tb) {
  static const char *const hist[] = {"_bucket", "_sum", "_count"}, *const plain[] = {""};
  const char *const *sa = ta == CH_METRIC_HISTOGRAM ? hist : plain;
  const char *const *sb = tb == CH_METRIC_HISTOGRAM ? hist : plain;
  int na = ta == CH_METRIC_HISTOGRAM ? 3 : 1, nb = tb == CH_METRIC_HISTOGRAM ? 3 : 1;
  for (int i = 0; i < na; i++)
    for (int j = 0; j < nb; j++)
      if (cat_eq(a, sa[i], b, sb[j])) return 1;
  return 0;
}

/* Checks the arguments of metrics_register; stores the label count in *nlabels. */
ch_status metric_check_family(const char *name, metric_type type, const char *const *labels,
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
      return CH_FAIL(CH_ERR_INVALID, "metric %s: bounds given for a %s", name, metric_type_name(type));
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
