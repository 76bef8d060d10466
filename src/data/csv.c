/* CSV -> HDF5 dataset converter (`cohort data csv`).
 * The whole table is parsed into memory (float32 features, int32 labels), split into train and
 * val per class, and written as contiguous datasets: contiguous storage maps a row to one file
 * extent, so the parallel reader's row hyperslabs turn into plain MPI-IO offsets. */
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cohort/data.h"
#include "cohort/rng.h"
#include "data/data_internal.h"
#include "data/gzin.h"
#include "runtime/h5util.h"

#define CSV_MAX_LABEL (INT32_MAX - 1) /* so that num_classes = max label + 1 fits an int */

typedef struct csv_table {
  float *x;          /* rows x features, row-major */
  int32_t *y;
  int64_t rows, cap;
  int ncols;         /* 0 until the first data line */
  int label_col;     /* resolved 0-based column */
  int header_cols;   /* columns of the header line, 0 if none */
  int64_t header_line;
  int32_t max_label;
} csv_table;

static void table_free(csv_table *t) {
  free(t->x);
  free(t->y);
  memset(t, 0, sizeof *t);
}

/* Reads one line into *buf (NUL-terminated, '\n' kept). Returns 1 for a line, 0 at end of file,
 * or fails with CH_ERR_IO on a read or gzip error. */
static ch_status read_line(gzFile f, const char *path, char **buf, size_t *cap, int *got) {
  size_t n = 0;
  *got = 0;
  for (;;) {
    if (*cap - n < 2) {
      size_t ncap = *cap ? *cap * 2 : 4096;
      char *nb = realloc(*buf, ncap);
      if (!nb) return CH_FAIL(CH_ERR_NOMEM, "%s: line buffer of %zu bytes", path, ncap);
      *buf = nb;
      *cap = ncap;
    }
    size_t room = *cap - n > INT_MAX ? INT_MAX : *cap - n;
    int part = 0;
    CH_CHECK(gzin_gets(f, path, *buf + n, (int)room, &part));
    if (!part) break; /* end of file */
    n += strlen(*buf + n);
    *got = 1;
    if (n && (*buf)[n - 1] == '\n') break;
  }
  if (*got) (*buf)[n] = '\0';
  return CH_OK;
}

/* Parses the field [s, e) as a number: 1 if it is one (surrounding blanks allowed), else 0. */
static int parse_num(const char *s, const char *e, double *v) {
  char *end;
  errno = 0;
  *v = strtod(s, &end);
  if (end == s || end > e) return 0;
  while (end < e && (*end == ' ' || *end == '\t')) end++;
  return end == e;
}

static int count_fields(const char *line) {
  int n = 1;
  for (const char *p = line; *p; p++) n += *p == ',';
  return n;
}

static int is_blank(const char *s) {
  for (; *s; s++)
    if (*s != ' ' && *s != '\t') return 0;
  return 1;
}

/* Whether every field of `line` is a number (a line that is not is taken as the header). */
static int all_numeric(const char *line) {
  const char *s = line;
  for (;;) {
    const char *e = strchr(s, ',');
    if (!e) e = s + strlen(s);
    double v;
    if (!parse_num(s, e, &v)) return 0;
    if (!*e) return 1;
    s = e + 1;
  }
}

static ch_status table_grow(csv_table *t, const char *path) {
  int64_t ncap = t->cap ? t->cap * 2 : 1024;
  size_t d = (size_t)(t->ncols - 1);
  float *x = realloc(t->x, (size_t)ncap * d * sizeof *x);
  if (x) t->x = x;
  int32_t *y = realloc(t->y, (size_t)ncap * sizeof *y);
  if (y) t->y = y;
  if (!x || !y) return CH_FAIL(CH_ERR_NOMEM, "%s: table of %lld rows x %zu features", path, (long long)ncap, d);
  t->cap = ncap;
  return CH_OK;
}

