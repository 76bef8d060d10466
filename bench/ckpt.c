/* Checkpoint write and read throughput of ch_ckpt_save / ch_ckpt_write / ch_ckpt_read.
 *
 * The state is a model of large 2-D tensors (MLP-like WIDTH x WIDTH weights with biases, plus
 * one smaller head layer to reach the target) with its parameters and two AdamW moments
 * ("exp_avg", "exp_avg_sq"): params + 2 moments = --bytes (default 1 GiB) of fp32, filled with
 * random values. Each rank supplies its flat part [ch_part_offset, + ch_part_count) of the
 * layout, as in ZeRO-style sharded training. Every repetition times, the ranks lined up by a
 * barrier before each call and the slowest rank's time reported:
 *   save   ch_ckpt_save into a fresh directory: write, fsync of the file on every rank, rename,
 *          directory fsync, `latest` pointer -- what a training run pays, data on disk;
 *   read   ch_ckpt_read of the committed file after the page cache was dropped (--drop),
 *          including the CRC-32 verification of every tensor;
 *   write  ch_ckpt_write alone (no fsync; information: with 1 GiB and a roomy page cache this
 *          is the copy into the cache plus HDF5's own cost). The file is synced afterwards,
 *          untimed, so that its dirty pages do not slow the next measurement.
 * Before each timed write a scratch file of the same size is written and deleted, untimed
 * (warm_page_cache; --no-warm skips it), as bench/ckpt.sh does before dd's write.
 * What is read back is compared with what was written; a difference is a failure (exit 1).
 * --keep leaves the last committed checkpoint in DIR/save.
 * Throughput is payload bytes (tensor elements x 4, no padding or HDF5 metadata) / time, in
 * GB/s = 10^9 bytes/s. The dd peer runs in bench/ckpt.sh, interleaved with this program.
 *
 * Output: a header (machine, MPI, layout), one "rep" line per repetition, then one line
 *   RESULT ranks=N bytes=B save_s=.. read_s=.. write_s=.. (medians) file_bytes=.. drop=..
 * that bench/ckpt.sh parses.
 *
 *   mpirun -n 2 build/bench/ckpt [--dir DIR] [--bytes 1G] [--width 4096] [--reps 3]
 *                                [--drop auto|sysctl|fadvise|none] [--no-warm] [--keep] */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cohort/ckpt.h"
#include "cohort/comm.h"
#include "cohort/fs.h"
#include "cohort/runtime.h"
#include "cohort/tensor.h"
#include "common/bench_util.h"

/* Random fp32 in [-1, 1) from (buffer, flat index) alone, so the data do not depend on the
 * number of ranks. splitmix64. */
