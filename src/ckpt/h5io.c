/* Writing and reading one checkpoint file with parallel HDF5 (collective MPI-IO).
 * Every rank makes the same sequence of HDF5 calls whatever happens locally (a rank with
 * nothing to move selects nothing), so no rank is ever left alone in a collective; a local
 * failure is remembered and the ranks agree on the outcome once, at the end of each phase.
 * Throughput (bench/RESULTS.md, "Checkpoint I/O"): the CRC is libdeflate's when available
 * (3-4x zlib's), writeback starts after each dataset rather than at the final fsync, and
 * reads prefetch the next piece while the current one is checksummed. */
#define _GNU_SOURCE /* sync_file_range */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "ckpt/ckpt_internal.h"
#include "cohort/comm_mpi.h"
#include "cohort/log.h"
#include "cohort/watchdog.h"
#include "runtime/h5util.h"

static ch_status h5_fail(ch_status s, const char *path, const char *what, const char *name) {
  char msg[256];
  return CH_FAIL(s, "%s: %s%s%s: %s", path, what, name ? " " : "", name ? name : "", h5_error(msg));
}

/* A failed HDF5 write: as h5_fail, plus what the file system has left (HDF5 says only "file
 * write failed"), so that a full disk is named as such. */
static ch_status write_fail(const char *path, const char *what, const char *name) {
  char msg[256], hint[128];
  h5_error(msg);
  for (char *c = msg; *c; c++) /* MPI error strings span lines: keep the message one line */
    if (*c == '\n') *c = ' ';
  ckpt_space_hint(path, hint, sizeof hint);
  return CH_FAIL(CH_ERR_IO, "%s: %s%s%s: %s%s", path, what, name ? " " : "", name ? name : "", msg,
                 hint);
}

/* Dataset i of a checkpoint is parameter i % nparams of buffer i / nparams. Its piece that shard
 * `own` holds, as element indices [a, b) of the tensor; returns where element a sits in that
 * buffer (check_shard made sure that a parameter meets at most one segment). */
static float *piece_of(const ch_layout *l, const ch_shard *own, const ch_ckpt_buffer *bufs, int i,
                       int64_t *a, int64_t *b) {
  int p = i % l->nparams;
  const ch_ckpt_buffer *buf = &bufs[i / l->nparams];
  int64_t off = (int64_t)l->offsets[p], n = ch_param_numel(&l->params[p]);
  *a = *b = 0;
  for (int j = 0; j < own->nsegs; j++) {
    const ch_segment *g = &own->segs[j];
    int64_t s = (int64_t)g->offset - off, e = s + (int64_t)g->numel;
    s = s < 0 ? 0 : s;
    e = e > n ? n : e;
    if (s >= e) continue;
    *a = s;
    *b = e;
    return buf->data + ch_shard_at(g, buf->addr) + (size_t)(off + s - (int64_t)g->offset);
  }
  return buf->data;
}

/* The HDF5 path of dataset i (see piece_of). */
static void dataset_name(const ch_layout *l, const ch_ckpt_buffer *bufs, int i, char *name,
                         size_t size) {
  ckpt_dataset_path(&l->params[i % l->nparams], bufs[i / l->nparams].kind, name, size);
}

/* A failed transfer of dataset i, kept in *st unless an earlier failure is there already. */
static void transfer_failed(ch_status *st, const char *path, const char *what, int write,
                            const ch_layout *l, const ch_ckpt_buffer *bufs, int i) {
  char name[CH_NAME_MAX + 64];
  dataset_name(l, bufs, i, name, sizeof name);
  ch_status e = write ? write_fail(path, what, name) : h5_fail(CH_ERR_IO, path, what, name);
  if (*st == CH_OK) *st = e;
}

/* CRC-32 (the zlib polynomial and values). libdeflate's carry-less-multiply version runs at
 * 7-11 GB/s on one core here, zlib 1.2.13's at 2.4-3; it is loaded at run time when present
 * (Debian: libdeflate0) and zlib is the fallback. */
