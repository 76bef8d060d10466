/* The model repository (src/serve/repo.c): which paths the load endpoint may name (issue 12,
 * item 11: it used to open any path, /etc/passwd included, and report the file's type).
 *  - inside: a file by relative and absolute path, a directory through its `latest`, a
 *    symbolic link that stays inside;
 *  - refused with one message that never says whether the file exists: an absolute path
 *    outside, a missing file outside, '..' anywhere, a symbolic link out of the tree, a
 *    `latest` naming a file outside, a sibling directory whose name has the root's as a prefix;
 *  - no repository (serving from memory): every load refused.
 * One process, no MPI; a temporary directory tree. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "serve/server.h"
#include "testlib.h"

static char g_base[64], g_root[512], g_err[1024], g_out[512];

/* base/fmt... as a path (a static buffer per call site's use). */
static const char *at(char *buf, size_t n, const char *fmt, ...) {
  char rel[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(rel, sizeof rel, fmt, ap);
  va_end(ap);
  snprintf(buf, n, "%s/%s", g_base, rel);
  return buf;
}

static void put(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  CHT_ASSERT(f && fputs(text, f) >= 0 && fclose(f) == 0, "write %s", path);
}

static int confine(const char *root, const char *path) {
  g_out[0] = g_err[0] = '\0';
  return serve_repo_confine(root, path, g_out, sizeof g_out, g_err, sizeof g_err);
}

static void allowed(const char *path, const char *want) {
  CHT_ASSERT(confine(g_root, path) == 0, "%s must be allowed: %s", path, g_err);
  CHT_ASSERT(!strcmp(g_out, want), "%s resolves to %s, expected %s", path, g_out, want);
}

static void refused(const char *path, const char *what) {
  CHT_ASSERT(confine(g_root, path) == 400 && !g_out[0], "%s: %s must be refused (got '%s')", what,
             path, g_out);
  CHT_ASSERT(strstr(g_err, "no checkpoint '") || strstr(g_err, "without '..'"),
             "%s: unexpected message '%s'", what, g_err);
  CHT_ASSERT(!strstr(g_err, "signature") && !strstr(g_err, "exist") && !strstr(g_err, "denied") &&
             !strstr(g_err, "directory"), "%s: the message '%s' tells what the path is", what, g_err);
}

int main(void) {
  char p[1024], q[1024];
  snprintf(g_base, sizeof g_base, "/tmp/cohort-repo-XXXXXX");
  CHT_ASSERT(mkdtemp(g_base) != NULL, "mkdtemp");
  CHT_ASSERT(realpath(g_base, p) && strlen(p) < sizeof g_base, "realpath");
  snprintf(g_base, sizeof g_base, "%s", p); /* /tmp may itself be a link */
  const char *dirs[] = {"repo", "repo/sub", "repo/out", "repo2"};
  for (int i = 0; i < 4; i++) CHT_ASSERT(mkdir(at(p, sizeof p, "%s", dirs[i]), 0700) == 0, "mkdir");
  CHT_ASSERT(serve_repo_root(at(p, sizeof p, "repo"), g_root, sizeof g_root) == 0, "root");
  put(at(p, sizeof p, "repo/step-1.h5"), "x");
  put(at(p, sizeof p, "repo/sub/step-2.h5"), "x");
  put(at(p, sizeof p, "repo/sub/latest"), "step-2.h5\n");
  put(at(p, sizeof p, "repo/out/latest"), "/etc/passwd\n");
  put(at(p, sizeof p, "repo2/step-3.h5"), "x");
  put(at(p, sizeof p, "secret.h5"), "x");
  CHT_ASSERT(symlink("/etc/passwd", at(p, sizeof p, "repo/evil")) == 0, "symlink");
  CHT_ASSERT(symlink(g_base, at(p, sizeof p, "repo/up")) == 0, "symlink");
  CHT_ASSERT(symlink("sub/step-2.h5", at(p, sizeof p, "repo/ok")) == 0, "symlink");

  allowed("step-1.h5", at(q, sizeof q, "repo/step-1.h5"));
  allowed(at(p, sizeof p, "repo/step-1.h5"), at(q, sizeof q, "repo/step-1.h5"));
  allowed("sub", at(q, sizeof q, "repo/sub/step-2.h5"));
  allowed(at(p, sizeof p, "repo/sub/"), at(q, sizeof q, "repo/sub/step-2.h5"));
  allowed("ok", at(q, sizeof q, "repo/sub/step-2.h5"));

  refused("/etc/passwd", "an absolute path outside");
  refused("/etc/no-such-file", "a missing file outside");
  refused(at(p, sizeof p, "secret.h5"), "the repository's parent");
  refused(at(p, sizeof p, "repo2/step-3.h5"), "a sibling sharing the root's name as a prefix");
  refused("../secret.h5", "'..'");
  refused("sub/../step-1.h5", "'..' that stays inside");
  refused("..", "'..' alone");
  refused("evil", "a link to /etc/passwd");
  refused("up/secret.h5", "a link to the parent directory");
  refused("out", "a `latest` naming a file outside");
  refused("missing.h5", "a missing file inside");
  refused(g_root, "the root without a `latest`");
  refused("", "an empty path");
  /* "..." and "a..b" are ordinary names: only a whole ".." component is refused. */
  put(at(p, sizeof p, "repo/a..b"), "x");
  allowed("a..b", at(q, sizeof q, "repo/a..b"));

  CHT_ASSERT(confine("", "step-1.h5") == 400 && strstr(g_err, "--model-repository"),
             "no repository: every load refused (%s)", g_err);
  CHT_ASSERT(serve_repo_root(at(p, sizeof p, "no-such-dir"), q, sizeof q) == -1, "missing root");
  char cmd[256];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_base);
  CHT_ASSERT(system(cmd) == 0, "cleanup");
  printf("model repository: %s\n", g_root);
  return 0;
}
