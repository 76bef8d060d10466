/* The model repository (server.h): which checkpoint paths a load request may name. The load
 * endpoint opens what it is given, and it answers without a key unless --api-key is set, so a
 * path is confined to one directory tree chosen at start: resolved with realpath (symbolic
 * links followed, so one pointing out of the tree is caught) and compared with the root's real
 * path as a whole-component prefix. A path outside the tree, or one that does not exist, gets
 * the same message, which names neither the file's type nor whether it exists. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/ckpt.h"
#include "serve/server.h"

/* Whether `p` has a ".." component (refused outright: nothing in a repository needs one). */
static int has_dotdot(const char *p) {
  for (const char *c = p; (c = strstr(c, "..")) != NULL; c += 2)
    if ((c == p || c[-1] == '/') && (c[2] == '\0' || c[2] == '/')) return 1;
  return 0;
}

/* Whether the real path `real` is `root` or below it. */
static int inside(const char *root, const char *real) {
  size_t n = strlen(root);
  if (strncmp(real, root, n) != 0) return 0;
  return real[n] == '\0' || real[n] == '/' || (n > 0 && root[n - 1] == '/');
}

int serve_repo_root(const char *dir, char *root, size_t n) {
  char buf[PATH_MAX];
  if (!dir[0] || !realpath(dir, buf) || strlen(buf) >= n) return -1;
  snprintf(root, n, "%s", buf);
  return 0;
}

int serve_repo_confine(const char *root, const char *path, char *out, size_t n, char *err,
                       size_t errn) {
  char joined[2 * CH_PATH_MAX + 2], real[PATH_MAX], file[CH_PATH_MAX], real_file[PATH_MAX];
  if (!root[0]) {
    snprintf(err, errn, "no model repository: start the server with --model-repository DIR "
             "to allow loads");
    return 400;
  }
  if (!path[0] || has_dotdot(path)) {
    snprintf(err, errn, "'%s': a checkpoint path in the model repository, without '..'", path);
    return 400;
  }
  /* Relative paths name entries of the repository. */
  if (path[0] == '/') snprintf(joined, sizeof joined, "%s", path);
  else snprintf(joined, sizeof joined, "%s/%s", root, path);
  /* The directory's `latest` pointer is followed too, and checked again. */
  if (!realpath(joined, real) || !inside(root, real) ||
      ch_ckpt_resolve(real, file, sizeof file) != CH_OK || !realpath(file, real_file) ||
      !inside(root, real_file) || strlen(real_file) >= n) {
    snprintf(err, errn, "no checkpoint '%s' in the model repository %s", path, root);
    return 400;
  }
  snprintf(out, n, "%s", real_file);
  return 0;
}
