/* Parallel reader of token datasets (made by `cohort data text`) for language-model training.
 * Window i is tokens [i*C, i*C + C + 1) for context C: the inputs are its first C tokens and
 * the targets its last C, so consecutive windows share one token and together cover the split.
 * A read selects the union of the requested windows' token ranges (adjacent windows form one
 * run) and moves it with one independent transfer, for the reasons given at the top of
 * dataset.c; the call is collective so that a bad window on one rank fails it on every rank. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/comm_mpi.h"
#include "cohort/data.h"
#include "cohort/log.h"
#include "data/data_internal.h"

struct ch_tokens {
  hid_t file, ds, dxpl;
  MPI_Comm comm;  /* the group's communicator (borrowed) */
  int64_t count, windows, vocab;
  double unigram_entropy; /* nats per token of the train split; NaN when not recorded */
  int context;
  char where[256]; /* "path:/split" for messages */
};

/* Everything after the file is open: attributes, the token dataset. */
static ch_status open_contents(void *reader, const char *path, const char *split) {
  ch_tokens *t = reader;
  CH_CHECK(data_read_attr_i64(t->file, path, "vocab_size", &t->vocab));
  if (t->vocab < 1 || t->vocab > (int64_t)INT32_MAX + 1)
    return CH_FAIL(CH_ERR_FORMAT, "%s: vocab_size = %lld (must be in 1..2^31)", path, (long long)t->vocab);
  char full[96];
  snprintf(full, sizeof full, "/%s/tokens", split);
  hsize_t dims[1] = {0};
  CH_CHECK(data_open_checked(t->file, t->where, full, H5T_INTEGER, 1, dims, &t->ds));
  t->count = (int64_t)dims[0];
  if (t->count < (int64_t)t->context + 1)
    return CH_FAIL(CH_ERR_FORMAT, "%s: %s has %lld tokens, too few for context %d (a window needs %lld)", path, full,
                   (long long)t->count, t->context, (long long)t->context + 1);
  t->windows = (t->count - 1) / t->context;
  t->unigram_entropy = NAN; /* optional: files of older converters lack it */
  if (H5Aexists(t->file, "unigram_entropy") > 0) {
    hid_t a = H5Aopen(t->file, "unigram_entropy", H5P_DEFAULT);
    if (a < 0 || H5Aread(a, H5T_NATIVE_DOUBLE, &t->unigram_entropy) < 0) t->unigram_entropy = NAN;
    if (a >= 0) H5Aclose(a);
  }
  return data_independent_dxpl(t->where, &t->dxpl);
}

ch_status ch_tokens_open(const ch_group *g, const char *path, const char *split, int context, ch_tokens **out) {
  *out = NULL;
  CH_CHECK(data_check_open("ch_tokens_open", g, path, split));
  if (context < 1) return CH_FAIL(CH_ERR_INVALID, "context %d (must be >= 1)", context);
  ch_tokens *t = calloc(1, sizeof *t);
  if (!t) return CH_FAIL(CH_ERR_NOMEM, "token dataset handle");
  t->file = t->ds = t->dxpl = -1;
  t->comm = ch_group_mpi_comm(g);
  t->context = context;
  snprintf(t->where, sizeof t->where, "%s:/%s", path, split);
  ch_status st = data_open_split(g, path, split, &t->file, open_contents, t);
  if (st != CH_OK) {
    ch_error_trace(__FILE__, __LINE__);
    ch_tokens_close(t);
    return st;
  }
  *out = t;
  return CH_OK;
}

void ch_tokens_close(ch_tokens *t) {
  if (!t) return;
  hid_t objs[] = {t->ds, t->dxpl};
  data_close_collective(t->file, objs, 2);
  free(t);
}

int64_t ch_tokens_count(const ch_tokens *t) { return t->count; }
int64_t ch_tokens_windows(const ch_tokens *t) { return t->windows; }
double ch_tokens_unigram_entropy(const ch_tokens *t) { return t->unigram_entropy; }
int64_t ch_tokens_vocab(const ch_tokens *t) { return t->vocab; }

static int cmp_i64(const void *pa, const void *pb) {
  int64_t a = *(const int64_t *)pa, b = *(const int64_t *)pb;
  return (a > b) - (a < b);
}

/* The read plan: the distinct windows u[0..m) sorted, grouped into runs of consecutive windows;
 * run r covers tokens [start[r], start[r] + len[r]) and lands at offset dst[r] of the buffer. */
typedef struct read_plan {
  int64_t *u, m, nruns, total;
  hsize_t *start, *len;
  int64_t *dst;
} read_plan;

static void plan_free(read_plan *p) {
  free(p->u);
  free(p->start);
  free(p->len);
  free(p->dst);
}

