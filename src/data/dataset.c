/* Parallel reader of the dataset layout written by the CSV converter.
 * The file is opened once per group with the MPI-IO driver; each ch_dataset_read selects only
 * the requested rows (a union of row runs) and reads them with one transfer per dataset, so a
 * batch costs a few MPI-IO requests however the rows are spread. The transfer is independent:
 * ranks read disjoint random rows, so two-phase collective I/O only adds a round of messages
 * (measured 3.0 ms vs 0.44 ms for 128 rows per rank on 2 ranks). The call itself stays
 * collective so that a bad row on one rank fails the call on every rank. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/comm_mpi.h"
#include "cohort/data.h"
#include "cohort/log.h"
#include "data/data_internal.h"

struct ch_dataset {
  hid_t file, x, y, dxpl;
  MPI_Comm comm;        /* the group's communicator (borrowed) */
  int64_t rows, features;
  int classes;
  char **class_names;   /* `classes` names from /class_names, or NULL */
  char where[256];      /* "path:/split" for messages */
};

/* /class_names (string labels): `classes` strings, variable or fixed length. Absent: NULL. */
static ch_status read_class_names(ch_dataset *ds, const char *path) {
  if (H5Lexists(ds->file, "class_names", H5P_DEFAULT) <= 0) return CH_OK;
  ch_status st = CH_OK;
  hsize_t n = 0;
  hid_t d = H5Dopen2(ds->file, "class_names", H5P_DEFAULT);
  hid_t ft = d < 0 ? -1 : H5Dget_type(d), sp = d < 0 ? -1 : H5Dget_space(d);
  hid_t mt = H5Tcopy(H5T_C_S1);
  char **v = NULL, *fixed = NULL;
  size_t w = ft < 0 ? 0 : H5Tget_size(ft);
  int vlen = ft >= 0 && H5Tis_variable_str(ft) > 0;
  if (d < 0 || ft < 0 || sp < 0 || H5Tget_class(ft) != H5T_STRING ||
      H5Sget_simple_extent_ndims(sp) != 1 || H5Sget_simple_extent_dims(sp, &n, NULL) < 0 ||
      n != (hsize_t)ds->classes) {
    st = CH_FAIL(CH_ERR_FORMAT, "%s: /class_names must be %d strings, one per class", path, ds->classes);
    goto done;
  }
  H5Tset_size(mt, vlen ? H5T_VARIABLE : w + 1);
  H5Tset_cset(mt, H5T_CSET_UTF8);
  v = calloc(n + 1, sizeof *v);
  ds->class_names = calloc(n + 1, sizeof *ds->class_names);
  if (!vlen) fixed = calloc(n, w + 1);
  if (!v || !ds->class_names || (!vlen && !fixed)) {
    st = CH_FAIL(CH_ERR_NOMEM, "%s: class names", path);
    goto done;
  }
  if (H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, vlen ? (void *)v : (void *)fixed) < 0) {
    st = data_h5_fail(CH_ERR_FORMAT, path, "/class_names");
    goto done;
  }
  for (hsize_t i = 0; i < n && st == CH_OK; i++) {
    const char *name = vlen ? v[i] : fixed + i * (w + 1);
    if (!(ds->class_names[i] = strdup(name ? name : ""))) st = CH_FAIL(CH_ERR_NOMEM, "%s: class names", path);
  }
  if (vlen) H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, v);
done:
  free(v);
  free(fixed);
  H5Tclose(mt);
  if (sp >= 0) H5Sclose(sp);
  if (ft >= 0) H5Tclose(ft);
  if (d >= 0) H5Dclose(d);
  return st;
}

/* Opens /<split>/<name> and checks its element class and rank; dims receive its shape. */
static ch_status open_checked(ch_dataset *ds, const char *split, const char *name, H5T_class_t cls,
                              int rank, hsize_t *dims, hid_t *out) {
  char full[160];
  snprintf(full, sizeof full, "/%s/%s", split, name);
  return data_open_checked(ds->file, ds->where, full, cls, rank, dims, out);
}

