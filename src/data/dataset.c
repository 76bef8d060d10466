/* Parallel reader of the dataset layout written by the CSV converter.
 * The file is opened once per group with the MPI-IO driver; each ch_dataset_read selects only
 * the requested rows (a union of row runs) and reads them with one collective transfer per
 * dataset, so a batch costs a few MPI-IO requests however the rows are spread. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cohort/data.h"
#include "cohort/log.h"
#include "data/h5util.h"

struct ch_dataset {
  hid_t file, x, y, dxpl;
  MPI_Comm comm;        /* the group's communicator (borrowed) */
  int64_t rows, features;
  int classes;
  char where[256];      /* "path:/split" for messages */
};

static ch_status h5_fail(ch_status s, const char *where, const char *what) {
  char msg[256];
  return CH_FAIL(s, "%s: %s: %s", where, what, ch_h5_error(msg));
}

/* Reads an integer scalar attribute of the root group. */
static ch_status read_attr_i64(hid_t file, const char *path, const char *name, int64_t *v) {
  ch_status st = CH_OK;
  if (H5Aexists(file, name) <= 0)
    return CH_FAIL(CH_ERR_FORMAT, "%s: missing root attribute '%s'", path, name);
  hid_t a = H5Aopen(file, name, H5P_DEFAULT);
  if (a < 0) return h5_fail(CH_ERR_IO, path, name);
  hid_t type = H5Aget_type(a), space = H5Aget_space(a);
  if (H5Tget_class(type) != H5T_INTEGER || H5Sget_simple_extent_npoints(space) != 1)
    st = CH_FAIL(CH_ERR_FORMAT, "%s: attribute '%s' is not an integer scalar", path, name);
  else if (H5Aread(a, H5T_NATIVE_INT64, v) < 0)
    st = h5_fail(CH_ERR_IO, path, name);
  H5Sclose(space);
  H5Tclose(type);
  H5Aclose(a);
  return st;
}

/* Opens /<split>/<name> and checks its element class and rank; dims receive its shape. */
static ch_status open_checked(ch_dataset *ds, const char *split, const char *name, H5T_class_t cls,
                              int rank, hsize_t *dims, hid_t *out) {
  char full[160];
  snprintf(full, sizeof full, "/%s/%s", split, name);
  if (H5Lexists(ds->file, full, H5P_DEFAULT) <= 0)
    return CH_FAIL(CH_ERR_FORMAT, "%s: no dataset %s", ds->where, full);
  *out = H5Dopen2(ds->file, full, H5P_DEFAULT);
  if (*out < 0) return h5_fail(CH_ERR_FORMAT, ds->where, full);
  hid_t type = H5Dget_type(*out), space = H5Dget_space(*out);
  ch_status st = CH_OK;
  if (H5Tget_class(type) != cls)
    st = CH_FAIL(CH_ERR_FORMAT, "%s: %s must hold %s", ds->where, full, cls == H5T_FLOAT ? "floats" : "integers");
  else if (H5Sget_simple_extent_ndims(space) != rank)
    st = CH_FAIL(CH_ERR_FORMAT, "%s: %s must have %d dimension%s", ds->where, full, rank, rank > 1 ? "s" : "");
  else
    H5Sget_simple_extent_dims(space, dims, NULL);
  H5Sclose(space);
  H5Tclose(type);
  return st;
}

/* Everything after the file is open: attributes, datasets, their agreement. */
static ch_status open_contents(ch_dataset *ds, const char *path, const char *split) {
  int64_t nf = 0, nc = 0;
  CH_CHECK(read_attr_i64(ds->file, path, "num_features", &nf));
  CH_CHECK(read_attr_i64(ds->file, path, "num_classes", &nc));
  if (nf < 1) return CH_FAIL(CH_ERR_FORMAT, "%s: num_features = %lld (must be >= 1)", path, (long long)nf);
  if (nc < 1 || nc > INT32_MAX)
    return CH_FAIL(CH_ERR_FORMAT, "%s: num_classes = %lld (must be in 1..2^31-1)", path, (long long)nc);
  if (H5Lexists(ds->file, split, H5P_DEFAULT) <= 0)
    return CH_FAIL(CH_ERR_FORMAT, "%s: no split '%s' (group /%s)", path, split, split);
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
  ds->dxpl = H5Pcreate(H5P_DATASET_XFER);
  if (ds->dxpl < 0 || H5Pset_dxpl_mpio(ds->dxpl, H5FD_MPIO_COLLECTIVE) < 0)
    return h5_fail(CH_ERR_IO, ds->where, "transfer property list");
  return CH_OK;
}

