/* Checkpoint files across ranks: write with one partition of the flat layout, read back with
 * another (resharding), bit for bit; the transfers are collective (H5Pget_mpio_actual_io_mode);
 * metadata round-trips; corruption, truncation, a wrong shape and a foreign file are reported
 * naming the file and dataset on every rank; retention keeps what the policy says; an
 * unusable directory fails cleanly and leaves the previous checkpoint and `latest` intact
 * (running out of space: tests/ckpt/test_ckpt_disk_full.sh). */
#include <fcntl.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckpt/ckpt_internal.h"
#include "cohort/cohort.h"
#include "testlib.h"

/* The one-segment shard [lo, hi) (a compound literal: valid for the enclosing call). */
#define SHARD(lo, hi) (&(ch_shard){&(ch_segment){(lo), (hi) - (lo), 0}, 1, (hi) - (lo)})

static ch_group g;
static char dir[512];

static const ch_param_spec k_specs[] = {
  {.name = "emb.weight", .ndim = 2, .shape = {37, 13}, .unit = 0},
  {.name = "blk.0.w", .ndim = 3, .shape = {3, 7, 5}, .unit = 1},
  {.name = "blk.0.b", .ndim = 1, .shape = {7}, .unit = 1, .no_decay = 1},
  {.name = "head.w", .ndim = 2, .shape = {10, 37}, .unit = 2},
};
#define NSPECS 4

/* Flat buffers with random values in every parameter element and 0 in padding. */
static float *make_buffer(const ch_layout *l, uint64_t stream) {
  float *x = calloc(l->numel, sizeof *x);
  for (int p = 0; p < l->nparams; p++)
    cht_fill_uniform(x + l->offsets[p], (size_t)ch_param_numel(&l->params[p]), 99, stream * 16 + (uint64_t)p);
  return x;
}

static void my_range(const ch_layout *l, int as_rank, size_t *lo, size_t *hi) {
  *lo = ch_part_offset(l->numel, g.size, as_rank);
  *hi = *lo + ch_part_count(l->numel, g.size, as_rank);
}

static ch_ckpt_meta make_meta(int64_t step, double *losses) {
  ch_ckpt_meta m = {.step = step, .samples = step * 64, .epoch = step * 0.5, .seed = 7,
                    .optim_steps = step, .world_size = g.size, .config = "model:\n  type: mlp\n",
                    .interval_losses = losses, .n_interval_losses = 3};
  snprintf(m.strategy, sizeof m.strategy, "ddp");
  snprintf(m.version, sizeof m.version, "test");
  snprintf(m.created, sizeof m.created, "2026-01-01T00:00:00Z");
  return m;
}

/* Reads `path` with rank r taking rank (n-1-r)'s part, expecting `want` (3 buffers). */
static ch_status read_reversed(const ch_layout *l, const char *path, float **want, ch_ckpt_meta *m) {
  size_t lo, hi;
  my_range(l, g.size - 1 - g.rank, &lo, &hi);
  float *got[3];
  ch_ckpt_buffer bufs[3];
  const char *kinds[3] = {NULL, "exp_avg", "exp_avg_sq"};
  for (int b = 0; b < 3; b++) {
    got[b] = malloc(l->numel * sizeof(float));
    for (size_t i = 0; i < l->numel; i++) got[b][i] = -7.0f; /* must be overwritten */
    bufs[b] = (ch_ckpt_buffer){kinds[b], got[b], CH_ADDR_FLAT};
  }
  ch_status st = ch_ckpt_read(&g, path, l, bufs, 3, SHARD(lo, hi), m);
  if (st == CH_OK && want)
    for (int b = 0; b < 3; b++)
      CHT_ASSERT(!memcmp(got[b] + lo, want[b] + lo, (hi - lo) * sizeof(float)),
                 "buffer %d differs after the round trip", b);
  for (int b = 0; b < 3; b++) free(got[b]);
  return st;
}

static void expect_fail(ch_status st, ch_status code, const char *needle) {
  CHT_ASSERT(st == code, "expected %s, got %s (%s)", ch_status_str(code), ch_status_str(st),
             st == CH_OK ? "" : ch_error_message());
  CHT_ASSERT(strstr(ch_error_message(), needle), "message lacks '%s': %s", needle, ch_error_message());
}