/* Everything after the file is open: attributes, datasets, their agreement. */
static ch_status open_contents(void *reader, const char *path, const char *split) {
  ch_dataset *ds = reader;
  int64_t nf = 0, nc = 0;
  CH_CHECK(data_read_attr_i64(ds->file, path, "num_features", &nf));
  CH_CHECK(data_read_attr_i64(ds->file, path, "num_classes", &nc));
  if (nf < 1) return CH_FAIL(CH_ERR_FORMAT, "%s: num_features = %lld (must be >= 1)", path, (long long)nf);
  if (nc < 1 || nc > INT32_MAX)
    return CH_FAIL(CH_ERR_FORMAT, "%s: num_classes = %lld (must be in 1..2^31-1)", path, (long long)nc);
  hsize_t xd[2] = {0, 0}, yd[1] = {0};
  CH_CHECK(open_checked(ds, split, "x", H5T_FLOAT, 2, xd, &ds->x));
  CH_CHECK(open_checked(ds, split, "y", H5T_INTEGER, 1, yd, &ds->y));
  if (xd[1] != (hsize_t)nf)
    return CH_FAIL(CH_ERR_FORMAT, "%s: /%s/x has %llu columns but num_features = %lld", ds->where, split,
                   (unsigned long long)xd[1], (long long)nf);
  if (xd[0] != yd[0])
    return CH_FAIL(CH_ERR_FORMAT, "%s: /%s/x has %llu rows but /%s/y has %llu", ds->where, split,
                   (unsigned long long)xd[0], split, (unsigned long long)yd[0]);
  ds->rows = (int64_t)xd[0];
  ds->features = nf;
  ds->classes = (int)nc;
  CH_CHECK(read_class_names(ds, path));
  return data_independent_dxpl(ds->where, &ds->dxpl);
}

ch_status ch_dataset_open(const ch_group *g, const char *path, const char *split, ch_dataset **out) {
  *out = NULL;
  CH_CHECK(data_check_open("ch_dataset_open", g, path, split));
  ch_dataset *ds = calloc(1, sizeof *ds);
  if (!ds) return CH_FAIL(CH_ERR_NOMEM, "dataset handle");
  ds->file = ds->x = ds->y = ds->dxpl = -1;
  ds->comm = ch_group_mpi_comm(g);
  snprintf(ds->where, sizeof ds->where, "%s:/%s", path, split);
  ch_status st = data_open_split(g, path, split, &ds->file, open_contents, ds);
  if (st != CH_OK) {
    ch_error_trace(__FILE__, __LINE__);
    ch_dataset_close(ds);
    return st;
  }
  *out = ds;
  return CH_OK;
}

void ch_dataset_close(ch_dataset *ds) {
  if (!ds) return;
  hid_t objs[] = {ds->x, ds->y, ds->dxpl};
  data_close_collective(ds->file, objs, 3);
  for (int i = 0; ds->class_names && i < ds->classes; i++) free(ds->class_names[i]);
  free(ds->class_names);
  free(ds);
}

int64_t ch_dataset_rows(const ch_dataset *ds) { return ds->rows; }
int64_t ch_dataset_features(const ch_dataset *ds) { return ds->features; }
int ch_dataset_classes(const ch_dataset *ds) { return ds->classes; }
const char *const *ch_dataset_class_names(const ch_dataset *ds) {
  return (const char *const *)ds->class_names;
}

typedef struct row_pos {
  int64_t row, pos;
} row_pos;

static int cmp_row_pos(const void *pa, const void *pb) {
  const row_pos *a = pa, *b = pb;
  if (a->row != b->row) return a->row < b->row ? -1 : 1;
  return (a->pos > b->pos) - (a->pos < b->pos);
}

