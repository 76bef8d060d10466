/* Test hook: fills the checkpoint's file system at a chosen point of a save, so that tests can
 * run out of space exactly where a concurrent writer would hurt most (a fill by another process
 * cannot be timed reliably). Enabled only by the environment variable
 *   COHORT_FAULT_CKPT=<fault>:<step>     e.g. fill-meta:40
 * while the checkpoint of step <step> is written. Faults: fill-create (before the file is
 * created), fill-meta (before the metadata is flushed), fill-data (before the tensors are
 * written), fill-meta-unreserved (fill-meta without the space reservation, as on a file system
 * without fallocate). A fill is rank 0 writing a file "fault-fill" next to the checkpoint until
 * the file system reports ENOSPC; the test removes it. Nothing happens without the variable.
 * Documented in docs/checkpoint-format.md ("Test hooks"). */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckpt/ckpt_internal.h"
#include "cohort/log.h"

int ckpt_fault_is(int64_t step, const char *fault) {
  const char *spec = getenv("COHORT_FAULT_CKPT");
  char want[64];
  snprintf(want, sizeof want, "%s:%" PRId64, fault, step);
  return spec && !strcmp(spec, want);
}

void ckpt_fault_fill(const char *path, int64_t step, const char *point) {
  char fault[32], unreserved[48];
  snprintf(fault, sizeof fault, "fill-%s", point);
  snprintf(unreserved, sizeof unreserved, "fill-%s-unreserved", point);
  if (!ckpt_fault_is(step, fault) && !ckpt_fault_is(step, unreserved)) return;
  char filler[CH_PATH_MAX * 2 + 16];
  const char *slash = strrchr(path, '/');
  snprintf(filler, sizeof filler, "%.*sfault-fill", slash ? (int)(slash - path + 1) : 0, path);
  int fd = open(filler, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return;
  static char block[4096];
  int64_t total = 0;
  ssize_t w;
  for (size_t n = sizeof block; n >= 1; n /= 2) /* whole blocks, then the last partial one */
    while ((w = write(fd, block, n)) > 0) total += w;
  fsync(fd);
  close(fd);
  CH_WARN("COHORT_FAULT_CKPT=%s: filled the file system with %s (%" PRId64 " bytes)",
          getenv("COHORT_FAULT_CKPT"), filler, total);
}