typedef uint32_t (*crc_fn)(uint32_t, const void *, size_t);
static crc_fn fast_crc(void) {
  static crc_fn f;
  static int tried;
  if (!tried) {
    tried = 1;
    void *h = dlopen("libdeflate.so.0", RTLD_NOW | RTLD_LOCAL);
    if (h) f = (crc_fn)dlsym(h, "libdeflate_crc32");
  }
  return f;
}

static uint32_t crc_of(const float *x, int64_t n) {
  crc_fn f = fast_crc();
  if (f) return f(0, x, (size_t)n * sizeof(float));
  return (uint32_t)crc32_z(crc32(0L, Z_NULL, 0), (const Bytef *)x, (z_size_t)n * sizeof(float));
}

/* Agrees on a status across the group: the lowest failing rank's code wins; ranks that did not
 * fail report that another rank did. Status codes are < 256, so (rank, code) packs into one
 * integer whose minimum is that rank's. */
static ch_status agree(const ch_group *g, ch_status st, const char *path) {
  int32_t key = st == CH_OK ? INT32_MAX : g->rank * 256 + (int32_t)st;
  if (ch_comm_allreduce(g, &key, 1, CH_I32, CH_MIN, NULL) != CH_OK)
    return CH_FAIL(CH_ERR_MPI, "%s: ranks could not agree on the outcome", path);
  if (key == INT32_MAX) return CH_OK;
  if (st != CH_OK) return st;
  return CH_FAIL((ch_status)(key % 256), "%s: failed on rank %d (see its message)", path, key / 256);
}

/* MPI-IO over an MPI group; HDF5's default (sec2) driver for a group without MPI
 * (ch_group_self: one process, e.g. `cohort ckpt import`), which writes the same file. */
static int over_mpi(const ch_group *g) { return ch_group_mpi_comm(g) != MPI_COMM_NULL; }

static hid_t open_fapl(const ch_group *g) {
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (fapl < 0) return -1;
  if ((over_mpi(g) && (H5Pset_fapl_mpio(fapl, ch_group_mpi_comm(g), MPI_INFO_NULL) < 0 ||
                       H5Pset_all_coll_metadata_ops(fapl, 1) < 0 ||
                       H5Pset_coll_metadata_write(fapl, 1) < 0)) ||
      H5Pset_alignment(fapl, 1 << 20, 1 << 16) < 0) { /* big tensors start on 64 KiB boundaries */
    H5Pclose(fapl);
    return -1;
  }
  return fapl;
}

static hid_t data_dxpl(const ch_group *g) {
  hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
  if (dxpl >= 0 && over_mpi(g) && H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE) < 0) {
    H5Pclose(dxpl);
    return -1;
  }
  return dxpl;
}