/* File selections of rows u[0..m) (sorted, distinct) of x and y, coalesced into runs. */
static ch_status select_rows(const ch_dataset *ds, const int64_t *u, int64_t m, hid_t *fx, hid_t *fy) {
  ch_status st = CH_OK;
  hsize_t *start = malloc(((size_t)m + 1) * sizeof *start), *len = malloc(((size_t)m + 1) * sizeof *len);
  hid_t lx = H5Dget_space(ds->x), ly = H5Dget_space(ds->y);
  int64_t nruns = 0;
  if (!start || !len) {
    st = CH_FAIL(CH_ERR_NOMEM, "%s: selection of %lld rows", ds->where, (long long)m);
    goto done;
  }
  for (int64_t a = 0; a < m;) {
    int64_t b = a + 1;
    while (b < m && u[b] == u[b - 1] + 1) b++;
    start[nruns] = (hsize_t)u[a];
    len[nruns++] = (hsize_t)(b - a);
    a = b;
  }
  if (lx < 0 || ly < 0 || (*fx = data_select_runs(lx, start, len, nruns, (hsize_t)ds->features)) < 0 ||
      (*fy = data_select_runs(ly, start, len, nruns, 1)) < 0)
    st = data_h5_fail(CH_ERR_IO, ds->where, "row selection");
done:
  if (lx >= 0) H5Sclose(lx);
  if (ly >= 0) H5Sclose(ly);
  free(start);
  free(len);
  return st;
}

/* Replaces a failed selection by an empty one, so that this rank can still take part in the
 * collective reads the other ranks are already in. */
static void select_nothing(hid_t ds_id, hid_t *file_space, hid_t mem_space) {
  if (*file_space < 0) *file_space = H5Dget_space(ds_id);
  H5Sselect_none(*file_space);
  H5Sselect_none(mem_space);
}

/* The collective part: reads the m selected rows into ux [m,D] and uy [m]. Ranks with m == 0
 * take part with empty selections. A failure before the reads (only when HDF5 runs out of
 * memory for dataspaces) still takes part in both with nothing selected, then reports. */
static ch_status read_selected(const ch_dataset *ds, const int64_t *u, int64_t m, float *ux, int32_t *uy) {
  ch_status st = CH_OK;
  float dummy_x = 0;
  int32_t dummy_y = 0;
  hid_t fx = -1, fy = -1;
  hsize_t mx[2] = {m ? (hsize_t)m : 1, (hsize_t)ds->features}, my[1] = {mx[0]};
  hid_t sx = H5Screate_simple(2, mx, NULL), sy = H5Screate_simple(1, my, NULL);
  if (sx < 0 || sy < 0) st = data_h5_fail(CH_ERR_IO, ds->where, "memory dataspace");
  if (st == CH_OK && m == 0 && (H5Sselect_none(sx) < 0 || H5Sselect_none(sy) < 0))
    st = data_h5_fail(CH_ERR_IO, ds->where, "selection");
  if (st == CH_OK) st = select_rows(ds, u, m, &fx, &fy);
  if (st != CH_OK) {
    ch_error_trace(__FILE__, __LINE__);
    select_nothing(ds->x, &fx, sx);
    select_nothing(ds->y, &fy, sy);
  }
  if (H5Dread(ds->x, H5T_NATIVE_FLOAT, sx, fx, ds->dxpl, m ? (void *)ux : &dummy_x) < 0 && st == CH_OK)
    st = data_h5_fail(CH_ERR_IO, ds->where, "reading x");
  if (H5Dread(ds->y, H5T_NATIVE_INT32, sy, fy, ds->dxpl, m ? (void *)uy : &dummy_y) < 0 && st == CH_OK)
    st = data_h5_fail(CH_ERR_IO, ds->where, "reading y");
  if (st == CH_OK && ch_log_enabled(CH_LOG_DEBUG)) {
    /* HDF5 silently falls back to independent I/O in some cases (e.g. type conversion). */
    H5D_mpio_actual_io_mode_t mode = H5D_MPIO_NO_COLLECTIVE;
    H5Pget_mpio_actual_io_mode(ds->dxpl, &mode);
    CH_DEBUG("%s: read %lld distinct rows, MPI-IO mode %s", ds->where, (long long)m,
             mode == H5D_MPIO_NO_COLLECTIVE ? "independent" : "collective");
  }
  if (fx >= 0) H5Sclose(fx);
  if (fy >= 0) H5Sclose(fy);
  if (sx >= 0) H5Sclose(sx);
  if (sy >= 0) H5Sclose(sy);
  return st;
}

