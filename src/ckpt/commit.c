/* Atomic commit, the `latest` pointer, retention, and listing of checkpoint directories.
 * Commit protocol: every rank writes its part of step-XXXXXXXX.h5.partial; the file is closed
 * and fsynced; rank 0 renames it to step-XXXXXXXX.h5 and fsyncs the directory (the checkpoint
 * now exists, whole), then replaces `latest` atomically and prunes. A crash at any point leaves
 * either the old set of checkpoints or the new one, plus perhaps a .partial file that resume
 * ignores and the next save removes. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckpt/ckpt_internal.h"
#include "cohort/fs.h"
#include "cohort/log.h"

/* Step of a committed checkpoint's file name "step-<digits>.h5", or -1. */
static int64_t step_of(const char *name) {
  int64_t step;
  int end = 0;
  if (sscanf(name, "step-%" SCNd64 ".h5%n", &step, &end) == 1 && end > 0 && name[end] == '\0' &&
      step >= 0)
    return step;
  return -1;
}

typedef struct entry {
  int64_t step;
  char *path;
} entry;

static int newest_first(const void *x, const void *y) {
  const entry *a = x, *b = y;
  return (a->step < b->step) - (a->step > b->step);
}

ch_status ch_ckpt_list(const char *dir, char ***paths, int *n) {
  *paths = NULL;
  *n = 0;
  DIR *d = opendir(dir);
  if (!d) {
    if (errno == ENOENT) return CH_OK;
    return CH_FAIL(CH_ERR_IO, "cannot list checkpoint directory %s: %s", dir, strerror(errno));
  }
  entry *e = NULL;
  int cnt = 0, cap = 0;
  ch_status st = CH_OK;
  for (struct dirent *de; (de = readdir(d));) {
    int64_t step = step_of(de->d_name);
    if (step < 0) continue;
    if (cnt == cap) {
      cap = cap ? 2 * cap : 16;
      entry *ne = realloc(e, sizeof *e * (size_t)cap);
      if (!ne) {
        st = CH_FAIL(CH_ERR_NOMEM, "checkpoint list");
        break;
      }
      e = ne;
    }
    size_t len = strlen(dir) + strlen(de->d_name) + 2;
    e[cnt].step = step;
    e[cnt].path = malloc(len);
    if (!e[cnt].path) {
      st = CH_FAIL(CH_ERR_NOMEM, "checkpoint list");
      break;
    }
    snprintf(e[cnt].path, len, "%s/%s", dir, de->d_name);
    cnt++;
  }
  closedir(d);
  if (st == CH_OK && cnt > 0) {
    qsort(e, (size_t)cnt, sizeof *e, newest_first);
    *paths = malloc(sizeof **paths * (size_t)cnt);
    if (!*paths) st = CH_FAIL(CH_ERR_NOMEM, "checkpoint list");
  }
  for (int i = 0; i < cnt; i++) {
    if (st == CH_OK) (*paths)[i] = e[i].path;
    else free(e[i].path);
  }
  if (st == CH_OK) *n = cnt;
  free(e);
  return st;
}

void ch_ckpt_list_free(char **paths, int n) {
  for (int i = 0; i < n; i++) free(paths[i]);
  free(paths);
}

/* Removes leftovers of interrupted saves ("*.partial"). Rank 0 only. */
static void remove_partials(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  for (struct dirent *de; (de = readdir(d));) {
    size_t len = strlen(de->d_name);
    if (len > 8 && !strcmp(de->d_name + len - 8, ".partial")) {
      char p[CH_PATH_MAX * 2];
      snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
      if (unlink(p) == 0) CH_WARN("removed %s, left by an interrupted checkpoint", p);
    }
  }
  closedir(d);
}

/* Checkpoints this process committed (rank 0), the only ones retention may delete: files of an
 * earlier run in the same directory (the run this one resumed, or one it starts fresh over
 * with run.resume=never) are never deleted, since a run that cannot read them must not be
 * able to destroy them. */
static struct {
  char **v;
  int n, cap, told;
} g_written;

static void remember(const char *path) {
  if (g_written.n == g_written.cap) {
    int cap = g_written.cap ? 2 * g_written.cap : 16;
    char **v = realloc(g_written.v, sizeof *v * (size_t)cap);
    if (!v) return; /* then it is never deleted: the safe side */
    g_written.v = v;
    g_written.cap = cap;
  }
  if ((g_written.v[g_written.n] = strdup(path))) g_written.n++;
}

/* Index of `path` among the files this process committed, or -1. */
static int written_here(const char *path) {
  for (int i = 0; i < g_written.n; i++)
    if (!strcmp(g_written.v[i], path)) return i;
  return -1;
}

static void forget(int i) {
  free(g_written.v[i]);
  g_written.v[i] = g_written.v[--g_written.n];
}

/* Deletes this run's committed checkpoints that the policy does not keep (keep_last counts this
 * run's files only); `keep` is never deleted, nor any file this run did not write. */