static float value_at(int buf, size_t i) {
  uint64_t z = (uint64_t)i * 3 + (uint64_t)buf + 0x9E3779B97F4A7C15ull * ((uint64_t)buf + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return (float)(int32_t)(uint32_t)(z >> 32) * (1.0f / 2147483648.0f);
}

/* Model: `layers` of width x width + bias, then one head of rows x width + bias so that
 * 3 * 4 bytes * params comes as close to `target` as whole rows allow. */
static int make_specs(size_t target, int64_t width, ch_param_spec **out) {
  int64_t want = (int64_t)(target / 12), per = width * width + width;
  int layers = (int)(want / per);
  int64_t rest = want - (int64_t)layers * per, head = rest / (width + 1);
  int n = 2 * layers + (head > 0 ? 2 : 0);
  ch_param_spec *s = calloc((size_t)n + 1, sizeof *s);
  if (!s) return -1;
  int k = 0;
  for (int u = 0; u <= layers; u++) {
    int64_t rows = u < layers ? width : head;
    if (rows <= 0) break;
    ch_param_spec *w = &s[k++], *b = &s[k++];
    snprintf(w->name, sizeof w->name, u < layers ? "layers.%d.weight" : "head.weight", u);
    snprintf(b->name, sizeof b->name, u < layers ? "layers.%d.bias" : "head.bias", u);
    w->ndim = 2, w->shape[0] = rows, w->shape[1] = width;
    b->ndim = 1, b->shape[0] = rows, b->no_decay = 1;
    w->dtype = b->dtype = CH_F32;
    w->init = b->init = CH_INIT_UNIFORM;
    w->init_scale = b->init_scale = 0.01f;
    w->unit = b->unit = u;
  }
  *out = s;
  return k;
}

/* Fraction of the file's pages in the page cache (mincore), or -1. */
static double resident_fraction(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  struct stat st;
  double frac = -1;
  if (fstat(fd, &st) == 0 && st.st_size > 0) {
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    if (m != MAP_FAILED) {
      long pg = sysconf(_SC_PAGESIZE);
      size_t np = ((size_t)st.st_size + (size_t)pg - 1) / (size_t)pg, in = 0;
      unsigned char *v = malloc(np);
      if (v && mincore(m, (size_t)st.st_size, v) == 0) {
        for (size_t i = 0; i < np; i++) in += v[i] & 1;
        frac = (double)in / (double)np;
      }
      free(v);
      munmap(m, (size_t)st.st_size);
    }
  }
  close(fd);
  return frac;
}

/* Empties the page cache of `path`: "sysctl" = sync + drop_caches (every clean page of the
 * machine), "fadvise" = fsync + POSIX_FADV_DONTNEED on the file only. "auto" tries sysctl then
 * fadvise. Returns the method that worked, or "none". Rank 0 only. */
static const char *drop_cache(const char *how, const char *path) {
  if (!strcmp(how, "none")) return "none";
  if (!strcmp(how, "auto") || !strcmp(how, "sysctl")) {
    sync();
    int fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
    int ok = fd >= 0 && write(fd, "3\n", 2) == 2;
    if (fd >= 0) close(fd);
    if (ok) return "sysctl";
    if (!strcmp(how, "sysctl")) return "none";
  }
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "none";
  int ok = fsync(fd) == 0 && posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0;
  close(fd);
  return ok ? "fadvise" : "none";
}

/* Writes `bytes` to a scratch file in `dir` without syncing, then deletes it: the page cache
 * pages come back to the free lists just before a timed write. On these VMs the balloon
 * driver's free page reporting hands free memory back to the host after ~2 s, and the next
 * write into the page cache then runs 3-10x slower (each page faults in the host); dd right
 * after another process exits gets recently freed pages. Warming both alike (ckpt.sh does the
 * same before dd) keeps the comparison fair. Rank 0 only. */
static void warm_page_cache(const char *dir, size_t bytes) {
  char p[CH_PATH_MAX + 32];
  snprintf(p, sizeof p, "%s/warm.tmp", dir);
  int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return;
  size_t chunk = (size_t)4 << 20;
  char *z = calloc(1, chunk);
  for (size_t done = 0; z && done < bytes;) {
    ssize_t w = write(fd, z, bytes - done < chunk ? bytes - done : chunk);
    if (w <= 0) break;
    done += (size_t)w;
  }
  free(z);
  close(fd);
  unlink(p);
}

static double max_over_ranks(const ch_group *g, double t) {
  if (ch_comm_allreduce(g, &t, 1, CH_F64, CH_MAX, NULL) != CH_OK)
    ch_runtime_fatal(CH_ERR_MPI, "allreduce of a time");
  return t;
}

static void barrier(const ch_group *g) {
  if (ch_comm_barrier(g, NULL) != CH_OK) ch_runtime_fatal(CH_ERR_MPI, "barrier");
}

static void remove_dir(const char *dir) {
  const char *names[] = {"latest", NULL};
  char p[CH_PATH_MAX * 2];
  for (int i = 0; names[i]; i++) {
    snprintf(p, sizeof p, "%s/%s", dir, names[i]);
    unlink(p);
  }
  char **paths;
  int n;
  if (ch_ckpt_list(dir, &paths, &n) == CH_OK) {
    for (int i = 0; i < n; i++) unlink(paths[i]);
    ch_ckpt_list_free(paths, n);
  }
  rmdir(dir);
}

int main(int argc, char **argv) {
  ch_runtime *rt;
  ch_status st = ch_runtime_init(&argc, &argv, NULL, &rt);
  if (st != CH_OK) ch_runtime_fatal(st, "runtime init");
  const char *tmp = getenv("TMPDIR");
  char dir[CH_PATH_MAX] = "";
  size_t target = (size_t)1 << 30;
  int64_t width = 4096;
  int reps = 3, keep = 0, warm = 1;
  const char *drop = "auto";
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--keep") || !strcmp(a, "--no-warm")) {
      *(!strcmp(a, "--keep") ? &keep : &warm) = !strcmp(a, "--keep");
      continue;
    }
    if (!v) goto usage;
    if (!strcmp(a, "--dir")) snprintf(dir, sizeof dir, "%s", v);
    else if (!strcmp(a, "--bytes")) target = bench_parse_size(v);
    else if (!strcmp(a, "--width")) width = atoll(v);
    else if (!strcmp(a, "--reps")) reps = atoi(v);
    else if (!strcmp(a, "--drop")) drop = v;
    else goto usage;
    i++;
  }
  if (reps < 1 || width < 1 || target < (size_t)12 * (size_t)(width + 1)) goto usage;
  if (strcmp(drop, "auto") && strcmp(drop, "sysctl") && strcmp(drop, "fadvise") && strcmp(drop, "none"))
    goto usage;
  if (!dir[0]) snprintf(dir, sizeof dir, "%s/cohort-ckpt-bench", tmp && *tmp ? tmp : "/tmp");

  ch_group g;
  st = ch_group_world(&g);
  if (st != CH_OK) ch_runtime_fatal(st, "group");
  int me = g.rank, n = g.size;

  ch_param_spec *specs;
  int nspec = make_specs(target, width, &specs);
  if (nspec <= 0) ch_runtime_fatal(CH_ERR_NOMEM, "spec table");
  ch_layout l;
  st = ch_layout_create(specs, nspec, &l);
  if (st != CH_OK) ch_runtime_fatal(st, "layout");
  size_t payload = 0; /* stored bytes: tensor elements of the 3 buffers, without padding */
  for (int p = 0; p < l.nparams; p++) payload += (size_t)ch_param_numel(&l.params[p]) * 3 * sizeof(float);
  size_t lo = ch_part_offset(l.numel, n, me), cnt = ch_part_count(l.numel, n, me);

  enum { NB = 3 };
  const char *kinds[NB] = {NULL, "exp_avg", "exp_avg_sq"};
  float *wdata[NB], *rdata[NB];
  ch_ckpt_buffer wb[NB], rb[NB];
  ch_segment seg;
  ch_shard own = ch_shard_range(&seg, lo, lo + cnt);
  for (int b = 0; b < NB; b++) {
    wdata[b] = malloc(cnt * sizeof(float) + 1);
    rdata[b] = malloc(cnt * sizeof(float) + 1);
    if (!wdata[b] || !rdata[b]) ch_runtime_fatal(CH_ERR_NOMEM, "buffers of %zu floats", cnt);
    for (size_t i = 0; i < cnt; i++) wdata[b][i] = value_at(b, lo + i);
    memset(rdata[b], 0, cnt * sizeof(float));
    wb[b] = (ch_ckpt_buffer){kinds[b], wdata[b], CH_ADDR_PACKED};
    rb[b] = (ch_ckpt_buffer){kinds[b], rdata[b], CH_ADDR_PACKED};
  }
  /* Padding elements must be 0 (the reader zeroes them), so compare like with like. */
  for (int b = 0; b < NB; b++)
    for (int p = 0; p < l.nparams; p++) {
      size_t a = l.offsets[p] + (size_t)ch_param_numel(&l.params[p]);
      size_t e = p + 1 < l.nparams ? l.offsets[p + 1] : l.numel;
      for (size_t i = a < lo ? lo : a; i < e && i < lo + cnt; i++) wdata[b][i - lo] = 0;
    }

  char created[32] = "2024-01-01T00:00:00Z", version[32] = "bench";
  ch_ckpt_meta meta = {.step = 0, .samples = 0, .seed = 1, .world_size = n};
  snprintf(meta.strategy, sizeof meta.strategy, "zero1");
  snprintf(meta.version, sizeof meta.version, "%s", version);
  snprintf(meta.created, sizeof meta.created, "%s", created);
  ch_ckpt_policy policy = {.keep_last = 1, .keep_every = 0};

  if (me == 0) {
    char model[256], mpiv[MPI_MAX_LIBRARY_VERSION_STRING];
    int vlen = 0;
    bench_cpu_model(model, sizeof model);
    MPI_Get_library_version(mpiv, &vlen);
    mpiv[strcspn(mpiv, "\n,")] = '\0';
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    printf("# ckpt: %d ranks, %s, %ld cores online%s; %s\n", n, model, cores,
           n > cores ? " (OVERSUBSCRIBED)" : "", mpiv);
    printf("# state: %d tensors (%d units of a %" PRId64 "-wide weight + bias, the last shorter), "
           "%zu params x 3 buffers"
           " (params, exp_avg, exp_avg_sq) = %zu bytes; dir %s; drop %s; page cache warmed before "
           "writes: %s; reps %d\n", l.nparams, l.nunits, width, payload / 12, payload, dir, drop,
           warm ? "yes" : "no", reps);
    fflush(stdout);
  }

  double *t_save = calloc((size_t)reps, sizeof(double)), *t_read = calloc((size_t)reps, sizeof(double));
  double *t_write = calloc((size_t)reps, sizeof(double));
  long long file_bytes = 0;
  const char *dropped = "none";
  int bad = 0;
  char sdir[CH_PATH_MAX + 32], wpath[CH_PATH_MAX + 32], committed[CH_PATH_MAX * 2 + 32];
  snprintf(sdir, sizeof sdir, "%s/save", dir);
  snprintf(wpath, sizeof wpath, "%s/write-only.h5", dir);
  if (me == 0) {
    if (ch_mkdir_p(dir) != CH_OK) ch_runtime_fatal(CH_ERR_IO, "cannot create %s", dir);
    remove_dir(sdir);
    unlink(wpath);
  }
  for (int r = 0; r < reps; r++) {
    /* save: a fresh directory every time */
    meta.step = r + 1;
    if (me == 0 && warm) warm_page_cache(dir, payload);
    barrier(&g);
    double t0 = ch_time();
    st = ch_ckpt_save(&g, sdir, &policy, &l, wb, NB, &own, &meta, committed, sizeof committed);
    double ts = max_over_ranks(&g, ch_time() - t0);
    if (st != CH_OK) ch_runtime_fatal(st, "ch_ckpt_save");
    double resident = -1;
    if (me == 0) {
      struct stat sb;
      if (stat(committed, &sb) == 0) file_bytes = (long long)sb.st_size;
      dropped = drop_cache(drop, committed);
      resident = resident_fraction(committed);
    }
    /* read, from disk when the cache could be dropped */
    barrier(&g);
    t0 = ch_time();
    ch_ckpt_meta got;
    st = ch_ckpt_read(&g, committed, &l, rb, NB, &own, &got);
    double tr = max_over_ranks(&g, ch_time() - t0);
    if (st != CH_OK) ch_runtime_fatal(st, "ch_ckpt_read");
    int32_t diff = got.step != meta.step;
    ch_ckpt_meta_free(&got);
    for (int b = 0; b < NB; b++) {
      diff |= memcmp(wdata[b], rdata[b], cnt * sizeof(float)) != 0;
      memset(rdata[b], 0, cnt * sizeof(float));
    }
    if (ch_comm_allreduce(&g, &diff, 1, CH_I32, CH_MAX, NULL) != CH_OK)
      ch_runtime_fatal(CH_ERR_MPI, "allreduce");
    bad |= diff;
    /* write alone, into the page cache; synced afterwards, untimed */
    if (me == 0 && warm) warm_page_cache(dir, payload);
    barrier(&g);
    t0 = ch_time();
    st = ch_ckpt_write(&g, wpath, &l, wb, NB, &own, &meta);
    double tw = max_over_ranks(&g, ch_time() - t0);
    if (st != CH_OK) ch_runtime_fatal(st, "ch_ckpt_write");
    if (me == 0) {
      int fd = open(wpath, O_RDONLY | O_CLOEXEC);
      if (fd >= 0) fsync(fd), close(fd);
      unlink(wpath);
      if (!keep || r + 1 < reps) remove_dir(sdir);
      sync();
    }
    barrier(&g);
    t_save[r] = ts, t_read[r] = tr, t_write[r] = tw;
    if (me == 0) {
      printf("rep %d: save %.3f s = %.3f GB/s | read %.3f s = %.3f GB/s (cache dropped: %s, "
             "resident before read %.0f%%) | write-only %.3f s = %.3f GB/s%s\n",
             r + 1, ts, payload / ts / 1e9, tr, payload / tr / 1e9, dropped,
             resident < 0 ? -1.0 : 100 * resident, tw, payload / tw / 1e9, diff ? "  READ-BACK MISMATCH" : "");
      fflush(stdout);
    }
  }
  double ms = bench_median(t_save, reps), mr = bench_median(t_read, reps), mw = bench_median(t_write, reps);
  if (me == 0) {
    printf("median of %d: save %.3f GB/s, read %.3f GB/s, write-only %.3f GB/s; file %lld bytes "
           "(payload %zu)\n", reps, payload / ms / 1e9, payload / mr / 1e9, payload / mw / 1e9,
           file_bytes, payload);
    printf("RESULT ranks=%d bytes=%zu save_s=%.6f read_s=%.6f write_s=%.6f file_bytes=%lld "
           "drop=%s ok=%d\n", n, payload, ms, mr, mw, file_bytes, dropped, !bad);
    if (bad) fprintf(stderr, "ckpt: data read back differ from what was written\n");
  }
  for (int b = 0; b < NB; b++) free(wdata[b]), free(rdata[b]);
  free(t_save), free(t_read), free(t_write), free(specs);
  ch_layout_destroy(&l);
  ch_group_destroy(&g);
  ch_runtime_finalize();
  return bad ? 1 : 0;
usage:
  if (ch_runtime_get() && ch_runtime_get()->world_rank == 0)
    fprintf(stderr, "usage: ckpt [--dir DIR] [--bytes 1G] [--width 4096] [--reps 3] "
                    "[--drop auto|sysctl|fadvise|none] [--no-warm] [--keep]\n");
  ch_runtime_finalize();
  return 2;
}
