/* HDF5 helpers shared by the data layer (see data_internal.h): serial writing with atomic
 * commit for the converters, collective open and run selections for the parallel readers. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cohort/comm_mpi.h"
#include "cohort/log.h"
#include "data/data_internal.h"
#include "runtime/h5util.h"

ch_status data_h5_fail(ch_status s, const char *where, const char *what) {
  char msg[256];
  return CH_FAIL(s, "%s: %s: %s", where, what, h5_error(msg));
}

/* ---- serial writing ---- */

ch_status data_write_dataset(hid_t grp, const char *name, hid_t ftype, hid_t mtype, int rank,
                             const hsize_t *dims, const void *data, const char *path) {
  ch_status st = CH_OK;
  hid_t space = H5Screate_simple(rank, dims, NULL);
  if (space < 0) return data_h5_fail(CH_ERR_IO, path, "H5Screate_simple failed");
  hid_t ds = H5Dcreate2(grp, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (ds < 0) st = data_h5_fail(CH_ERR_IO, path, name);
  else if (dims[0] > 0 && H5Dwrite(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
    st = data_h5_fail(CH_ERR_IO, path, name);
  if (ds >= 0) H5Dclose(ds);
  H5Sclose(space);
  return st;
}

ch_status data_write_attr_i64(hid_t obj, const char *name, int64_t v, const char *path) {
  ch_status st = CH_OK;
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(obj, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
  if (a < 0 || H5Awrite(a, H5T_NATIVE_INT64, &v) < 0) st = data_h5_fail(CH_ERR_IO, path, name);
  if (a >= 0) H5Aclose(a);
  H5Sclose(space);
  return st;
}

ch_status data_write_attr_str(hid_t obj, const char *name, const char *v, const char *path) {
  ch_status st = CH_OK;
  hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, strlen(v) + 1);
  H5Tset_strpad(type, H5T_STR_NULLTERM);
  H5Tset_cset(type, H5T_CSET_UTF8);
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  if (a < 0 || H5Awrite(a, type, v) < 0) st = data_h5_fail(CH_ERR_IO, path, name);
  if (a >= 0) H5Aclose(a);
  H5Sclose(space);
  H5Tclose(type);
  return st;
}

/* fsync of a file or directory by name. */
static ch_status sync_path(const char *path, int dir) {
  int fd = open(path, O_RDONLY | (dir ? O_DIRECTORY : 0));
  if (fd < 0) return CH_FAIL(CH_ERR_IO, "cannot open %s: %s", path, strerror(errno));
  int rc = fsync(fd);
  int err = errno;
  close(fd);
  if (rc != 0 && !(dir && (err == EINVAL || err == EROFS))) /* some file systems refuse dir fsync */
    return CH_FAIL(CH_ERR_IO, "fsync %s: %s", path, strerror(err));
  return CH_OK;
}

ch_status data_commit_file(const char *tmp, const char *out) {
  CH_CHECK(sync_path(tmp, 0));
  if (rename(tmp, out) != 0) return CH_FAIL(CH_ERR_IO, "rename %s -> %s: %s", tmp, out, strerror(errno));
  const char *slash = strrchr(out, '/');
  char dir[4096];
  if (!slash) snprintf(dir, sizeof dir, ".");
  else snprintf(dir, sizeof dir, "%.*s", (int)(slash == out ? 1 : slash - out), out);
  CH_CHECK(sync_path(dir, 1));
  return CH_OK;
}

/* ---- parallel reading ---- */

/* Open MPI 4.1.0-4.1.4's ompio can return wrong bytes from noncontiguous collective reads while
 * its read data sieving is on (open-mpi/ompi#10546, fixed in 4.1.5; seen here as a wrong row
 * on 4 ranks). The parameter is read-only once MPI is up, so it has to be off before MPI_Init
 * (environment OMPI_MCA_fbtl_posix_read_datasieving=0, or ROMIO with OMPI_MCA_io=romio321);
 * this warns once, on rank 0, when neither is set. */
static void warn_ompio_sieving(int rank) {
#if defined(OMPI_MAJOR_VERSION) && OMPI_MAJOR_VERSION == 4 && OMPI_MINOR_VERSION == 1 && OMPI_RELEASE_VERSION < 5
  static int warned;
  const char *sieve = getenv("OMPI_MCA_fbtl_posix_read_datasieving"), *io = getenv("OMPI_MCA_io");
  int off = sieve && (!strcmp(sieve, "0") || !strcmp(sieve, "false"));
  int romio = io && strstr(io, "romio") && !strchr(io, '^');
  if (warned || rank != 0 || off || romio) return;
  warned = 1;
  CH_WARN("Open MPI %d.%d.%d may read wrong data through parallel HDF5 (open-mpi/ompi#10546); set "
          "OMPI_MCA_fbtl_posix_read_datasieving=0 before starting the job",
          OMPI_MAJOR_VERSION, OMPI_MINOR_VERSION, OMPI_RELEASE_VERSION);
#else
  (void)rank;
#endif
}

ch_status data_open_parallel(const ch_group *g, const char *path, hid_t *file) {
  *file = -1;
  int ok = access(path, R_OK) == 0, err = errno, all = 0;
  if (MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, ch_group_mpi_comm(g)) != MPI_SUCCESS)
    return CH_FAIL(CH_ERR_MPI, "%s: MPI_Allreduce failed", path);
  if (!all)
    return CH_FAIL(CH_ERR_IO, "cannot open %s: %s", path, ok ? "not readable on another rank" : strerror(err));
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (fapl < 0) return data_h5_fail(CH_ERR_IO, path, "file access property list");
  /* Collective metadata reads: rank 0 reads the object headers and broadcasts them. */
  if (H5Pset_fapl_mpio(fapl, ch_group_mpi_comm(g), MPI_INFO_NULL) < 0 || H5Pset_all_coll_metadata_ops(fapl, 1) < 0) {
    H5Pclose(fapl);
    return data_h5_fail(CH_ERR_IO, path, "H5Pset_fapl_mpio");
  }
  warn_ompio_sieving(g->rank);
  *file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
  H5Pclose(fapl);
  if (*file < 0) {
    char msg[256];
    h5_error(msg);
    if (H5Fis_hdf5(path) == 0) return CH_FAIL(CH_ERR_FORMAT, "%s is not an HDF5 file", path);
    return CH_FAIL(CH_ERR_IO, "cannot open %s: %s", path, msg);
  }
  return CH_OK;
}

ch_status data_read_attr_i64(hid_t file, const char *path, const char *name, int64_t *v) {
  ch_status st = CH_OK;
  if (H5Aexists(file, name) <= 0)
    return CH_FAIL(CH_ERR_FORMAT, "%s: missing root attribute '%s'", path, name);
  hid_t a = H5Aopen(file, name, H5P_DEFAULT);
  if (a < 0) return data_h5_fail(CH_ERR_IO, path, name);
  hid_t type = H5Aget_type(a), space = H5Aget_space(a);
  if (H5Tget_class(type) != H5T_INTEGER || H5Sget_simple_extent_npoints(space) != 1)
    st = CH_FAIL(CH_ERR_FORMAT, "%s: attribute '%s' is not an integer scalar", path, name);
  else if (H5Aread(a, H5T_NATIVE_INT64, v) < 0)
    st = data_h5_fail(CH_ERR_IO, path, name);
  H5Sclose(space);
  H5Tclose(type);
  H5Aclose(a);
  return st;
}

ch_status data_open_checked(hid_t file, const char *where, const char *full, H5T_class_t cls, int rank,
                            hsize_t *dims, hid_t *out) {
  *out = -1;
  if (H5Lexists(file, full, H5P_DEFAULT) <= 0) return CH_FAIL(CH_ERR_FORMAT, "%s: no dataset %s", where, full);
  *out = H5Dopen2(file, full, H5P_DEFAULT);
  if (*out < 0) return data_h5_fail(CH_ERR_FORMAT, where, full);
  hid_t type = H5Dget_type(*out), space = H5Dget_space(*out);
  ch_status st = CH_OK;
  if (H5Tget_class(type) != cls)
    st = CH_FAIL(CH_ERR_FORMAT, "%s: %s must hold %s", where, full, cls == H5T_FLOAT ? "floats" : "integers");
  else if (H5Sget_simple_extent_ndims(space) != rank)
    st = CH_FAIL(CH_ERR_FORMAT, "%s: %s must have %d dimension%s", where, full, rank, rank > 1 ? "s" : "");
  else
    H5Sget_simple_extent_dims(space, dims, NULL);
  H5Sclose(space);
  H5Tclose(type);
  return st;
}

/* Runs of consecutive rows per leaf selection (see data_select_runs). */
#define CH_RUNS_PER_LEAF 64

/* A copy of `like` with runs [first, first + k) selected by one-by-one OR. */
static hid_t leaf_space(hid_t like, const hsize_t *start, const hsize_t *len, int64_t k, hsize_t cols) {
  hid_t s = H5Scopy(like);
  for (int64_t i = 0; s >= 0 && i < k; i++) {
    hsize_t st[2] = {start[i], 0}, ct[2] = {len[i], cols}; /* a 1-D space reads only [0] */
    if (H5Sselect_hyperslab(s, i ? H5S_SELECT_OR : H5S_SELECT_SET, st, NULL, ct, NULL) < 0) {
      H5Sclose(s);
      s = -1;
    }
  }
  return s;
}

/* HDF5 1.10 merges each OR'ed block into the whole span tree, so adding k blocks one by one
 * costs O(k^2) (40000 rows: 70 s); instead leaves of CH_RUNS_PER_LEAF runs are built that way
 * and then merged pairwise, O(k log k) (40000: 0.05 s). */
hid_t data_select_runs(hid_t like, const hsize_t *start, const hsize_t *len, int64_t nruns, hsize_t cols) {
  if (nruns == 0) {
    hid_t s = H5Scopy(like);
    if (s >= 0 && H5Sselect_none(s) < 0) {
      H5Sclose(s);
      s = -1;
    }
    return s;
  }
  int64_t nl = (nruns + CH_RUNS_PER_LEAF - 1) / CH_RUNS_PER_LEAF, ok = 1;
  hid_t *sp = calloc((size_t)nl, sizeof *sp);
  if (!sp) return -1;
  for (int64_t l = 0; l < nl; l++) {
    int64_t first = l * CH_RUNS_PER_LEAF, k = nruns - first < CH_RUNS_PER_LEAF ? nruns - first : CH_RUNS_PER_LEAF;
    sp[l] = ok ? leaf_space(like, start + first, len + first, k, cols) : -1;
    if (sp[l] < 0) ok = 0;
  }
  for (int64_t w = nl; w > 1; w = (w + 1) / 2) {
    for (int64_t i = 0; i < w / 2; i++) {
      hid_t merged = ok ? H5Scombine_select(sp[2 * i], H5S_SELECT_OR, sp[2 * i + 1]) : -1;
      if (sp[2 * i] >= 0) H5Sclose(sp[2 * i]);
      if (sp[2 * i + 1] >= 0) H5Sclose(sp[2 * i + 1]);
      if (merged < 0) ok = 0;
      sp[i] = merged;
    }
    if (w % 2) sp[w / 2] = sp[w - 1];
  }
  hid_t out = sp[0];
  free(sp);
  if (!ok && out >= 0) {
    H5Sclose(out);
    out = -1;
  }
  return out;
}