/* Parses one data line (already known to have ncols fields) and appends it to the table. */
static ch_status parse_row(csv_table *t, const char *line, const char *path, int64_t lineno) {
  if (t->rows == t->cap) CH_CHECK(table_grow(t, path));
  float *xr = t->x + (size_t)t->rows * (size_t)(t->ncols - 1);
  const char *s = line;
  for (int c = 0, j = 0; c < t->ncols; c++) {
    const char *e = strchr(s, ',');
    if (!e) e = s + strlen(s);
    int flen = (int)(e - s > 40 ? 40 : e - s);
    double v;
    if (!parse_num(s, e, &v)) {
      if (strspn(s, " \t") >= (size_t)(e - s))
        return CH_FAIL(CH_ERR_FORMAT, "%s:%lld: column %d is empty", path, (long long)lineno, c + 1);
      return CH_FAIL(CH_ERR_FORMAT, "%s:%lld: column %d: '%.*s' is not a number", path,
                     (long long)lineno, c + 1, flen, s);
    }
    if (!isfinite(v))
      return CH_FAIL(CH_ERR_FORMAT, "%s:%lld: column %d: '%.*s' is not a finite number", path,
                     (long long)lineno, c + 1, flen, s);
    if (c == t->label_col) {
      if (v < 0)
        return CH_FAIL(CH_ERR_FORMAT, "%s:%lld: label '%.*s' is negative (labels are integers >= 0)",
                       path, (long long)lineno, flen, s);
      if (v != floor(v))
        return CH_FAIL(CH_ERR_FORMAT, "%s:%lld: label '%.*s' is not an integer", path,
                       (long long)lineno, flen, s);
      if (v > CSV_MAX_LABEL)
        return CH_FAIL(CH_ERR_FORMAT, "%s:%lld: label '%.*s' is too large (at most %d)", path,
                       (long long)lineno, flen, s, CSV_MAX_LABEL);
      t->y[t->rows] = (int32_t)v;
      if (t->y[t->rows] > t->max_label) t->max_label = t->y[t->rows];
    } else {
      if (fabs(v) > FLT_MAX)
        return CH_FAIL(CH_ERR_FORMAT, "%s:%lld: column %d: '%.*s' is out of float32 range", path,
                       (long long)lineno, c + 1, flen, s);
      xr[j++] = (float)v;
    }
    s = e + 1;
  }
  t->rows++;
  return CH_OK;
}

/* Handles one non-blank line: the header (first line, not all numeric) or a data row. */
static ch_status parse_line(csv_table *t, const ch_csv_opts *o, const char *line, const char *path,
                            int64_t lineno) {
  int nf = count_fields(line);
  if (t->ncols == 0) {
    if (t->header_cols == 0 && t->header_line == 0 && !all_numeric(line)) {
      t->header_cols = nf;
      t->header_line = lineno;
      return CH_OK;
    }
    if (nf < 2)
      return CH_FAIL(CH_ERR_FORMAT, "%s:%lld: found %d column; need at least 2 (features and a label)",
                     path, (long long)lineno, nf);
    if (t->header_cols && t->header_cols != nf)
      return CH_FAIL(CH_ERR_FORMAT, "%s:%lld: header has %d columns but the first data line (%lld) has %d",
                     path, (long long)t->header_line, t->header_cols, (long long)lineno, nf);
    if (o->label_column >= nf)
      return CH_FAIL(CH_ERR_INVALID, "%s: label column %d is out of range: the file has %d columns (0..%d)",
                     path, o->label_column, nf, nf - 1);
    t->ncols = nf;
    t->label_col = o->label_column < 0 ? nf - 1 : o->label_column;
  } else if (nf != t->ncols) {
    return CH_FAIL(CH_ERR_FORMAT, "%s:%lld: expected %d columns, found %d", path, (long long)lineno,
                   t->ncols, nf);
  }
  CH_CHECK(parse_row(t, line, path, lineno));
  return CH_OK;
}

