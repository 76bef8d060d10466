/* The row converters' output (table.h): the stratified split of a finished table and the HDF5
 * file. The whole table is in memory (float32 features, int32 labels); datasets are contiguous:
 * a row maps to one file extent, so the parallel reader's row hyperslabs turn into plain MPI-IO
 * offsets. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cohort/rng.h"
#include "data/data_internal.h"
#include "data/table.h"
#include "runtime/h5util.h"

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
static ch_status split_rows(const table *t, uint8_t *is_val, int64_t *nval) {
  *nval = 0;
  if (t->o.val_fraction <= 0) return CH_OK;
  split_key *k = malloc((size_t)t->rows * sizeof *k);
  if (!k) return CH_FAIL(CH_ERR_NOMEM, "split of %lld rows", (long long)t->rows);
  const uint64_t stream = 0x73706c6974ULL; /* "split" */
  for (int64_t r = 0; r < t->rows; r++)
    k[r] = (split_key){t->y[r], ch_rng_u64(t->o.seed, stream, (uint64_t)r), r};
  qsort(k, (size_t)t->rows, sizeof *k, cmp_split_key);
  for (int64_t a = 0; a < t->rows;) {
    int64_t b = a;
    while (b < t->rows && k[b].label == k[a].label) b++;
    int64_t nc = b - a, v = (int64_t)floor(t->o.val_fraction * (double)nc + 0.5);
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
static ch_status write_split(hid_t file, const char *name, const table *t, const uint8_t *is_val,
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

/* /class_names: the names of class ids 0..C-1, variable-length UTF-8 strings (h5py: bytes
 * objects, or str with .asstr()). */
static ch_status write_names(hid_t file, const table *t, const char *path) {
  hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, H5T_VARIABLE);
  H5Tset_cset(type, H5T_CSET_UTF8);
  hsize_t n = (hsize_t)t->num_classes;
  ch_status st = data_write_dataset(file, "class_names", type, type, 1, &n, t->class_names, path);
  H5Tclose(type);
  return st;
}

static ch_status write_file(const char *tmp, const char *in_path, const table *t,
                            const uint8_t *is_val, int64_t nval) {
  ch_status st = CH_OK;
  hid_t file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (file < 0) return data_h5_fail(CH_ERR_IO, tmp, "create failed");
  const char *base = strrchr(in_path, '/');
  CH_CHECK_GOTO(write_split(file, "train", t, is_val, 0, t->rows - nval, tmp), st, done);
  CH_CHECK_GOTO(write_split(file, "val", t, is_val, 1, nval, tmp), st, done);
  if (t->class_names) CH_CHECK_GOTO(write_names(file, t, tmp), st, done);
  CH_CHECK_GOTO(data_write_attr_i64(file, "num_features", t->ncols - 1, tmp), st, done);
  CH_CHECK_GOTO(data_write_attr_i64(file, "num_classes", t->num_classes, tmp), st, done);
  CH_CHECK_GOTO(data_write_attr_str(file, "source", base ? base + 1 : in_path, tmp), st, done);
done:
  if (H5Fclose(file) < 0 && st == CH_OK) st = data_h5_fail(CH_ERR_IO, tmp, "close failed");
  return st;
}

ch_status table_write(const table *t, const char *in_path, const char *out_path, ch_csv_stats *stats) {
  ch_status st = CH_OK;
  int64_t nval = 0;
  uint8_t *is_val = calloc((size_t)t->rows, 1);
  char *tmp = malloc(strlen(out_path) + sizeof ".partial");
  if (!is_val || !tmp) {
    st = CH_FAIL(CH_ERR_NOMEM, "%s", out_path);
    goto done;
  }
  CH_CHECK_GOTO(split_rows(t, is_val, &nval), st, done);
  strcpy(tmp, out_path);
  strcat(tmp, ".partial");
  st = write_file(tmp, in_path, t, is_val, nval);
  if (st == CH_OK) st = data_commit_file(tmp, out_path);
  if (st != CH_OK) {
    ch_error_trace(__FILE__, __LINE__);
    unlink(tmp);
    goto done;
  }
  if (stats) {
    stats->rows = t->rows;
    stats->train_rows = t->rows - nval;
    stats->val_rows = nval;
    stats->features = t->ncols - 1;
    stats->num_classes = t->num_classes;
    stats->filled = t->filled;
    stats->label_column = t->label_col;
    if (t->names) snprintf(stats->label_name, sizeof stats->label_name, "%s", t->names[t->label_col]);
    stats->named_classes = t->class_names != NULL;
  }
done:
  free(is_val);
  free(tmp);
  return st;
}

ch_status table_convert(const char *in_path, const char *out_path, const ch_csv_opts *opts,
                        ch_csv_stats *stats, ch_status (*parse)(const char *path, table *t)) {
  const ch_csv_opts defaults = {.label_column = -1, .val_fraction = 0.2};
  const ch_csv_opts *o = opts ? opts : &defaults;
  if (stats) memset(stats, 0, sizeof *stats);
  if (!in_path || !out_path) return CH_FAIL(CH_ERR_INVALID, "table convert: null path");
  if (!(o->val_fraction >= 0 && o->val_fraction < 1))
    return CH_FAIL(CH_ERR_INVALID, "val fraction %g is not in [0, 1)", o->val_fraction);
  if (o->fill && !isfinite(o->fill_value))
    return CH_FAIL(CH_ERR_INVALID, "fill value %g is not a finite number", o->fill_value);
  if (o->header < CH_HEADER_AUTO || o->header > CH_HEADER_NO)
    return CH_FAIL(CH_ERR_INVALID, "header mode %d", (int)o->header);
  table t;
  table_init(&t, in_path, o);
  h5_quiet q;
  h5_quiet_begin(&q);
  ch_status st = parse(in_path, &t);
  if (st == CH_OK) st = table_finish(&t);
  if (stats) {
    snprintf(stats->header_note, sizeof stats->header_note, "%s", t.header_note);
    snprintf(stats->warning, sizeof stats->warning, "%s", t.warning);
    stats->header = t.has_header;
  }
  if (st == CH_OK) st = table_write(&t, in_path, out_path, stats);
  else ch_error_trace(__FILE__, __LINE__);
  h5_quiet_end(&q);
  table_free(&t);
  return st;
}