/* Serial: byte offset of a dataset's data in the file. */
static haddr_t data_offset(const char *path, const char *name) {
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
  haddr_t off = H5Dget_offset(d);
  H5Dclose(d);
  H5Fclose(f);
  return off;
}

static void copy_file(const char *from, const char *to, off_t limit) {
  FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
  CHT_ASSERT(in && out, "copy %s", from);
  char buf[4096];
  off_t done = 0;
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, in)) > 0 && (limit < 0 || done < limit)) {
    if (limit >= 0 && done + (off_t)n > limit) n = (size_t)(limit - done);
    fwrite(buf, 1, n, out);
    done += (off_t)n;
  }
  fclose(in);
  fclose(out);
}

static void read_latest(char *out, size_t size) {
  char p[600];
  snprintf(p, sizeof p, "%s/latest", dir);
  FILE *f = fopen(p, "r");
  CHT_ASSERT(f && fgets(out, (int)size, f), "cannot read %s", p);
  fclose(f);
}

int main(int argc, char **argv) {
  ch_runtime *rt;
  CHT_OK(ch_runtime_init(&argc, &argv, NULL, &rt));
  CHT_OK(ch_group_world(&g));
  if (g.rank == 0) {
    snprintf(dir, sizeof dir, "/tmp/cohort-ckpt-XXXXXX");
    CHT_ASSERT(mkdtemp(dir), "mkdtemp");
  }
  CHT_OK(ch_comm_broadcast(&g, dir, sizeof dir, CH_U8, 0, NULL));
  ch_layout l;
  CHT_OK(ch_layout_create(k_specs, NSPECS, &l));
  float *want[3] = {make_buffer(&l, 1), make_buffer(&l, 2), make_buffer(&l, 3)};
  ch_ckpt_buffer bufs[3] = {{NULL, want[0], CH_ADDR_FLAT}, {"exp_avg", want[1], CH_ADDR_FLAT}, {"exp_avg_sq", want[2], CH_ADDR_FLAT}};
  double losses[3] = {1.5, 2.25, 3.125};
  ch_ckpt_policy keep = {2, 3};
  size_t lo, hi;
  my_range(&l, g.rank, &lo, &hi);

  /* Round trip with another partition, metadata, collective transfers. */
  ckpt_io_stats before = ckpt_get_io_stats();
  char path[600];
  ch_ckpt_meta m = make_meta(1, losses);
  CHT_OK(ch_ckpt_save(&g, dir, &keep, &l, bufs, 3, SHARD(lo, hi), &m, path, sizeof path));
  ch_ckpt_meta r;
  CHT_OK(read_reversed(&l, path, want, &r));
  CHT_ASSERT(r.step == 1 && r.samples == 64 && r.epoch == 0.5 && r.seed == 7 && r.optim_steps == 1 &&
             r.world_size == g.size && !strcmp(r.strategy, "ddp") && !strcmp(r.config, m.config) &&
             r.n_interval_losses == 3 && r.interval_losses[2] == 3.125, "metadata did not round-trip");
  ch_ckpt_meta_free(&r);
  ckpt_io_stats after = ckpt_get_io_stats();
  CHT_ASSERT(after.independent == before.independent && after.collective - before.collective == 24,
             "transfers: %lld collective, %lld independent (want 24 collective: 12 datasets "
             "written + 12 read)", (long long)(after.collective - before.collective),
             (long long)(after.independent - before.independent));

  /* Retention: keep_last 2 plus multiples of 3. */
  for (int64_t s = 2; s <= 7; s++) {
    m = make_meta(s, losses);
    CHT_OK(ch_ckpt_save(&g, dir, &keep, &l, bufs, 3, SHARD(lo, hi), &m, path, sizeof path));
  }
  char **paths;
  int n;
  CHT_OK(ch_ckpt_list(dir, &paths, &n));
  CHT_ASSERT(n == 3 && strstr(paths[0], "step-00000007.h5") && strstr(paths[1], "step-00000006.h5") &&
             strstr(paths[2], "step-00000003.h5"), "retention kept %d files (newest %s)", n, n ? paths[0] : "-");
  ch_ckpt_list_free(paths, n);
  char latest[64];
  read_latest(latest, sizeof latest);
  CHT_ASSERT(!strcmp(latest, "step-00000007.h5\n"), "latest is '%s'", latest);

  /* Corruption: one flipped byte inside head.w's data. */
  char bad[640], good[600];
  snprintf(good, sizeof good, "%s/step-00000007.h5", dir);
  snprintf(bad, sizeof bad, "%s/corrupt.h5", dir);
  if (g.rank == 0) {
    copy_file(good, bad, -1);
    haddr_t off = data_offset(bad, "/model/head.w") + 41;
    int fd = open(bad, O_RDWR);
    unsigned char c;
    CHT_ASSERT(pread(fd, &c, 1, (off_t)off) == 1, "pread");
    c ^= 0x10;
    CHT_ASSERT(pwrite(fd, &c, 1, (off_t)off) == 1, "pwrite");
    close(fd);
  }
  ch_comm_barrier(&g, NULL);
  expect_fail(read_reversed(&l, bad, NULL, &r), CH_ERR_FORMAT, "checksum mismatch in dataset /model/head.w");

  /* Truncation. */
  if (g.rank == 0) copy_file(good, bad, 3000);
  ch_comm_barrier(&g, NULL);
  ch_status st = read_reversed(&l, bad, NULL, &r);
  CHT_ASSERT(st == CH_ERR_IO || st == CH_ERR_FORMAT, "truncated file: %s", ch_status_str(st));
  CHT_ASSERT(strstr(ch_error_message(), "corrupt.h5"), "message lacks the file: %s", ch_error_message());

  /* A model whose tensor has another shape. */
  ch_param_spec other[NSPECS];
  memcpy(other, k_specs, sizeof other);
  other[3].shape[0] = 11;
  ch_layout l2;
  CHT_OK(ch_layout_create(other, NSPECS, &l2));
  float *big[3] = {make_buffer(&l2, 1), make_buffer(&l2, 2), make_buffer(&l2, 3)};
  ch_ckpt_buffer bufs2[3] = {{NULL, big[0], CH_ADDR_FLAT}, {"exp_avg", big[1], CH_ADDR_FLAT}, {"exp_avg_sq", big[2], CH_ADDR_FLAT}};
  size_t lo2 = ch_part_offset(l2.numel, g.size, g.rank), hi2 = lo2 + ch_part_count(l2.numel, g.size, g.rank);
  expect_fail(ch_ckpt_read(&g, good, &l2, bufs2, 3, SHARD(lo2, hi2), &r), CH_ERR_FORMAT, "/model/head.w has shape [10, 37]");

  /* A foreign HDF5 file. */
  if (g.rank == 0) {
    hid_t f = H5Fcreate(bad, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    H5Fclose(f);
  }
  ch_comm_barrier(&g, NULL);
  expect_fail(read_reversed(&l, bad, NULL, &r), CH_ERR_FORMAT, "not a cohort checkpoint");

  /* The previous checkpoint is still intact and named by `latest`. */
  read_latest(latest, sizeof latest);
  CHT_ASSERT(!strcmp(latest, "step-00000007.h5\n"), "latest changed to '%s'", latest);
  CHT_OK(read_reversed(&l, good, want, &r));
  ch_ckpt_meta_free(&r);

  /* A directory that cannot be created (its parent is a file). */
  char blocked[700];
  snprintf(blocked, sizeof blocked, "%s/latest/sub", dir);
  expect_fail(ch_ckpt_save(&g, blocked, &keep, &l, bufs, 3, SHARD(lo, hi), &m, path, sizeof path), CH_ERR_IO,
              "latest");

  ch_comm_barrier(&g, NULL);
  if (g.rank == 0) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHT_ASSERT(system(cmd) == 0, "cleanup");
    printf("ok: %d ranks: reshard round trip, collective I/O, corruption/truncation/shape/foreign "
           "detected, retention, bad directory leave the previous checkpoint\n", g.size);
  }
  for (int b = 0; b < 3; b++) free(want[b]), free(big[b]);
  ch_layout_destroy(&l);
  ch_layout_destroy(&l2);
  ch_group_destroy(&g);
  ch_runtime_finalize();
  return 0;
}