/* Creates /model, /optim and /optim/<name> for every parameter when there are optimizer states. */
static ch_status create_groups(hid_t file, const char *path, const ch_layout *l, int with_optim) {
  hid_t gm = H5Gcreate2(file, "/model", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (gm < 0) return h5_fail(CH_ERR_IO, path, "creating group", "/model");
  H5Gclose(gm);
  if (!with_optim) return CH_OK;
  hid_t go = H5Gcreate2(file, "/optim", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (go < 0) return h5_fail(CH_ERR_IO, path, "creating group", "/optim");
  for (int p = 0; p < l->nparams; p++) {
    hid_t gp = H5Gcreate2(go, l->params[p].name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (gp < 0) {
      H5Gclose(go);
      return h5_fail(CH_ERR_IO, path, "creating group for", l->params[p].name);
    }
    H5Gclose(gp);
  }
  H5Gclose(go);
  return CH_OK;
}

static ch_status check_shard(const ch_layout *l, const ch_shard *own) {
  for (int i = 0; i < own->nsegs; i++) {
    const ch_segment *g = &own->segs[i];
    if (g->offset + g->numel > l->numel || (i > 0 && g->offset < own->segs[i - 1].offset + own->segs[i - 1].numel))
      return CH_FAIL(CH_ERR_INVALID, "checkpoint segment [%zu, %zu) outside the layout of %zu "
                     "elements or out of order", g->offset, g->offset + g->numel, l->numel);
  }
  for (int p = 0; p < l->nparams; p++) {
    size_t lo = l->offsets[p], hi = lo + (size_t)ch_param_numel(&l->params[p]);
    int meets = 0;
    for (int i = 0; i < own->nsegs; i++)
      meets += own->segs[i].numel && own->segs[i].offset < hi && own->segs[i].offset + own->segs[i].numel > lo;
    if (meets > 1)
      return CH_FAIL(CH_ERR_INVALID, "checkpoint shard: %d segments meet parameter %s (at most "
                     "one may)", meets, l->params[p].name);
  }
  return CH_OK;
}

static ckpt_io_stats g_io_stats;

ckpt_io_stats ckpt_get_io_stats(void) { return g_io_stats; }

/* Writes (or reads) the piece [a, b) of one dataset collectively (a == b: selects nothing). */
static herr_t transfer(hid_t dset, hid_t dxpl, const ch_param_spec *ps, int64_t a, int64_t b,
                       float *data, int write) {
  hid_t fspace = H5Dget_space(dset);
  hsize_t n = (hsize_t)(b - a);
  hid_t mspace = H5Screate_simple(1, n ? &n : (hsize_t[]){1}, NULL);
  herr_t rc = fspace < 0 || mspace < 0 ? -1 : 0;
  if (rc == 0) rc = ckpt_select_range(fspace, ps->ndim, ps->shape, a, b);
  if (rc == 0 && n == 0) rc = H5Sselect_none(mspace);
  static float dummy;
  void *buf = n ? (void *)data : &dummy;
  ch_watchdog_enter(write ? "hdf5 write" : "hdf5 read");
  if (rc == 0)
    rc = write ? H5Dwrite(dset, H5T_NATIVE_FLOAT, mspace, fspace, dxpl, buf)
               : H5Dread(dset, H5T_NATIVE_FLOAT, mspace, fspace, dxpl, buf);
  ch_watchdog_leave();
  /* HDF5 silently falls back to independent I/O in some cases (type conversion, filters). */
  H5D_mpio_actual_io_mode_t mode = H5D_MPIO_NO_COLLECTIVE;
  if (rc == 0 && H5Pget_mpio_actual_io_mode(dxpl, &mode) >= 0) {
    if (mode == H5D_MPIO_NO_COLLECTIVE) g_io_stats.independent++;
    else g_io_stats.collective++;
  }
  if (mspace >= 0) H5Sclose(mspace);
  if (fspace >= 0) H5Sclose(fspace);
  return rc;
}

/* Byte range in the file of elements [a, b) of a contiguous float32 dataset; 0 when unknown. */
static off_t file_range(hid_t dset, int64_t a, int64_t b, off_t *len) {
  haddr_t off = H5Dget_offset(dset);
  *len = off == HADDR_UNDEF ? 0 : (off_t)(b - a) * (off_t)sizeof(float);
  return off == HADDR_UNDEF ? 0 : (off_t)off + (off_t)a * (off_t)sizeof(float);
}

/* Creates every dataset (contiguous float32 of the full logical shape, space allocated now,
 * never filled) with its crc32 attribute; ids go to dsets[b * nparams + p]. Collective. */
static ch_status create_datasets(hid_t file, const char *path, const ch_layout *l,
                                 const ch_ckpt_buffer *bufs, int nbufs, const uint32_t *crc,
                                 hid_t *dsets) {
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  if (dcpl < 0 || H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER) < 0 ||
      H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY) < 0)
    return h5_fail(CH_ERR_IO, path, "dataset properties", NULL);
  ch_status st = CH_OK;
  for (int i = 0; i < nbufs * l->nparams && st == CH_OK; i++) {
    const ch_param_spec *ps = &l->params[i % l->nparams];
    char name[CH_NAME_MAX + 64];
    dataset_name(l, bufs, i, name, sizeof name);
    hsize_t dims[CH_MAX_DIMS];
    for (int d = 0; d < ps->ndim; d++) dims[d] = (hsize_t)ps->shape[d];
    hid_t space = H5Screate_simple(ps->ndim, dims, NULL);
    dsets[i] = H5Dcreate2(file, name, H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Sclose(space);
    if (dsets[i] < 0) st = h5_fail(CH_ERR_IO, path, "creating dataset", name);
    else st = ckpt_attr_write_u32(dsets[i], "crc32", crc[i]);
  }
  H5Pclose(dcpl);
  return st;
}

/* Seconds the close of a failed save may take before the job is ended (deadline.c): it has at
 * most the metadata left to write, which takes well under a second when it works at all. */
#define CLOSE_DEADLINE_S 15.0

ch_status ch_ckpt_write(const ch_group *g, const char *path, const ch_layout *l,
                        const ch_ckpt_buffer *bufs, int nbufs, const ch_shard *own,
                        const ch_ckpt_meta *meta) {
  CH_CHECK(check_shard(l, own));
  int k = nbufs * l->nparams;
  ckpt_piece *pieces = calloc((size_t)k + 1, sizeof *pieces);
  int64_t *numel = calloc((size_t)k + 1, sizeof *numel);
  uint32_t *crc = calloc((size_t)k + 1, sizeof *crc);
  int *covered = calloc((size_t)k + 1, sizeof *covered);
  ch_status st = CH_OK;
  if (!pieces || !numel || !crc || !covered) st = CH_FAIL(CH_ERR_NOMEM, "checkpoint write");
  st = agree(g, st, path);
  if (st != CH_OK) goto free_all;
  for (int i = 0; i < k; i++) {
    int64_t a, e;
    const float *x = piece_of(l, own, bufs, i, &a, &e);
    pieces[i] = (ckpt_piece){a, e - a, e > a ? crc_of(x, e - a) : 0};
    numel[i] = ch_param_numel(&l->params[i % l->nparams]);
  }
  CH_CHECK_GOTO(ckpt_combine_crcs(g, pieces, k, numel, crc, covered), st, free_all);
  for (int i = 0; i < k; i++)
    if (!covered[i]) {
      st = CH_FAIL(CH_ERR_INVALID, "%s: the ranks' ranges do not cover %s", path,
                   l->params[i % l->nparams].name);
      goto free_all;
    }

  /* Space first (space.c): HDF5 must never meet ENOSPC in a metadata write, since the ranks
   * would then deadlock in H5Fclose. The probe runs before any HDF5 file exists, so failing
   * there is clean. */
  double need = ckpt_space_need((double)nbufs * (double)l->numel * sizeof(float));
  if (g->rank == 0) {
    ckpt_fault_fill(path, meta->step, "create");
    st = ckpt_space_probe(path, need);
  }
  st = agree(g, st, path);
  if (st != CH_OK) {
    if (g->rank == 0) unlink(path);
    goto free_all;
  }
  h5_quiet q;
  h5_quiet_begin(&q);
  hid_t fapl = open_fapl(g), dxpl = data_dxpl(g);
  ch_watchdog_enter("hdf5 create");
  hid_t file = fapl < 0 ? -1 : H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  ch_watchdog_leave();
  if (file < 0 || dxpl < 0) st = h5_fail(CH_ERR_IO, path, "cannot create the file", NULL);
  else if (g->rank == 0 && !ckpt_fault_is(meta->step, "fill-meta-unreserved"))
    st = ckpt_space_reserve(path, need); /* the create truncated the probe's allocation */
  st = agree(g, st, path);
  if (st == CH_OK) {
    st = ckpt_write_meta(file, path, meta);
    if (st == CH_OK) st = create_groups(file, path, l, nbufs > 1);
  }
  /* Metadata operations are collective, so ranks fail alike; agreeing makes sure. From here on
   * a local failure must not change which collective calls this rank makes. */
  st = agree(g, st, path);
  hid_t *dsets = malloc(sizeof *dsets * (size_t)k + 1);
  for (int i = 0; i < k && dsets; i++) dsets[i] = -1;
  if (!dsets && st == CH_OK) st = CH_FAIL(CH_ERR_NOMEM, "checkpoint write");
  st = agree(g, st, path);
  /* Phase 1, metadata: every dataset with its checksum, flushed to the file (into the space
   * reserved above) before any data. The datasets' extent is then allocated exactly, so that
   * on a file system without KEEP_SIZE reservations running out of space still shows up here,
   * while HDF5 has nothing left to write, and not halfway through a flush (HDF5 1.10 cannot
   * close a file whose flush failed). */
  if (st == CH_OK) st = create_datasets(file, path, l, bufs, nbufs, crc, dsets);
  if (g->rank == 0) ckpt_fault_fill(path, meta->step, "meta");
  if (st == CH_OK && H5Fflush(file, H5F_SCOPE_GLOBAL) < 0)
    st = write_fail(path, "flushing metadata", NULL);
  st = agree(g, st, path);
  /* Metadata is on disk now; only the datasets' raw data is still to come. */
  hsize_t size = 0;
  for (int i = 0; i < k && st == CH_OK; i++) {
    haddr_t off = H5Dget_offset(dsets[i]);
    hsize_t end = off == HADDR_UNDEF ? 0 : off + H5Dget_storage_size(dsets[i]);
    if (end > size) size = end;
  }
  if (st == CH_OK && g->rank == 0) st = ckpt_space_extend(path, (double)size);
  st = agree(g, st, path);
  if (g->rank == 0 && st == CH_OK) ckpt_fault_fill(path, meta->step, "data");
  /* Phase 2, data: one collective write per dataset, each rank its own piece; every rank makes
   * all k calls even after a local failure, and the ranks agree once at the end. After each
   * piece the kernel is asked to start writing it back (sync_file_range), so the disk works
   * while the next pieces are copied and the final fsync has little left to do. */
  int go = st == CH_OK;
  int wb = go ? open(path, O_RDONLY | O_CLOEXEC) : -1;
  for (int i = 0; i < k && go; i++) {
    int64_t a, e;
    float *x = piece_of(l, own, bufs, i, &a, &e);
    if (transfer(dsets[i], dxpl, &l->params[i % l->nparams], a, e, x, 1) < 0)
      transfer_failed(&st, path, "writing", 1, l, bufs, i);
    off_t len, off = file_range(dsets[i], a, e, &len);
    if (wb >= 0 && len > 0) sync_file_range(wb, off, len, SYNC_FILE_RANGE_WRITE); /* a hint */
  }
  if (wb >= 0) close(wb);
  st = agree(g, st, path);
  for (int i = 0; i < k && dsets; i++)
    if (dsets[i] >= 0) H5Dclose(dsets[i]);
  free(dsets);
  if (dxpl >= 0) H5Pclose(dxpl);
  /* After a failure the close retries any unwritten metadata: give it room (the partial file
   * is deleted anyway) and a deadline, since a flush that fails on some ranks only deadlocks
   * (deadline.c). */
  ckpt_deadline *deadline = NULL;
  if (st != CH_OK && file >= 0) {
    if (g->rank == 0) ckpt_space_discard(path);
    deadline = ckpt_deadline_arm(path, g->rank, CLOSE_DEADLINE_S, ch_error_message());
  }
  ch_watchdog_enter("hdf5 close");
  herr_t closed = file >= 0 ? H5Fclose(file) : 0;
  ch_watchdog_leave();
  ckpt_deadline_disarm(deadline);
  if (closed < 0) {
    /* HDF5 1.10 leaves a half-closed file behind that crashes its shutdown at MPI_Finalize;
     * reserving the space before any metadata (space.c) is what keeps this branch rare. */
    if (st == CH_OK) st = write_fail(path, "closing (flushing) the file", NULL);
  }
  if (closed >= 0 && st == CH_OK && g->rank == 0) ckpt_space_release(path);
  if (fapl >= 0) H5Pclose(fapl);
  h5_quiet_end(&q);
  st = agree(g, st, path);
free_all:
  free(pieces);
  free(numel);
  free(crc);
  free(covered);
  return st;
}

/* Opens dataset `name` and checks that it is float32 of the spec's shape. */
static ch_status open_checked(hid_t file, const char *path, const char *name, const ch_param_spec *ps,
                              hid_t *out) {
  *out = -1;
  if (H5Lexists(file, name, H5P_DEFAULT) <= 0)
    return CH_FAIL(CH_ERR_FORMAT, "%s: dataset %s is missing", path, name);
  hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
  if (d < 0) return h5_fail(CH_ERR_FORMAT, path, "cannot open dataset", name);
  hid_t space = H5Dget_space(d), type = H5Dget_type(d);
  hsize_t dims[CH_MAX_DIMS + 1] = {0};
  int nd = space < 0 ? -1 : H5Sget_simple_extent_ndims(space);
  if (nd >= 0 && nd <= CH_MAX_DIMS) H5Sget_simple_extent_dims(space, dims, NULL);
  int ok = nd == ps->ndim && type >= 0 && H5Tget_class(type) == H5T_FLOAT && H5Tget_size(type) == 4;
  for (int i = 0; ok && i < nd; i++) ok = dims[i] == (hsize_t)ps->shape[i];
  if (space >= 0) H5Sclose(space);
  if (type >= 0) H5Tclose(type);
  if (!ok) {
    char want[96] = "", got[96] = "";
    for (int i = 0; i < ps->ndim; i++)
      snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", i ? ", " : "", (long long)ps->shape[i]);
    for (int i = 0; i < nd && i <= CH_MAX_DIMS; i++)
      snprintf(got + strlen(got), sizeof got - strlen(got), "%s%llu", i ? ", " : "", (unsigned long long)dims[i]);
    H5Dclose(d);
    return CH_FAIL(CH_ERR_FORMAT, "%s: dataset %s has shape [%s] (or is not float32); the model "
                   "needs float32 [%s]", path, name, got, want);
  }
  *out = d;
  return CH_OK;
}

ch_status ch_ckpt_read(const ch_group *g, const char *path, const ch_layout *l,
                       ch_ckpt_buffer *bufs, int nbufs, const ch_shard *own, ch_ckpt_meta *meta) {
  memset(meta, 0, sizeof *meta);
  CH_CHECK(check_shard(l, own));
  int k = nbufs * l->nparams;
  ckpt_piece *pieces = calloc((size_t)k + 1, sizeof *pieces);
  int64_t *numel = calloc((size_t)k + 1, sizeof *numel);
  uint32_t *crc = calloc((size_t)k + 1, sizeof *crc), *stored = calloc((size_t)k + 1, sizeof *stored);
  int *covered = calloc((size_t)k + 1, sizeof *covered);
  ch_status st = CH_OK;
  if (!pieces || !numel || !crc || !stored || !covered) st = CH_FAIL(CH_ERR_NOMEM, "checkpoint read");
  st = agree(g, st, path);
  if (st != CH_OK) goto free_all;

  /* Padding elements are not stored: zero them (only them; the rest is read). */
  for (int b = 0; b < nbufs; b++)
    for (int i = 0; i < own->nsegs; i++) {
      const ch_segment *g = &own->segs[i];
      for (int p = -1; p < l->nparams; p++) {
        size_t a = p < 0 ? 0 : l->offsets[p] + (size_t)ch_param_numel(&l->params[p]);
        size_t e = p + 1 < l->nparams ? l->offsets[p + 1] : l->numel;
        if (a < g->offset) a = g->offset;
        if (e > g->offset + g->numel) e = g->offset + g->numel;
        if (a < e)
          memset(bufs[b].data + ch_shard_at(g, bufs[b].addr) + (a - g->offset), 0,
                 (e - a) * sizeof(float));
      }
    }
  h5_quiet q;
  h5_quiet_begin(&q);
  hid_t fapl = open_fapl(g), dxpl = data_dxpl(g);
  ch_watchdog_enter("hdf5 open");
  hid_t file = fapl < 0 ? -1 : H5Fopen(path, H5F_ACC_RDONLY, fapl);
  ch_watchdog_leave();
  if (file < 0 || dxpl < 0) st = h5_fail(CH_ERR_IO, path, "cannot open (missing, truncated or not HDF5)", NULL);
  else st = ckpt_read_meta(file, path, meta);
  st = agree(g, st, path);
  ch_status ready = st;
  /* Open and check every dataset, then agree once: metadata is the same on every rank, so
   * these checks fail alike everywhere. */
  hid_t *ds = ready == CH_OK ? malloc(sizeof *ds * ((size_t)k + 1)) : NULL;
  if (ready == CH_OK && !ds) st = CH_FAIL(CH_ERR_NOMEM, "checkpoint read");
  if (ready == CH_OK) st = agree(g, st, path);
  for (int i = 0; i < k && ds; i++) ds[i] = -1;
  for (int i = 0; i < k && ds && st == CH_OK; i++) {
    const ch_param_spec *ps = &l->params[i % l->nparams];
    char name[CH_NAME_MAX + 64];
    dataset_name(l, bufs, i, name, sizeof name);
    numel[i] = ch_param_numel(ps);
    st = open_checked(file, path, name, ps, &ds[i]);
    if (st == CH_OK) st = ckpt_attr_read_u32(ds[i], "crc32", &stored[i]);
  }
  if (ready == CH_OK) st = agree(g, st, path);
  /* Then one collective read per dataset (all k on every rank, whatever fails locally), each
   * piece checksummed while the kernel reads this rank's next piece ahead (POSIX_FADV_WILLNEED). */
  int go = st == CH_OK;
  int ra = go ? open(path, O_RDONLY | O_CLOEXEC) : -1;
  for (int i = 0; i < k && go; i++) {
    int64_t a, e;
    float *x = piece_of(l, own, bufs, i, &a, &e);
    for (int j = i + 1; j < k && ra >= 0; j++) {
      int64_t a2, e2;
      piece_of(l, own, bufs, j, &a2, &e2);
      if (e2 <= a2) continue;
      off_t len, off = file_range(ds[j], a2, e2, &len);
      if (len > 0) posix_fadvise(ra, off, len, POSIX_FADV_WILLNEED); /* a hint */
      break;
    }
    if (transfer(ds[i], dxpl, &l->params[i % l->nparams], a, e, x, 0) < 0)
      transfer_failed(&st, path, "reading", 0, l, bufs, i);
    pieces[i] = (ckpt_piece){a, e - a, e > a ? crc_of(x, e - a) : 0};
  }
  if (ra >= 0) close(ra);
  for (int i = 0; i < k && ds; i++)
    if (ds[i] >= 0) H5Dclose(ds[i]);
  free(ds);
  if (dxpl >= 0) H5Pclose(dxpl);
  ch_watchdog_enter("hdf5 close");
  if (file >= 0) H5Fclose(file);
  ch_watchdog_leave();
  if (fapl >= 0) H5Pclose(fapl);
  h5_quiet_end(&q);
  st = agree(g, st, path);
  if (st == CH_OK) st = ckpt_combine_crcs(g, pieces, k, numel, crc, covered);
  for (int i = 0; i < k && st == CH_OK; i++) {
    char name[CH_NAME_MAX + 64];
    dataset_name(l, bufs, i, name, sizeof name);
    if (!covered[i])
      CH_DEBUG("%s: %s read in part; checksum not verified", path, name);
    else if (crc[i] != stored[i])
      st = CH_FAIL(CH_ERR_FORMAT, "%s: checksum mismatch in dataset %s (stored crc32 %08x, data "
                   "has %08x): the file is corrupt", path, name, stored[i], crc[i]);
  }
free_all:
  free(pieces);
  free(numel);
  free(crc);
  free(stored);
  free(covered);
  if (st != CH_OK) ch_ckpt_meta_free(meta);
  return st;
}
