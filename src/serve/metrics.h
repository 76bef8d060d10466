/* Prometheus metrics for the inference server: a registry of metric families (counter, gauge,
 * histogram), each with optional labels, rendered in the text exposition format 0.0.4.
 *
 * Naming (documented, not enforced): counters end in _total (cohort_requests_total),
 * histograms of durations are in seconds and end in _seconds (cohort_request_duration_seconds).
 *
 * Threads: register, inc/set/observe and render may all be called from any thread at once.
 * Updates are lock-free atomics on a series; a family's mutex is taken only the first time a
 * label combination is seen (to create its series) and while the family is rendered. A render
 * that runs concurrently with updates sees each sample at some moment between its start and
 * end; within one histogram series the buckets and _count always agree (_count is the +Inf
 * bucket), and _sum may include observations that the buckets do not yet show. */
#pragma once
#include <stddef.h>

#include "cohort/status.h"

typedef struct metrics metrics; /* a registry */
typedef struct metric metric;   /* one family: name, help, type, label names, buckets */

typedef enum { CH_METRIC_COUNTER, CH_METRIC_GAUGE, CH_METRIC_HISTOGRAM } metric_type;

/* Creates an empty registry in *out (free with metrics_destroy). CH_ERR_NOMEM. */
ch_status metrics_create(metrics **out);

/* Frees the registry, all its families and series; NULL is a no-op. No other thread may use
 * the registry or its families during or after the call. */
void metrics_destroy(metrics *m);

/* Registers a family and stores it in *out (owned by the registry; out may be NULL).
 * name matches [a-zA-Z_:][a-zA-Z0-9_:]*; help is any text (NULL = ""); label_names is a
 * NULL-terminated list of distinct names matching [a-zA-Z_][a-zA-Z0-9_]*, none starting with
 * "__" and, for a histogram, none equal to "le" (label_names NULL = no labels). A histogram
 * takes nbounds >= 1 finite, strictly ascending upper bounds (le is inclusive; +Inf is added
 * implicitly); the other types take bounds NULL and nbounds 0. A family without labels has
 * its single series from the start (so it renders as 0 before any update). Registering the
 * same name again returns the existing family when type, help, labels and bounds are
 * identical. CH_ERR_INVALID for a bad argument, a different family of the same name, or a
 * name whose samples (name, name_bucket/_sum/_count for histograms) would collide with
 * another family's samples; CH_ERR_NOMEM. */
ch_status metrics_register(metrics *m, const char *name, const char *help,
                           metric_type type, const char *const *label_names,
                           const double *bounds, int nbounds, metric **out);

/* The family registered under name, or NULL. */
metric *metrics_find(metrics *m, const char *name);

/* Update calls. label_values holds exactly one non-NULL value per label name, in the order of
 * label_names (NULL when the family has no labels); a series is created on first use of a
 * value combination. A call that does not fit the family (wrong type for the operation, a
 * counter increment that is negative or NaN, NULL label_values on a labelled family, out of
 * memory) changes nothing, records a CH_FAIL message on the calling thread and is counted by
 * metric_dropped. */

/* Counter: value += v (v >= 0). Gauge: value += v (any sign). */
void metric_inc(metric *f, const char *const *label_values, double v);

/* Gauge: value = v. */
void metric_set(metric *f, const char *const *label_values, double v);

/* Histogram: counts v in the first bucket whose bound is >= v (+Inf for larger values and
 * NaN), adds v to _sum and 1 to _count. */
void metric_observe(metric *f, const char *const *label_values, double v);

/* How many update calls on f were ignored as misuse (see above). */
unsigned long long metric_dropped(const metric *f);

/* The whole registry in the Prometheus text format 0.0.4: per family "# HELP", "# TYPE",
 * then one sample per series (histograms: cumulative name_bucket{...,le="..."} lines ending
 * with le="+Inf", then name_sum and name_count); families in registration order, series in
 * creation order. Label values are escaped (\\ \" \n), help text too (\\ \n). Numbers are the
 * shortest decimal that parses back to the same double (at most %.17g digits), integers
 * below 1e17 without exponent, and +Inf, -Inf, NaN. Returns a malloc'ed NUL-terminated string
 * (caller frees) with its length excluding the NUL in *len (len may be NULL); NULL with a
 * CH_FAIL message when out of memory. */
char *metrics_render(metrics *m, size_t *len);

/* Formats v as in metrics_render into buf (32 bytes are always enough); returns the
 * length written. */
int metrics_format_double(char *buf, size_t size, double v);

/* Default latency buckets in seconds, for request latency and time to first token: 18 bounds
 * 0.0005 * 2^k for k = 0..17, i.e. 0.0005, 0.001, 0.002, ..., 16.384, 32.768, 65.536 s. A
 * constant factor of 2 bounds the relative error of a quantile interpolated inside a bucket
 * evenly from half a millisecond to a minute. */
extern const double metrics_latency_buckets[];
extern const int metrics_latency_nbuckets;

/* Batch-size style bounds into out: 1, 2, 4, ... (powers of two below max_value), then
 * max_value itself; returns the count (0 when max_value < 1). out may be NULL to only count;
 * otherwise it must hold the count (32 entries suffice for any int). */
int metrics_pow2_buckets(double *out, int max_value);
