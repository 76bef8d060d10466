/* Directory creation for run directories. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "cohort/config.h"
#include "cohort/train.h"

ch_status ch_mkdir_p(const char *path) {
  char buf[CH_PATH_MAX];
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
