/* The collective protocol of the parallel readers (dataset.c, tokens.c): open, agreed read and
 * close, each under one collective-watchdog mark with HDF5's error printing silenced. */
#include <string.h>

#include "cohort/comm_mpi.h"
#include "cohort/watchdog.h"
#include "data/data_internal.h"
#include "runtime/h5util.h"

ch_status data_check_open(const char *fn, const ch_group *g, const char *path, const char *split) {
  if (!g || ch_group_mpi_comm(g) == MPI_COMM_NULL || !path || !split)
    return CH_FAIL(CH_ERR_INVALID, "%s: null argument", fn);
  if (!split[0] || strchr(split, '/') || strlen(split) > 64)
    return CH_FAIL(CH_ERR_INVALID, "bad split name '%s' (expected e.g. train or val)", split);
  return CH_OK;
}

ch_status data_open_split(const ch_group *g, const char *path, const char *split, hid_t *file,
                          ch_status (*contents)(void *reader, const char *path, const char *split),
                          void *reader) {
  h5_quiet q;
  h5_quiet_begin(&q);
  ch_watchdog_enter("hdf5 open"); /* collective: H5Fopen, and metadata reads (all_coll) */
  ch_status st = data_open_parallel(g, path, file);
  if (st == CH_OK && H5Lexists(*file, split, H5P_DEFAULT) <= 0)
    st = CH_FAIL(CH_ERR_FORMAT, "%s: no split '%s' (group /%s)", path, split, split);
  if (st == CH_OK) st = contents(reader, path, split);
  ch_watchdog_leave();
  h5_quiet_end(&q);
  return st;
}

ch_status data_independent_dxpl(const char *where, hid_t *out) {
  *out = H5Pcreate(H5P_DATASET_XFER);
  if (*out < 0 || H5Pset_dxpl_mpio(*out, H5FD_MPIO_INDEPENDENT) < 0)
    return data_h5_fail(CH_ERR_IO, where, "transfer property list");
  return CH_OK;
}

ch_status data_read_agreed(MPI_Comm comm, ch_status prepared, const char *where,
                           const char *what, ch_status (*read)(void *ctx), void *ctx) {
  /* Agree before the transfer, so that a rank with bad arguments does not leave the others
   * waiting in H5Dread; the agreement and the transfer both wait on the other ranks, so one
   * watchdog mark covers both. */
  int mine = (int)prepared, worst = 0;
  ch_status st = prepared;
  ch_watchdog_enter("hdf5 read");
  int rc = MPI_Allreduce(&mine, &worst, 1, MPI_INT, MPI_MAX, comm);
  if (rc == MPI_SUCCESS && st == CH_OK && worst == CH_OK) {
    h5_quiet q;
    h5_quiet_begin(&q);
    st = read(ctx);
    h5_quiet_end(&q);
  }
  ch_watchdog_leave();
  if (rc != MPI_SUCCESS) return CH_FAIL(CH_ERR_MPI, "%s: MPI_Allreduce failed", where);
  if (st != CH_OK) {
    ch_error_trace(__FILE__, __LINE__);
    return st;
  }
  if (worst != CH_OK) return CH_FAIL((ch_status)worst, "%s: %s failed on another rank", where, what);
  return CH_OK;
}

void data_close_collective(hid_t file, const hid_t *objs, int n) {
  h5_quiet q;
  h5_quiet_begin(&q);
  ch_watchdog_enter("hdf5 close"); /* H5Fclose is collective */
  for (int i = 0; i < n; i++) {
    if (objs[i] < 0) continue;
    if (H5Iget_type(objs[i]) == H5I_GENPROP_LST) H5Pclose(objs[i]);
    else H5Oclose(objs[i]);
  }
  if (file >= 0) H5Fclose(file);
  ch_watchdog_leave();
  h5_quiet_end(&q);
}