/* Parses the whole file into `t`. */
static ch_status read_table(const char *path, const ch_csv_opts *o, csv_table *t) {
  ch_status st = CH_OK;
  char *buf = NULL;
  size_t cap = 0;
  gzFile f;
  CH_CHECK(gzin_open(path, &f));
  for (int64_t lineno = 1;; lineno++) {
    int got = 0;
    CH_CHECK_GOTO(read_line(f, path, &buf, &cap, &got), st, done);
    if (!got) break;
    size_t n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) buf[--n] = '\0';
    if (is_blank(buf)) continue;
    CH_CHECK_GOTO(parse_line(t, o, buf, path, lineno), st, done);
  }
  if (t->rows == 0) st = CH_FAIL(CH_ERR_FORMAT, "%s: no data rows", path);
done:
  free(buf);
  gzclose(f);
  return st;
}

typedef struct split_key {
  int32_t label;
  uint64_t key;
  int64_t row;
} split_key;

static int cmp_split_key(const void *pa, const void *pb) {
  const split_key *a = pa, *b = pb;
  if (a->label != b->label) return a->label < b->label ? -1 : 1;
  if (a->key != b->key) return a->key < b->key ? -1 : 1;
  return (a->row > b->row) - (a->row < b->row);
}

/* Stratified split: within each class the rows are ordered by a seeded random key (a uniform
 * random permutation) and the first v_c go to val, v_c = round(f * n_c) clamped to
 * [1, n_c - 1] when f > 0 and n_c >= 2 (so every class with two rows has one on each side), and
 * 0 for a class of one row. Sets is_val[row] and returns the number of val rows in *nval. */
static ch_status split_rows(const csv_table *t, const ch_csv_opts *o, uint8_t *is_val, int64_t *nval) {
  *nval = 0;
  if (o->val_fraction <= 0) return CH_OK;
  split_key *k = malloc((size_t)t->rows * sizeof *k);
  if (!k) return CH_FAIL(CH_ERR_NOMEM, "split of %lld rows", (long long)t->rows);
  const uint64_t stream = 0x73706c6974ULL; /* "split" */
  for (int64_t r = 0; r < t->rows; r++)
    k[r] = (split_key){t->y[r], ch_rng_u64(o->seed, stream, (uint64_t)r), r};
  qsort(k, (size_t)t->rows, sizeof *k, cmp_split_key);
  for (int64_t a = 0; a < t->rows;) {
    int64_t b = a;
    while (b < t->rows && k[b].label == k[a].label) b++;
    int64_t nc = b - a, v = (int64_t)floor(o->val_fraction * (double)nc + 0.5);
    if (nc >= 2) v = v < 1 ? 1 : v > nc - 1 ? nc - 1 : v;
    else v = 0;
    for (int64_t i = a; i < a + v; i++) is_val[k[i].row] = 1;
    *nval += v;
    a = b;
  }
  free(k);
  return CH_OK;
}

/* Writes /<name>/x and /<name>/y with the `count` rows whose is_val equals want_val, in file
 * order. */
