/* HDF5 helpers shared by the data layer's converters (table_write.c, text.c) and parallel readers
 * (dataset.c, tokens.c); not installed. Code in h5common.c. Callers silence HDF5's error
 * printing (h5_quiet) around them. */
#pragma once
#include <hdf5.h>
#include <stdint.h>
#include "cohort/comm_mpi.h"
#include "cohort/status.h"

/* Fails with status s and "where: what: <innermost HDF5 message>". */
ch_status data_h5_fail(ch_status s, const char *where, const char *what);

/* ---- serial writing (converters) ---- */

/* Creates dataset `name` in grp (contiguous) of file type ftype with `rank` dims and writes
 * data (memory type mtype) when dims[0] > 0. Errors: CH_ERR_IO naming path and name. */
ch_status data_write_dataset(hid_t grp, const char *name, hid_t ftype, hid_t mtype, int rank,
                             const hsize_t *dims, const void *data, const char *path);
/* Scalar attributes of obj: int64, and a fixed-length NUL-terminated UTF-8 string. */
ch_status data_write_attr_i64(hid_t obj, const char *name, int64_t v, const char *path);
ch_status data_write_attr_str(hid_t obj, const char *name, const char *v, const char *path);
/* Atomic replacement (Redis-style): fsync tmp, rename it to out, fsync the directory, so that a
 * crash leaves either the old file or the new one. Errors: CH_ERR_IO. */
ch_status data_commit_file(const char *tmp, const char *out);

/* ---- parallel reading ---- */

/* The readers' collective protocol (h5collective.c). Each runs under one collective-watchdog
 * mark with HDF5's error printing silenced. */

/* The argument checks of a split reader's open (`fn` names it): g, path and split given, split
 * a plain name (train, val, ...). Errors: CH_ERR_INVALID. Local. */
ch_status data_check_open(const char *fn, const ch_group *g, const char *path, const char *split);
/* Opens path with data_open_parallel, checks that it has group /<split>, then runs
 * contents(reader, path, split) (reading attributes, opening datasets); *file is -1 or open (the
 * caller closes it, also on error). Collective. */
ch_status data_open_split(const ch_group *g, const char *path, const char *split, hid_t *file,
                          ch_status (*contents)(void *reader, const char *path, const char *split),
                          void *reader);
/* The transfer property list of the readers' reads: independent I/O (see dataset.c's top
 * comment). *out is -1 or open. Errors: CH_ERR_IO naming `where`. */
ch_status data_independent_dxpl(const char *where, hid_t *out);
/* Agrees on every rank's `prepared` status over comm, then, when all are CH_OK, runs read(ctx)
 * (the transfer). Returns this rank's failure, else another rank's as "<where>: <what> failed
 * on another rank", else CH_OK. Collective. */
ch_status data_read_agreed(MPI_Comm comm, ch_status prepared, const char *where,
                           const char *what, ch_status (*read)(void *ctx), void *ctx);
/* Closes objs[0..n) (datasets, property lists; -1 skipped), then the file (collective). */
void data_close_collective(hid_t file, const hid_t *objs, int n);

/* Opens path read-only with the MPI-IO driver over g (collective; collective metadata reads).
 * A missing or unreadable file is reported alike on every rank before any rank enters H5Fopen.
 * Errors: CH_ERR_IO, CH_ERR_FORMAT (not HDF5), CH_ERR_MPI. */
ch_status data_open_parallel(const ch_group *g, const char *path, hid_t *file);
/* Integer scalar attribute of the root group. Errors: CH_ERR_FORMAT (missing, not an integer
 * scalar), CH_ERR_IO. */
ch_status data_read_attr_i64(hid_t file, const char *path, const char *name, int64_t *v);
/* Opens dataset `full` (e.g. "/train/x") and checks its element class (H5T_INTEGER or
 * H5T_FLOAT) and number of dimensions; dims receive its shape. *out is -1 or open (the caller
 * closes it, also on error). Errors: CH_ERR_FORMAT naming `where` and the dataset. */
ch_status data_open_checked(hid_t file, const char *where, const char *full, H5T_class_t cls, int rank,
                            hsize_t *dims, hid_t *out);
/* A copy of the file space `like` selecting the row runs (start[i], len[i]) (sorted, disjoint)
 * with all `cols` columns (cols is ignored for a 1-D space), or nothing when nruns is 0;
 * -1 on an HDF5 error. O(nruns log nruns). */
hid_t data_select_runs(hid_t like, const hsize_t *start, const hsize_t *len, int64_t nruns, hsize_t cols);