/* Collective open of the file: a missing file is reported alike on every rank, so that no rank
 * enters H5Fopen's collective alone. */
static ch_status open_file(ch_dataset *ds, const ch_group *g, const char *path) {
  int ok = access(path, R_OK) == 0, err = errno, all = 0;
  if (MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, g->comm) != MPI_SUCCESS)
    return CH_FAIL(CH_ERR_MPI, "%s: MPI_Allreduce failed", path);
  if (!all)
    return CH_FAIL(CH_ERR_IO, "cannot open %s: %s", path, ok ? "not readable on another rank" : strerror(err));
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (fapl < 0) return h5_fail(CH_ERR_IO, path, "file access property list");
  /* Collective metadata reads: rank 0 reads the object headers and broadcasts them. */
  if (H5Pset_fapl_mpio(fapl, g->comm, MPI_INFO_NULL) < 0 || H5Pset_all_coll_metadata_ops(fapl, 1) < 0) {
    H5Pclose(fapl);
    return h5_fail(CH_ERR_IO, path, "H5Pset_fapl_mpio");
  }
  ds->file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
  H5Pclose(fapl);
  if (ds->file < 0) {
    char msg[256];
    ch_h5_error(msg);
    if (H5Fis_hdf5(path) == 0) return CH_FAIL(CH_ERR_FORMAT, "%s is not an HDF5 file", path);
    return CH_FAIL(CH_ERR_IO, "cannot open %s: %s", path, msg);
  }
  return CH_OK;
}

ch_status ch_dataset_open(const ch_group *g, const char *path, const char *split, ch_dataset **out) {
  *out = NULL;
  if (!g || g->comm == MPI_COMM_NULL || !path || !split)
    return CH_FAIL(CH_ERR_INVALID, "ch_dataset_open: null argument");
  if (!split[0] || strchr(split, '/') || strlen(split) > 64)
    return CH_FAIL(CH_ERR_INVALID, "bad split name '%s' (expected e.g. train or val)", split);
  ch_dataset *ds = calloc(1, sizeof *ds);
  if (!ds) return CH_FAIL(CH_ERR_NOMEM, "dataset handle");
  ds->file = ds->x = ds->y = ds->dxpl = -1;
  ds->comm = g->comm;
  snprintf(ds->where, sizeof ds->where, "%s:/%s", path, split);
  ch_h5_quiet q;
  ch_h5_quiet_begin(&q);
  ch_status st = open_file(ds, g, path);
  if (st == CH_OK) st = open_contents(ds, path, split);
  ch_h5_quiet_end(&q);
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
  ch_h5_quiet q;
  ch_h5_quiet_begin(&q);
  if (ds->x >= 0) H5Dclose(ds->x);
  if (ds->y >= 0) H5Dclose(ds->y);
  if (ds->dxpl >= 0) H5Pclose(ds->dxpl);
  if (ds->file >= 0) H5Fclose(ds->file);
  ch_h5_quiet_end(&q);
  free(ds);
}

int64_t ch_dataset_rows(const ch_dataset *ds) { return ds->rows; }
int64_t ch_dataset_features(const ch_dataset *ds) { return ds->features; }
int ch_dataset_classes(const ch_dataset *ds) { return ds->classes; }

typedef struct row_pos {
  int64_t row, pos;
} row_pos;

static int cmp_row_pos(const void *pa, const void *pb) {
  const row_pos *a = pa, *b = pb;
  if (a->row != b->row) return a->row < b->row ? -1 : 1;
  return (a->pos > b->pos) - (a->pos < b->pos);
}

/* Selects rows u[0..m) (sorted, distinct) of x and y in the file spaces, one hyperslab block
 * per run of consecutive rows. */
static ch_status select_rows(const ch_dataset *ds, const int64_t *u, int64_t m, hid_t fx, hid_t fy) {
  if (H5Sselect_none(fx) < 0 || H5Sselect_none(fy) < 0) return h5_fail(CH_ERR_IO, ds->where, "selection");
  for (int64_t a = 0; a < m;) {
    int64_t b = a + 1;
    while (b < m && u[b] == u[b - 1] + 1) b++;
    hsize_t start[2] = {(hsize_t)u[a], 0}, count[2] = {(hsize_t)(b - a), (hsize_t)ds->features};
    H5S_seloper_t op = a == 0 ? H5S_SELECT_SET : H5S_SELECT_OR;
    if (H5Sselect_hyperslab(fx, op, start, NULL, count, NULL) < 0 ||
        H5Sselect_hyperslab(fy, op, start, NULL, count, NULL) < 0)
      return h5_fail(CH_ERR_IO, ds->where, "row selection");
    a = b;
  }
  return CH_OK;
}