static ch_status plan_make(const ch_tokens *t, const int64_t *windows, int64_t n, read_plan *p) {
  if (n < 0 || (n > 0 && !windows))
    return CH_FAIL(CH_ERR_INVALID, "%s: bad read arguments (n = %lld)", t->where, (long long)n);
  for (int64_t i = 0; i < n; i++)
    if (windows[i] < 0 || windows[i] >= t->windows)
      return CH_FAIL(CH_ERR_INVALID, "%s: window %lld is out of range [0, %lld)", t->where, (long long)windows[i],
                     (long long)t->windows);
  if (n == 0) return CH_OK;
  p->u = malloc((size_t)n * sizeof *p->u);
  p->start = malloc((size_t)n * sizeof *p->start);
  p->len = malloc((size_t)n * sizeof *p->len);
  p->dst = malloc((size_t)n * sizeof *p->dst);
  if (!p->u || !p->start || !p->len || !p->dst)
    return CH_FAIL(CH_ERR_NOMEM, "%s: read of %lld windows", t->where, (long long)n);
  memcpy(p->u, windows, (size_t)n * sizeof *p->u);
  qsort(p->u, (size_t)n, sizeof *p->u, cmp_i64);
  for (int64_t i = 0; i < n; i++)
    if (i == 0 || p->u[i] != p->u[i - 1]) p->u[p->m++] = p->u[i];
  int64_t c = t->context;
  for (int64_t a = 0; a < p->m;) {
    int64_t b = a + 1;
    while (b < p->m && p->u[b] == p->u[b - 1] + 1) b++;
    /* windows u[a]..u[b-1]: tokens [u[a] C, u[b-1] C + C + 1) */
    p->start[p->nruns] = (hsize_t)(p->u[a] * c);
    p->len[p->nruns] = (hsize_t)((p->u[b - 1] - p->u[a] + 1) * c + 1);
    p->dst[p->nruns] = p->total;
    p->total += (int64_t)p->len[p->nruns++];
    a = b;
  }
  return CH_OK;
}

/* The collective part: every rank reads its runs (possibly none) into buf. A rank whose
 * selection failed still takes part, with nothing selected, then reports. */
static ch_status read_runs(const ch_tokens *t, const read_plan *p, int32_t *buf) {
  ch_status st = CH_OK;
  int32_t dummy = 0;
  hsize_t md[1] = {p->total ? (hsize_t)p->total : 1};
  hid_t mem = H5Screate_simple(1, md, NULL), like = H5Dget_space(t->ds), file = -1;
  if (mem < 0 || like < 0) st = data_h5_fail(CH_ERR_IO, t->where, "dataspace");
  if (st == CH_OK && p->total == 0 && H5Sselect_none(mem) < 0) st = data_h5_fail(CH_ERR_IO, t->where, "selection");
  if (st == CH_OK && (file = data_select_runs(like, p->start, p->len, p->nruns, 1)) < 0)
    st = data_h5_fail(CH_ERR_IO, t->where, "window selection");
  if (st != CH_OK) {
    ch_error_trace(__FILE__, __LINE__);
    if (file < 0) file = H5Dget_space(t->ds);
    H5Sselect_none(file);
    H5Sselect_none(mem);
  }
  if (H5Dread(t->ds, H5T_NATIVE_INT32, mem, file, t->dxpl, p->total ? (void *)buf : &dummy) < 0 && st == CH_OK)
    st = data_h5_fail(CH_ERR_IO, t->where, "reading tokens");
  if (file >= 0) H5Sclose(file);
  if (like >= 0) H5Sclose(like);
  if (mem >= 0) H5Sclose(mem);
  return st;
}

/* Copies each requested window from the buffer of runs into out, checking the tokens. */
static ch_status scatter(const ch_tokens *t, const read_plan *p, const int32_t *buf, const int64_t *windows,
                         int64_t n, int32_t *out) {
  int64_t c = t->context, w = c + 1;
  for (int64_t i = 0; i < n; i++) {
    /* the run holding the window: the last one that starts at or before it */
    int64_t lo = 0, hi = p->nruns;
    while (hi - lo > 1) {
      int64_t mid = (lo + hi) / 2;
      if ((int64_t)p->start[mid] <= windows[i] * c) lo = mid;
      else hi = mid;
    }
    const int32_t *src = buf + p->dst[lo] + (windows[i] * c - (int64_t)p->start[lo]);
    for (int64_t k = 0; k < w; k++) {
      if (src[k] < 0 || src[k] >= t->vocab)
        return CH_FAIL(CH_ERR_FORMAT, "%s: token %lld is %d, outside the vocabulary [0, %lld)", t->where,
                       (long long)(windows[i] * c + k), (int)src[k], (long long)t->vocab);
      out[i * w + k] = src[k];
    }
  }
  return CH_OK;
}

typedef struct read_args {
  const ch_tokens *t;
  const read_plan *p;
  int32_t *buf;
} read_args;

static ch_status read_runs_cb(void *ctx) {
  const read_args *a = ctx;
  return read_runs(a->t, a->p, a->buf);
}

ch_status ch_tokens_read(ch_tokens *t, const int64_t *windows, int64_t n, int32_t *out) {
  read_plan p = {0};
  int32_t *buf = NULL;
  ch_status st = plan_make(t, windows, n, &p);
  if (st == CH_OK && n > 0 && !out)
    st = CH_FAIL(CH_ERR_INVALID, "%s: null output for %lld windows", t->where, (long long)n);
  if (st == CH_OK && p.total > 0 && !(buf = malloc((size_t)p.total * sizeof *buf)))
    st = CH_FAIL(CH_ERR_NOMEM, "%s: read of %lld tokens", t->where, (long long)p.total);
  read_args a = {t, &p, buf};
  st = data_read_agreed(t->comm, st, t->where, "ch_tokens_read", read_runs_cb, &a);
  if (st == CH_OK) st = scatter(t, &p, buf, windows, n, out);
  plan_free(&p);
  free(buf);
  return st;
}
