/* The shared-directory check: does every rank see a directory as rank 0 wrote it?
 *
 * A run directory that is local to each node (a node's /tmp, a path that is a separate mount on
 * each host) does not fail when it is created: each node makes its own. It fails later and
 * badly: the first collective HDF5 create waits until the watchdog fires, with no hint of the
 * cause. So at start rank 0 writes a token file with content unique to this job, every rank
 * reads it back, and the job agrees on the result before anything else touches the directory. */
#include "cohort/runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cohort/fs.h"

#define TOKEN_NAME 64
#define TOKEN_TEXT 96

/* What rank 0 tells every rank: whether it could write the token, and what to look for. */
typedef struct token_msg {
  int ok;
  char name[TOKEN_NAME];  /* file name inside the directory */
  char text[TOKEN_TEXT];  /* its exact content */
  char error[1400];       /* rank 0's error when !ok */
} token_msg;

/* A rank's verdict, gathered at the first failing rank's root. */
typedef struct verdict {
  char host[64];
  char why[160];
} verdict;

static uint64_t job_nonce(void) {
  uint64_t v = 0;
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    if (read(fd, &v, sizeof v) != (ssize_t)sizeof v) v = 0;
    close(fd);
  }
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  /* Without /dev/urandom, time and pid still differ between two jobs using one directory. */
  return v ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 16);
}

/* Rank 0: creates the directory and writes the token (fsync'd and closed before any rank looks:
 * NFS's close-to-open consistency makes it visible to a later open on another node). */
static void write_token(const char *dir, token_msg *m) {
  uint64_t nonce = job_nonce();
  snprintf(m->name, sizeof m->name, ".cohort-shared-%016llx", (unsigned long long)nonce);
  char host[64] = "";
  gethostname(host, sizeof host - 1);
  snprintf(m->text, sizeof m->text, "%016llx %d %.60s", (unsigned long long)nonce, (int)getpid(),
           host);
  ch_status st = ch_mkdir_p(dir);
  if (st != CH_OK) {
    snprintf(m->error, sizeof m->error, "%s", ch_error_message());
    return;
  }
  char path[1200];
  snprintf(path, sizeof path, "%s/%s", dir, m->name);
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  size_t len = strlen(m->text);
  int ok = fd >= 0 && write(fd, m->text, len) == (ssize_t)len && fsync(fd) == 0;
  int err = errno;
  if (fd >= 0 && close(fd) != 0 && ok) {
    ok = 0;
    err = errno;
  }
  if (!ok) {
    if (fd >= 0) unlink(path);
    snprintf(m->error, sizeof m->error, "cannot write %s: %s", path, strerror(err));
    return;
  }
  m->ok = 1;
}

/* Every rank: 1 when the token reads back exactly; otherwise 0 and why. */
static int read_token(const char *dir, const token_msg *m, char *why, size_t cap) {
  char path[1200], buf[TOKEN_TEXT + 2];
  snprintf(path, sizeof path, "%s/%s", dir, m->name);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    snprintf(why, cap, "does not see the file rank 0 wrote there (%s)", strerror(errno));
    return 0;
  }
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  buf[n > 0 ? n : 0] = '\0';
  if (strcmp(buf, m->text) != 0) {
    snprintf(why, cap, "sees different content in the file rank 0 wrote there");
    return 0;
  }
  return 1;
}

ch_status ch_runtime_check_shared_dir(MPI_Comm comm, const char *key, const char *dir) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  if (size == 1) return CH_OK; /* nobody to disagree with */
  token_msg m;
  memset(&m, 0, sizeof m);
  if (rank == 0) write_token(dir, &m);
  if (MPI_Bcast(&m, (int)sizeof m, MPI_BYTE, 0, comm) != MPI_SUCCESS)
    return CH_FAIL(CH_ERR_MPI, "MPI_Bcast(shared-directory token) failed");
  if (!m.ok) return CH_FAIL(CH_ERR_CONFIG, "%s %s: %s", key, dir, m.error);

  verdict mine;
  memset(&mine, 0, sizeof mine);
  int ok = rank == 0 || read_token(dir, &m, mine.why, sizeof mine.why);
  /* The lowest failing rank speaks for all; `bad` counts the failing ranks. */
  int first = ok ? size : rank, bad = !ok, lowest = size, nbad = 0;
  if (MPI_Allreduce(&first, &lowest, 1, MPI_INT, MPI_MIN, comm) != MPI_SUCCESS ||
      MPI_Allreduce(&bad, &nbad, 1, MPI_INT, MPI_SUM, comm) != MPI_SUCCESS)
    return CH_FAIL(CH_ERR_MPI, "MPI_Allreduce(shared-directory verdict) failed");
  /* Every rank has read (or failed to) before rank 0 removes the token. */
  if (rank == 0) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, m.name);
    unlink(path);
  }
  if (lowest == size) return CH_OK;
  if (rank == lowest) gethostname(mine.host, sizeof mine.host - 1);
  if (MPI_Bcast(&mine, (int)sizeof mine, MPI_BYTE, lowest, comm) != MPI_SUCCESS)
    return CH_FAIL(CH_ERR_MPI, "MPI_Bcast(shared-directory verdict) failed");
  char others[48] = "";
  if (nbad > 1)
    snprintf(others, sizeof others, " (and %d other rank%s)", nbad - 1, nbad > 2 ? "s" : "");
  return CH_FAIL(CH_ERR_CONFIG,
                 "%s %s is not shared: rank %d on host %s%s %s; put %s on a filesystem every "
                 "node mounts",
                 key, dir, lowest, mine.host, others, mine.why, key);
}