/* The collective part: reads the m selected rows into ux [m,D] and uy [m]. Ranks with m == 0
 * take part with empty selections. */
static ch_status read_selected(const ch_dataset *ds, const int64_t *u, int64_t m, float *ux, int32_t *uy) {
  ch_status st = CH_OK;
  float dummy_x = 0;
  int32_t dummy_y = 0;
  hid_t fx = H5Dget_space(ds->x), fy = H5Dget_space(ds->y);
  hsize_t mx[2] = {m ? (hsize_t)m : 1, (hsize_t)ds->features}, my[1] = {mx[0]};
  hid_t sx = H5Screate_simple(2, mx, NULL), sy = H5Screate_simple(1, my, NULL);
  if (fx < 0 || fy < 0 || sx < 0 || sy < 0) {
    st = h5_fail(CH_ERR_IO, ds->where, "dataspace");
    goto done;
  }
  if (m == 0 && (H5Sselect_none(sx) < 0 || H5Sselect_none(sy) < 0)) {
    st = h5_fail(CH_ERR_IO, ds->where, "selection");
    goto done;
  }
  /* Every rank reaches both H5Dread calls even if its own selection failed: the others are
   * already inside the collective. A failed selection reads nothing and reports afterwards. */
  ch_status sel = select_rows(ds, u, m, fx, fy);
  if (sel != CH_OK) {
    H5Sselect_none(fx);
    H5Sselect_none(fy);
    H5Sselect_none(sx);
    H5Sselect_none(sy);
  }
  if (H5Dread(ds->x, H5T_NATIVE_FLOAT, sx, fx, ds->dxpl, m ? (void *)ux : &dummy_x) < 0)
    st = h5_fail(CH_ERR_IO, ds->where, "reading x");
  if (H5Dread(ds->y, H5T_NATIVE_INT32, sy, fy, ds->dxpl, m ? (void *)uy : &dummy_y) < 0 && st == CH_OK)
    st = h5_fail(CH_ERR_IO, ds->where, "reading y");
  if (st == CH_OK) st = sel;
  if (st == CH_OK && ch_log_enabled(CH_LOG_DEBUG)) {
    /* HDF5 silently falls back to independent I/O in some cases (e.g. type conversion). */
    H5D_mpio_actual_io_mode_t mode = H5D_MPIO_NO_COLLECTIVE;
    H5Pget_mpio_actual_io_mode(ds->dxpl, &mode);
    CH_DEBUG("%s: read %lld distinct rows, MPI-IO mode %s", ds->where, (long long)m,
             mode == H5D_MPIO_NO_COLLECTIVE ? "independent" : "collective");
  }
done:
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

ch_status ch_dataset_read(ch_dataset *ds, const int64_t *rows, int64_t n, float *x, int32_t *y) {
  row_pos *pairs = NULL;
  int64_t *uniq = NULL, m = 0;
  float *ux = NULL;
  int32_t *uy = NULL;
  ch_status st = read_prepare(ds, rows, n, x, y, &pairs, &uniq, &m, &ux, &uy);
  /* Agree before the collective transfer, so that a rank with bad arguments does not leave the
   * others waiting in H5Dread. */
  int mine = (int)st, worst = 0;
  if (MPI_Allreduce(&mine, &worst, 1, MPI_INT, MPI_MAX, ds->comm) != MPI_SUCCESS) {
    st = CH_FAIL(CH_ERR_MPI, "%s: MPI_Allreduce failed", ds->where);
    goto done;
  }
  if (st != CH_OK) {
    ch_error_trace(__FILE__, __LINE__);
    goto done;
  }
  if (worst != CH_OK) {
    st = CH_FAIL((ch_status)worst, "%s: ch_dataset_read failed on another rank", ds->where);
    goto done;
  }
  ch_h5_quiet q;
  ch_h5_quiet_begin(&q);
  st = read_selected(ds, pairs ? uniq : rows, m, pairs ? ux : x, pairs ? uy : y);
  ch_h5_quiet_end(&q);
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