/* Checks the arguments and prepares the sorted distinct rows. When `rows` is already strictly
 * increasing, nothing is allocated (*pairs stays NULL) and rows are read straight into x, y. */
static ch_status read_prepare(const ch_dataset *ds, const int64_t *rows, int64_t n, float *x, int32_t *y,
                              row_pos **pairs, int64_t **uniq, int64_t *m, float **ux, int32_t **uy) {
  if (n < 0 || (n > 0 && (!rows || !x || !y)))
    return CH_FAIL(CH_ERR_INVALID, "%s: bad read arguments (n = %lld)", ds->where, (long long)n);
  int sorted = 1;
  for (int64_t i = 0; i < n; i++) {
    if (rows[i] < 0 || rows[i] >= ds->rows)
      return CH_FAIL(CH_ERR_INVALID, "%s: row %lld is out of range [0, %lld)", ds->where,
                     (long long)rows[i], (long long)ds->rows);
    if (i && rows[i] <= rows[i - 1]) sorted = 0;
  }
  *m = n;
  if (sorted) return CH_OK;
  *pairs = malloc((size_t)n * sizeof **pairs);
  *uniq = malloc((size_t)n * sizeof **uniq);
  if (!*pairs || !*uniq) return CH_FAIL(CH_ERR_NOMEM, "%s: read of %lld rows", ds->where, (long long)n);
  for (int64_t i = 0; i < n; i++) (*pairs)[i] = (row_pos){rows[i], i};
  qsort(*pairs, (size_t)n, sizeof **pairs, cmp_row_pos);
  *m = 0;
  for (int64_t i = 0; i < n; i++)
    if (i == 0 || (*pairs)[i].row != (*pairs)[i - 1].row) (*uniq)[(*m)++] = (*pairs)[i].row;
  *ux = malloc((size_t)*m * (size_t)ds->features * sizeof **ux);
  *uy = malloc((size_t)*m * sizeof **uy);
  if (!*ux || !*uy) return CH_FAIL(CH_ERR_NOMEM, "%s: read of %lld rows", ds->where, (long long)*m);
  return CH_OK;
}

typedef struct read_args {
  const ch_dataset *ds;
  const int64_t *rows;
  int64_t m;
  float *x;
  int32_t *y;
} read_args;

static ch_status read_selected_cb(void *ctx) {
  const read_args *a = ctx;
  return read_selected(a->ds, a->rows, a->m, a->x, a->y);
}

ch_status ch_dataset_read(ch_dataset *ds, const int64_t *rows, int64_t n, float *x, int32_t *y) {
  row_pos *pairs = NULL;
  int64_t *uniq = NULL, m = 0;
  float *ux = NULL;
  int32_t *uy = NULL;
  ch_status st = read_prepare(ds, rows, n, x, y, &pairs, &uniq, &m, &ux, &uy);
  read_args a = {ds, pairs ? uniq : rows, m, pairs ? ux : x, pairs ? uy : y};
  st = data_read_agreed(ds->comm, st, ds->where, "ch_dataset_read", read_selected_cb, &a);
  if (st != CH_OK) goto done;
  if (pairs) { /* scatter the distinct rows back to the requested order, repeats included */
    size_t d = (size_t)ds->features;
    for (int64_t i = 0, u = -1; i < n; i++) {
      if (i == 0 || pairs[i].row != pairs[i - 1].row) u++;
      memcpy(x + (size_t)pairs[i].pos * d, ux + (size_t)u * d, d * sizeof *x);
      y[pairs[i].pos] = uy[u];
    }
  }
  for (int64_t i = 0; i < n; i++)
    if (y[i] < 0 || y[i] >= ds->classes) {
      st = CH_FAIL(CH_ERR_FORMAT, "%s: row %lld has label %d outside [0, %d)", ds->where,
                   (long long)rows[i], (int)y[i], ds->classes);
      break;
    }
done:
  free(pairs);
  free(uniq);
  free(ux);
  free(uy);
  return st;
}
