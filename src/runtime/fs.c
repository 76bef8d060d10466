/* Directory creation and atomic, durable file replacement. */
#include "cohort/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FS_PATH_MAX 1100

ch_status ch_mkdir_p(const char *path) {
  char buf[FS_PATH_MAX];
  if (strlen(path) >= sizeof buf) return CH_FAIL(CH_ERR_IO, "path too long: %s", path);
  strcpy(buf, path);
  for (char *p = buf + 1;; p++) {
    if (*p == '/' || *p == '\0') {
      char saved = *p;
      *p = '\0';
      if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return CH_FAIL(CH_ERR_IO, "cannot create directory %s: %s", buf, strerror(errno));
      *p = saved;
      if (!saved) break;
    }
  }
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
    return CH_FAIL(CH_ERR_IO, "%s exists and is not a directory", path);
  return CH_OK;
}

ch_status ch_fsync_parent_dir(const char *path) {
  char dir[FS_PATH_MAX];
  const char *slash = strrchr(path, '/');
  if (!slash) snprintf(dir, sizeof dir, ".");
  else snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return CH_FAIL(CH_ERR_IO, "cannot open directory '%s': %s", dir, strerror(errno));
  int rc = fsync(fd);
  int err = errno;
  close(fd);
  if (rc != 0 && err != EINVAL)
    return CH_FAIL(CH_ERR_IO, "cannot sync directory '%s': %s", dir, strerror(err));
  return CH_OK;
}

static ch_status write_all(int fd, const char *p, size_t n, const char *path) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return CH_FAIL(CH_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
    p += w;
    n -= (size_t)w;
  }
  return CH_OK;
}

ch_status ch_write_file_atomic(const char *path, const void *data, size_t len) {
  char tmp[FS_PATH_MAX];
  if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
    return CH_FAIL(CH_ERR_INVALID, "path too long: '%.80s...'", path);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return CH_FAIL(CH_ERR_IO, "cannot create '%s': %s", tmp, strerror(errno));
  ch_status st = write_all(fd, data, len, tmp);
  if (st == CH_OK && fsync(fd) != 0)
    st = CH_FAIL(CH_ERR_IO, "cannot sync '%s': %s", tmp, strerror(errno));
  if (close(fd) != 0 && st == CH_OK)
    st = CH_FAIL(CH_ERR_IO, "cannot close '%s': %s", tmp, strerror(errno));
  if (st == CH_OK && rename(tmp, path) != 0)
    st = CH_FAIL(CH_ERR_IO, "cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
  if (st != CH_OK) {
    unlink(tmp);
    return st;
  }
  return ch_fsync_parent_dir(path);
}