static void prune(const char *dir, const ch_ckpt_policy *policy, const char *keep) {
  char **paths;
  int n;
  if (ch_ckpt_list(dir, &paths, &n) != CH_OK) return;
  int removed = 0, own = 0, foreign = 0;
  for (int i = 0; i < n; i++) {
    int w = written_here(paths[i]);
    if (w < 0) {
      foreign++;
      continue;
    }
    const char *base = strrchr(paths[i], '/') + 1;
    int64_t step = step_of(base);
    int kept = own++ < policy->keep_last || !strcmp(paths[i], keep) ||
               (policy->keep_every > 0 && step % policy->keep_every == 0);
    if (kept) continue;
    if (unlink(paths[i]) == 0) {
      removed++;
      forget(w);
      CH_DEBUG("pruned %s", paths[i]);
    } else {
      CH_WARN("cannot remove old checkpoint %s: %s", paths[i], strerror(errno));
    }
  }
  if (foreign && !g_written.told) {
    g_written.told = 1;
    CH_INFO("retention: %d checkpoint%s in %s %s not written by this run and %s kept (retention "
            "deletes only this run's checkpoints; remove them by hand when no longer needed)",
            foreign, foreign == 1 ? "" : "s", dir, foreign == 1 ? "was" : "were",
            foreign == 1 ? "is" : "are");
  }
  if (removed) ch_fsync_parent_dir(paths[0]);
  ch_ckpt_list_free(paths, n);
}

/* fsync of the file from this rank: each rank flushes what it wrote (on a parallel file system
 * a client's dirty pages are its own). */
static ch_status sync_file(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return CH_FAIL(CH_ERR_IO, "cannot open %s to sync it: %s", path, strerror(errno));
  int rc = fsync(fd), err = errno;
  close(fd);
  if (rc != 0) return CH_FAIL(CH_ERR_IO, "cannot sync %s: %s", path, strerror(err));
  return CH_OK;
}

/* The status of rank 0's step, with its message, broadcast so every rank returns it. */
static ch_status from_root(const ch_group *g, ch_status st) {
  struct { int32_t code; char msg[508]; } r = {(int32_t)st, ""};
  if (g->rank == 0 && st != CH_OK) snprintf(r.msg, sizeof r.msg, "%s", ch_error_message());
  if (ch_comm_broadcast(g, &r, sizeof r, CH_U8, 0, NULL) != CH_OK)
    return CH_FAIL(CH_ERR_MPI, "checkpoint: broadcast of the commit status failed");
  if (g->rank != 0 && r.code != CH_OK) return CH_FAIL((ch_status)r.code, "rank 0: %s", r.msg);
  return st;
}

ch_status ch_ckpt_save(const ch_group *g, const char *dir, const ch_ckpt_policy *policy,
                       const ch_layout *l, const ch_ckpt_buffer *bufs, int nbufs,
                       const ch_shard *own, const ch_ckpt_meta *meta, char *out, size_t out_size) {
  char final[CH_PATH_MAX * 2], partial[CH_PATH_MAX * 2 + 16];
  snprintf(final, sizeof final, "%s/step-%08" PRId64 ".h5", dir, meta->step);
  snprintf(partial, sizeof partial, "%s.partial", final);
  ch_status st = CH_OK;
  if (g->rank == 0) {
    st = ch_mkdir_p(dir);
    if (st == CH_OK) remove_partials(dir);
    if (st == CH_OK) st = ckpt_space_check(dir, (double)nbufs * (double)l->numel * sizeof(float));
  }
  CH_CHECK(from_root(g, st));
  st = ch_ckpt_write(g, partial, l, bufs, nbufs, own, meta);
  if (st == CH_OK) st = sync_file(partial);
  int32_t failed = st != CH_OK;
  if (ch_comm_allreduce(g, &failed, 1, CH_I32, CH_MAX, NULL) != CH_OK)
    return CH_FAIL(CH_ERR_MPI, "checkpoint: agreement after writing failed");
  if (failed) {
    if (g->rank == 0) unlink(partial);
    ch_comm_barrier(g, NULL); /* no rank returns before the partial file is gone */
    return st != CH_OK ? st : CH_FAIL(CH_ERR_IO, "%s: writing failed on another rank", partial);
  }
  if (g->rank == 0) {
    if (rename(partial, final) != 0) {
      st = CH_FAIL(CH_ERR_IO, "cannot rename %s to %s: %s", partial, final, strerror(errno));
      unlink(partial);
    }
    if (st == CH_OK) st = ch_fsync_parent_dir(final);
    if (st == CH_OK) {
      /* The pointer names the file relative to the directory, so the directory can move. */
      char pointer[CH_PATH_MAX * 2 + 8], text[64];
      snprintf(pointer, sizeof pointer, "%s/latest", dir);
      int len = snprintf(text, sizeof text, "%s\n", strrchr(final, '/') + 1);
      st = ch_write_file_atomic(pointer, text, (size_t)len);
      if (st != CH_OK) { /* the file is whole and verified: keep it; say where things stand */
        char why[512];
        snprintf(why, sizeof why, "%s", ch_error_message());
        st = CH_FAIL(st, "%s is committed, but `latest` still names the previous checkpoint "
                     "(run.resume=auto takes the newest readable file): %s", final, why);
      }
    }
    if (st == CH_OK) {
      if (written_here(final) < 0) remember(final);
      prune(dir, policy, final);
    }
  }
  CH_CHECK(from_root(g, st));
  if (out) snprintf(out, out_size, "%s", final);
  return CH_OK;
}