static ch_status write_split(hid_t file, const char *name, const csv_table *t, const uint8_t *is_val,
                             int want_val, int64_t count, const char *path) {
  ch_status st = CH_OK;
  size_t d = (size_t)(t->ncols - 1);
  float *x = count ? malloc((size_t)count * d * sizeof *x) : NULL;
  int32_t *y = count ? malloc((size_t)count * sizeof *y) : NULL;
  hid_t grp = -1;
  if (count && (!x || !y)) {
    st = CH_FAIL(CH_ERR_NOMEM, "%s split of %lld rows", name, (long long)count);
    goto done;
  }
  for (int64_t r = 0, i = 0; r < t->rows; r++) {
    if (is_val[r] != want_val) continue;
    memcpy(x + (size_t)i * d, t->x + (size_t)r * d, d * sizeof *x);
    y[i++] = t->y[r];
  }
  grp = H5Gcreate2(file, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (grp < 0) {
    st = data_h5_fail(CH_ERR_IO, path, name);
    goto done;
  }
  hsize_t xd[2] = {(hsize_t)count, (hsize_t)d}, yd[1] = {(hsize_t)count};
  CH_CHECK_GOTO(data_write_dataset(grp, "x", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, xd, x, path), st, done);
  CH_CHECK_GOTO(data_write_dataset(grp, "y", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, yd, y, path), st, done);
done:
  if (grp >= 0) H5Gclose(grp);
  free(x);
  free(y);
  return st;
}

static ch_status write_file(const char *tmp, const char *in_path, const csv_table *t,
                            const uint8_t *is_val, int64_t nval) {
  ch_status st = CH_OK;
  hid_t file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (file < 0) return data_h5_fail(CH_ERR_IO, tmp, "create failed");
  const char *base = strrchr(in_path, '/');
  CH_CHECK_GOTO(write_split(file, "train", t, is_val, 0, t->rows - nval, tmp), st, done);
  CH_CHECK_GOTO(write_split(file, "val", t, is_val, 1, nval, tmp), st, done);
  CH_CHECK_GOTO(data_write_attr_i64(file, "num_features", t->ncols - 1, tmp), st, done);
  CH_CHECK_GOTO(data_write_attr_i64(file, "num_classes", (int64_t)t->max_label + 1, tmp), st, done);
  CH_CHECK_GOTO(data_write_attr_str(file, "source", base ? base + 1 : in_path, tmp), st, done);
done:
  if (H5Fclose(file) < 0 && st == CH_OK) st = data_h5_fail(CH_ERR_IO, tmp, "close failed");
  return st;
}

ch_status ch_data_csv_convert(const char *in_path, const char *out_path, const ch_csv_opts *opts,
                              ch_csv_stats *stats) {
  const ch_csv_opts defaults = {.label_column = -1, .val_fraction = 0.2, .seed = 0};
  const ch_csv_opts *o = opts ? opts : &defaults;
  if (!in_path || !out_path) return CH_FAIL(CH_ERR_INVALID, "csv convert: null path");
  if (!(o->val_fraction >= 0 && o->val_fraction < 1))
    return CH_FAIL(CH_ERR_INVALID, "val fraction %g is not in [0, 1)", o->val_fraction);
  if (o->label_column < -1)
    return CH_FAIL(CH_ERR_INVALID, "label column %d is negative (use -1 for the last)", o->label_column);

  ch_status st = CH_OK;
  csv_table t = {0};
  uint8_t *is_val = NULL;
  char *tmp = NULL;
  int64_t nval = 0;
  h5_quiet q;
  h5_quiet_begin(&q);
  CH_CHECK_GOTO(read_table(in_path, o, &t), st, done);
  is_val = calloc((size_t)t.rows, 1);
  tmp = malloc(strlen(out_path) + sizeof ".partial");
  if (!is_val || !tmp) {
    st = CH_FAIL(CH_ERR_NOMEM, "csv convert");
    goto done;
  }
  CH_CHECK_GOTO(split_rows(&t, o, is_val, &nval), st, done);
  strcpy(tmp, out_path);
  strcat(tmp, ".partial");
  st = write_file(tmp, in_path, &t, is_val, nval);
  if (st == CH_OK) st = data_commit_file(tmp, out_path);
  if (st != CH_OK) {
    ch_error_trace(__FILE__, __LINE__);
    unlink(tmp);
    goto done;
  }
  if (stats) {
    stats->rows = t.rows;
    stats->train_rows = t.rows - nval;
    stats->val_rows = nval;
    stats->features = t.ncols - 1;
    stats->num_classes = t.max_label + 1;
  }
done:
  h5_quiet_end(&q);
  table_free(&t);
  free(is_val);
  free(tmp);
  return st;
}
