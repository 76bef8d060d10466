/* Predictions of a classifier over a dataset split, written by every rank with parallel HDF5:
 * /logits float32 [N, C] and /label int32 [N] (with class names also /label_name [N] and
 * /class_names [C], fixed-length strings: parallel HDF5 does not write variable-length data),
 * each rank its own contiguous rows, collective transfers; written to OUT.partial and renamed
 * when complete. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/comm_mpi.h"
#include "cohort/data.h"
#include "cohort/watchdog.h"
#include "data/data_internal.h"
#include "runtime/h5util.h"

/* One 1-D or 2-D dataset, this rank's rows [first, first + n). */
static ch_status write_rows(hid_t file, const char *name, hid_t ftype, hid_t mtype, int rank,
                            int64_t N, int64_t C, int64_t first, int64_t n, const void *data,
                            const char *path) {
  hsize_t dims[2] = {(hsize_t)N, (hsize_t)C}, start[2] = {(hsize_t)first, 0},
          count[2] = {(hsize_t)n, (hsize_t)C};
  hid_t fs = H5Screate_simple(rank, dims, NULL), ms = H5Screate_simple(rank, count, NULL);
  hid_t d = fs < 0 ? -1 : H5Dcreate2(file, name, ftype, fs, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  hid_t x = H5Pcreate(H5P_DATASET_XFER);
  ch_status st = CH_OK;
  if (d < 0 || ms < 0 || x < 0 || H5Pset_dxpl_mpio(x, H5FD_MPIO_COLLECTIVE) < 0)
    st = data_h5_fail(CH_ERR_IO, path, name);
  else if (n > 0 ? H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) < 0
                 : (H5Sselect_none(fs) < 0 || H5Sselect_none(ms) < 0))
    st = data_h5_fail(CH_ERR_IO, path, name);
  else if (H5Dwrite(d, mtype, ms, fs, x, data) < 0)
    st = data_h5_fail(CH_ERR_IO, path, name);
  if (x >= 0) H5Pclose(x);
  if (d >= 0) H5Dclose(d);
  if (ms >= 0) H5Sclose(ms);
  if (fs >= 0) H5Sclose(fs);
  return st;
}

/* A fixed-length UTF-8 string type as wide as the longest name (+1: NUL-terminated). */
static hid_t names_type(const char *const *names, int64_t C) {
  size_t w = 1;
  for (int64_t c = 0; c < C; c++) w = strlen(names[c]) + 1 > w ? strlen(names[c]) + 1 : w;
  hid_t t = H5Tcopy(H5T_C_S1);
  if (t >= 0 && (H5Tset_size(t, w) < 0 || H5Tset_strpad(t, H5T_STR_NULLTERM) < 0 ||
                 H5Tset_cset(t, H5T_CSET_UTF8) < 0)) {
    H5Tclose(t);
    return -1;
  }
  return t;
}

/* /label_name (this rank's rows) and /class_names (written by rank 0; the others select
 * nothing) in type t. */
static ch_status write_names(hid_t file, const ch_group *g, hid_t t, int64_t N, int64_t C, int64_t first,
                             int64_t n, const int32_t *labels, const char *const *names,
                             const char *path) {
  size_t w = H5Tget_size(t);
  char *buf = calloc((size_t)(n > C ? n : C) + 1, w);
  if (!buf) return CH_FAIL(CH_ERR_NOMEM, "%s: label names", path);
  for (int64_t i = 0; i < n; i++) strcpy(buf + (size_t)i * w, names[labels[i]]);
  ch_status st = write_rows(file, "label_name", t, t, 1, N, 1, first, n, buf, path);
  memset(buf, 0, (size_t)C * w);
  for (int64_t c = 0; c < C; c++) strcpy(buf + (size_t)c * w, names[c]);
  if (st == CH_OK)
    st = write_rows(file, "class_names", t, t, 1, C, 1, 0, g->rank == 0 ? C : 0, buf, path);
  free(buf);
  return st;
}

ch_status ch_data_write_predictions(const ch_group *g, const char *out, int64_t N, int64_t C,
                                    int64_t first, int64_t n, const float *logits,
                                    const int32_t *labels, const char *const *class_names,
                                    const char *source) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.partial", out);
  h5_quiet q;
  h5_quiet_begin(&q);
  ch_watchdog_enter("hdf5 write");
  ch_status st = CH_OK;
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS), file = -1;
  if (fapl < 0 || H5Pset_fapl_mpio(fapl, ch_group_mpi_comm(g), MPI_INFO_NULL) < 0)
    st = data_h5_fail(CH_ERR_IO, tmp, "file access property list");
  if (st == CH_OK && (file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl)) < 0)
    st = data_h5_fail(CH_ERR_IO, tmp, "cannot create");
  if (st == CH_OK)
    st = write_rows(file, "logits", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, N, C, first, n, logits, tmp);
  if (st == CH_OK)
    st = write_rows(file, "label", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, N, 1, first, n, labels, tmp);
  if (st == CH_OK && class_names) {
    hid_t t = names_type(class_names, C);
    st = t < 0 ? data_h5_fail(CH_ERR_IO, tmp, "string type")
               : write_names(file, g, t, N, C, first, n, labels, class_names, tmp);
    if (t >= 0) H5Tclose(t);
  }
  /* Attribute writes are collective in parallel HDF5: every rank writes the same value. */
  if (st == CH_OK) st = data_write_attr_str(file, "source", source, tmp);
  if (file >= 0 && H5Fclose(file) < 0 && st == CH_OK) st = data_h5_fail(CH_ERR_IO, tmp, "close");
  if (fapl >= 0) H5Pclose(fapl);
  ch_watchdog_leave();
  h5_quiet_end(&q);
  /* Agree, then rank 0 publishes the file whole. */
  int bad = st != CH_OK, any = 0;
  if (MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_MAX, ch_group_mpi_comm(g)) != MPI_SUCCESS)
    return CH_FAIL(CH_ERR_MPI, "MPI_Allreduce failed");
  if (any) {
    if (g->rank == 0) remove(tmp);
    return st != CH_OK ? st : CH_FAIL(CH_ERR_IO, "%s: another rank failed to write", out);
  }
  if (g->rank == 0) st = data_commit_file(tmp, out);
  bad = st != CH_OK;
  MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_MAX, ch_group_mpi_comm(g));
  return any ? (st != CH_OK ? st : CH_FAIL(CH_ERR_IO, "cannot publish %s", out)) : CH_OK;
}
