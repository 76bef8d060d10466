/* Disk space for a checkpoint file. Parallel HDF5 cannot survive a failed metadata write: the
 * rank whose write failed leaves the flush early while the others wait in HDF5's barrier, and
 * H5Fclose then deadlocks (it retries the flush). So a save makes sure, on rank 0 and before
 * HDF5 writes anything, that the whole file fits:
 *   1. preflight (ckpt_space_check): statvfs of the directory, a clear early message;
 *   2. probe (ckpt_space_probe), just before H5Fcreate: allocating the estimated size for real
 *      catches a disk that filled up since the preflight, while no HDF5 file exists yet;
 *   3. reservation (ckpt_space_reserve), just after H5Fcreate and before any metadata: the
 *      estimated size is allocated beyond the end of the file (FALLOC_FL_KEEP_SIZE), so that
 *      neither metadata nor data can meet ENOSPC later, whoever else writes to the disk;
 *   4. after the metadata is on disk, the datasets' exact range is allocated (ckpt_space_extend;
 *      needed too because some MPI libraries' set_size at the flush drops the blocks reserved
 *      beyond the end: Open MPI's does, MPICH's does not);
 *   5. after the close, what the estimate reserved beyond the end is returned
 *      (ckpt_space_release).
 * File systems without fallocate skip 2 and 3 (the preflight still runs; 4 falls back to glibc's
 * emulation, which writes zeros). When a save fails anyway,
 * ckpt_space_discard frees the partial file's blocks so that HDF5's final flush at close has
 * room. */
#define _GNU_SOURCE /* fallocate, FALLOC_FL_* */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "ckpt/ckpt_internal.h"
#include "cohort/log.h"

double ckpt_space_need(double tensor_bytes) { return tensor_bytes * 1.1 + 131072.0; }

/* Bytes free to unprivileged writers on the file system holding `dir`, or -1 if unknown. */
static double free_bytes(const char *dir) {
  struct statvfs fs;
  return statvfs(dir, &fs) == 0 ? (double)fs.f_bavail * (double)fs.f_frsize : -1.0;
}

ch_status ckpt_space_check(const char *dir, double tensor_bytes) {
  double avail = free_bytes(dir), need = ckpt_space_need(tensor_bytes);
  if (avail < 0) return CH_OK; /* unknown: let the write tell */
  if (avail < need)
    return CH_FAIL(CH_ERR_IO, "not enough space for a checkpoint in %s: it needs about %.1f MiB, "
                   "%.1f MiB are free (no space left on the device)", dir, need / 1048576.0,
                   avail / 1048576.0);
  return CH_OK;
}

/* Errors of fallocate that mean "this file system cannot", not "no room". */
static int unsupported(int err) { return err == EOPNOTSUPP || err == ENOSYS || err == EINVAL; }

static ch_status no_space(const char *path, double bytes, int err) {
  return CH_FAIL(CH_ERR_IO, "%s: cannot allocate %.1f MiB for the checkpoint: %s", path,
                 bytes / 1048576.0, strerror(err));
}

/* fallocate(mode) of [0, bytes) of `path` (opened with `flags`). */
static ch_status allocate(const char *path, int flags, int mode, double bytes) {
  int fd = open(path, flags | O_CLOEXEC, 0644);
  if (fd < 0) return CH_FAIL(CH_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  int rc = fallocate(fd, mode, 0, (off_t)bytes), err = errno;
  close(fd);
  if (rc != 0 && !unsupported(err)) return no_space(path, bytes, err);
  return CH_OK;
}

ch_status ckpt_space_probe(const char *path, double bytes) {
  return allocate(path, O_WRONLY | O_CREAT | O_TRUNC, 0, bytes);
}

ch_status ckpt_space_reserve(const char *path, double bytes) {
  return allocate(path, O_WRONLY, FALLOC_FL_KEEP_SIZE, bytes);
}

ch_status ckpt_space_extend(const char *path, double bytes) {
  int fd = open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) return CH_FAIL(CH_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  int rc = posix_fallocate(fd, 0, (off_t)bytes);
  ch_status st = CH_OK;
  if (rc != 0 && !unsupported(rc)) {
    st = no_space(path, bytes, rc);
    /* extended sparsely instead, so that closing the file needs no allocation */
    if (ftruncate(fd, (off_t)bytes) != 0) CH_DEBUG("%s: sparse extension failed too", path);
  }
  close(fd);
  return st;
}

void ckpt_space_release(const char *path) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  struct stat sb;
  if (fd < 0) return;
  if (fstat(fd, &sb) == 0) /* blocks beyond the end: what the reservation did not use */
    (void)fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, sb.st_size,
                    (off_t)1 << 40);
  close(fd);
}

void ckpt_space_discard(const char *path) {
  if (truncate(path, 0) != 0) CH_DEBUG("%s: cannot truncate: %s", path, strerror(errno));
}

void ckpt_space_hint(const char *path, char *buf, size_t size) {
  char dir[CH_PATH_MAX * 2];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash) *slash = '\0';
  else snprintf(dir, sizeof dir, ".");
  double avail = free_bytes(dir);
  buf[0] = '\0';
  if (avail < 0) return;
  snprintf(buf, size, " (%s%.1f MiB free on its file system)",
           avail < 1048576.0 ? "no space left on the device: " : "", avail / 1048576.0);
}
