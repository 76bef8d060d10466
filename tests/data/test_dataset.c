/* Parallel dataset reader on 1..4 ranks: each rank reads its own random rows (unsorted, repeats,
 * none at all) in one collective call and gets exactly the values the CSV held. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cohort/comm_mpi.h"
#include "cohort/comm.h"
#include "cohort/data.h"
#include "cohort/rng.h"
#include "cohort/runtime.h"
#include "testlib.h"

#define ROWS 1501
#define D 7
#define C 5

/* Value of feature j of CSV row r: exact in float32 and in "%.2f", never a round number. */
static float value(int64_t r, int j) {
  return (float)(r * 8 + j) + 0.25f * (float)(1 + ch_rng_below(5, 5, (uint64_t)(r * 8 + j), 3));
}
static int label(int64_t r) { return (int)((r * 3 + r / 7) % C); }

static void write_csv(const char *path) {
  FILE *f = fopen(path, "w");
  CHT_ASSERT(f, "cannot write %s", path);
  fprintf(f, "f0,f1,f2,f3,label,f4,f5,f6\n");
  for (int64_t r = 0; r < ROWS; r++) {
    for (int j = 0; j < D; j++) {
      if (j == 4) fprintf(f, "%d,", label(r));
      fprintf(f, "%.2f%s", (double)value(r, j), j + 1 < D ? "," : "\n");
    }
  }
  fclose(f);
}

/* Original CSV row of a dataset row, from its first feature. */
static int64_t original_row(const float *x) { return (int64_t)(x[0] / 8.0f); }

static void check_row(const float *x, int32_t y, int64_t r, const char *what, int64_t i) {
  for (int j = 0; j < D; j++)
    CHT_ASSERT(x[j] == value(r, j), "%s: entry %lld (row %lld) feature %d = %.9g, expected %.9g", what, (long long)i,
               (long long)r, j, (double)x[j], (double)value(r, j));
  CHT_ASSERT(y == label(r), "%s: entry %lld (row %lld) label %d, expected %d", what, (long long)i, (long long)r, y,
             label(r));
}

/* val_fraction 0: train row i is CSV row i, so every read can be checked exactly. */
static void check_random_reads(const ch_group *g, const char *path) {
  ch_dataset *ds;
  CHT_OK(ch_dataset_open(g, path, "train", &ds));
  CHT_ASSERT(ch_dataset_rows(ds) == ROWS && ch_dataset_features(ds) == D && ch_dataset_classes(ds) == C,
             "shape %lld x %lld, %d classes", (long long)ch_dataset_rows(ds), (long long)ch_dataset_features(ds),
             ch_dataset_classes(ds));
  int64_t *rows = malloc(sizeof *rows * ROWS);
  float *x = malloc(sizeof *x * ROWS * D);
  int32_t *y = malloc(sizeof *y * ROWS);
  for (int it = 0; it < 25; it++) {
    uint64_t stream = (uint64_t)(it * 64 + g->rank);
    int64_t n = (it + g->rank) % 4 == 0 ? 0 : 1 + (int64_t)ch_rng_below(11, stream, 0, 60);
    if (it == 1) { /* sorted, distinct, with runs: the direct path */
      n = 0;
      for (int64_t r = g->rank; r < ROWS; r++)
        if ((r / 4) % 3 != 1) rows[n++] = r;
    } else if (it == 2) { /* all rows, reversed, on rank 0 only */
      n = g->rank == 0 ? ROWS : 0;
      for (int64_t i = 0; i < n; i++) rows[i] = ROWS - 1 - i;
    } else if (it == 3 || it == 4) { /* hundreds of short runs, shuffled, with repeats */
      n = 0;
      for (int64_t r = 0; r < ROWS; r++)
        if (ch_rng_below(13, stream, (uint64_t)r, 2 + (uint64_t)g->rank % 3) == 0) rows[n++] = r;
      for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)ch_rng_below(14, stream, (uint64_t)i, (uint64_t)i + 1), t = rows[i];
        rows[i] = rows[j];
        rows[j] = t;
      }
      for (int64_t i = 0; i < 20 && n < ROWS; i++) rows[n++] = rows[i * 3];
    } else {
      for (int64_t i = 0; i < n; i++) {
        rows[i] = (int64_t)ch_rng_below(12, stream, (uint64_t)i + 1, ROWS);
        if (i >= 2 && i % 4 == 0) rows[i] = rows[i / 2]; /* repeats */
        if (it % 5 == 3 && i > 0) rows[i] = (rows[i - 1] + 1) % ROWS; /* consecutive runs */
      }
    }
    for (int64_t i = 0; i < n * D; i++) x[i] = -1.0f;
    CHT_OK(ch_dataset_read(ds, rows, n, n ? x : NULL, n ? y : NULL));
    for (int64_t i = 0; i < n; i++) check_row(x + i * D, y[i], rows[i], "train", i);
  }

  /* Bad rows on one rank: every rank gets the error and nobody hangs; the handle still works. */
  int last = g->size - 1;
  rows[0] = g->rank == last ? ROWS : 3;
  ch_status s = ch_dataset_read(ds, rows, 1, x, y);
  CHT_ASSERT(s == CH_ERR_INVALID, "out-of-range row: %s", ch_status_str(s));
  if (g->rank == last) CHT_ASSERT(strstr(ch_error_message(), "out of range"), "message: %s", ch_error_message());
  ch_error_clear();
  rows[0] = -1;
  CHT_ASSERT(ch_dataset_read(ds, rows, 1, x, y) == CH_ERR_INVALID, "negative row");
  ch_error_clear();
  rows[0] = 5;
  CHT_OK(ch_dataset_read(ds, rows, 1, x, y));
  check_row(x, y[0], 5, "after error", 0);
  free(rows);
  free(x);
  free(y);
  ch_dataset_close(ds);
}

/* A real split: train and val together hold every CSV row once, in file order. */
static void check_split(const ch_group *g, const char *path) {
  int seen[ROWS] = {0};
  const char *splits[2] = {"train", "val"};
  int64_t sizes[2];
  for (int s = 0; s < 2; s++) {
    ch_dataset *ds;
    CHT_OK(ch_dataset_open(g, path, splits[s], &ds));
    int64_t n = ch_dataset_rows(ds);
    sizes[s] = n;
    int64_t *rows = malloc(sizeof *rows * (size_t)n);
    float *x = malloc(sizeof *x * (size_t)n * D);
    int32_t *y = malloc(sizeof *y * (size_t)n);
    for (int64_t i = 0; i < n; i++) rows[i] = (2 * n - 1 - i + g->rank) % n; /* reversed, rotated */
    CHT_OK(ch_dataset_read(ds, rows, n, x, y));
    int64_t *orig = calloc((size_t)n, sizeof *orig);
    for (int64_t i = 0; i < n; i++) {
      int64_t r = original_row(x + i * D);
      CHT_ASSERT(r >= 0 && r < ROWS, "%s: unknown row", splits[s]);
      check_row(x + i * D, y[i], r, splits[s], i);
      orig[rows[i]] = r;
    }
    for (int64_t i = 0; i < n; i++) {
      CHT_ASSERT(i == 0 || orig[i] > orig[i - 1], "%s: not in file order at %lld", splits[s], (long long)i);
      seen[orig[i]]++;
    }
    free(rows);
    free(x);
    free(y);
    free(orig);
    ch_dataset_close(ds);
  }
  CHT_ASSERT(sizes[1] > ROWS / 4 && sizes[1] < ROWS / 3, "val has %lld rows", (long long)sizes[1]);
  for (int r = 0; r < ROWS; r++) CHT_ASSERT(seen[r] == 1, "row %d seen %d times", r, seen[r]);
}

static void check_open_errors(const ch_group *g, const char *dir, const char *h5, const char *csv) {
  char missing[300];
  snprintf(missing, sizeof missing, "%s/nothing.h5", dir);
  ch_dataset *ds = (ch_dataset *)1;
  ch_status s = ch_dataset_open(g, missing, "train", &ds);
  CHT_ASSERT(s == CH_ERR_IO && ds == NULL && strstr(ch_error_message(), missing), "missing file: %s: %s",
             ch_status_str(s), ch_error_message());
  s = ch_dataset_open(g, h5, "test", &ds);
  CHT_ASSERT(s == CH_ERR_FORMAT && strstr(ch_error_message(), "test"), "missing split: %s: %s", ch_status_str(s),
             ch_error_message());
  s = ch_dataset_open(g, csv, "train", &ds);
  CHT_ASSERT(s == CH_ERR_FORMAT && strstr(ch_error_message(), "not an HDF5 file"), "not HDF5: %s: %s",
             ch_status_str(s), ch_error_message());
  ch_error_clear();
}

/* String labels: every rank reads the same /class_names, in byte order; a file of integer
 * labels has none. */
static void check_class_names(const ch_group *g, const char *dir, const char *h5_ints) {
  char csv[300], h5[300];
  snprintf(csv, sizeof csv, "%s/named.csv", dir);
  snprintf(h5, sizeof h5, "%s/named.h5", dir);
  if (g->rank == 0) {
    FILE *f = fopen(csv, "w");
    CHT_ASSERT(f, "cannot write %s", csv);
    for (int r = 0; r < 40; r++) fprintf(f, "%d.5,\"%s\"\n", r, r % 3 == 0 ? "zeta" : r % 3 == 1 ? "\xc3\xa9t\xc3\xa9" : "alpha");
    fclose(f);
    ch_csv_opts o = {.label_column = -1, .val_fraction = 0.25, .seed = 3};
    CHT_OK(ch_data_csv_convert(csv, h5, &o, NULL));
  }
  MPI_Barrier(ch_group_mpi_comm(g));
  ch_dataset *ds;
  CHT_OK(ch_dataset_open(g, h5, "val", &ds));
  const char *const *names = ch_dataset_class_names(ds);
  CHT_ASSERT(ch_dataset_classes(ds) == 3 && names && !strcmp(names[0], "alpha") && !strcmp(names[1], "zeta") &&
                 !strcmp(names[2], "\xc3\xa9t\xc3\xa9"),
             "rank %d: class names", g->rank);
  ch_dataset_close(ds);
  CHT_OK(ch_dataset_open(g, h5_ints, "train", &ds));
  CHT_ASSERT(ch_dataset_class_names(ds) == NULL, "integer labels have no names");
  ch_dataset_close(ds);
}

int main(int argc, char **argv) {
  /* Through the runtime, so that whatever MPI settings it makes before MPI_Init are tested too.
   * COHORT_LOG=debug shows the MPI-IO mode of each read. */
  ch_runtime *rt;
  ch_runtime_opts ro = {.verbose = 0, .bind_cores = 0};
  CHT_OK(ch_runtime_init(&argc, &argv, &ro, &rt));
  ch_group g;
  CHT_OK(ch_group_world(&g));
  char dir[64] = "/tmp/cohort_test_dataset_XXXXXX", csv[128], h5a[128], h5b[128];
  cht_world_tmpdir(dir, sizeof dir);
  snprintf(csv, sizeof csv, "%s/rows.csv", dir);
  snprintf(h5a, sizeof h5a, "%s/all.h5", dir);
  snprintf(h5b, sizeof h5b, "%s/split.h5", dir);
  if (g.rank == 0) {
    write_csv(csv);
    ch_csv_opts all = {.label_column = 4, .val_fraction = 0, .seed = 1};
    ch_csv_opts split = {.label_column = 4, .val_fraction = 0.3, .seed = 2};
    CHT_OK(ch_data_csv_convert(csv, h5a, &all, NULL));
    CHT_OK(ch_data_csv_convert(csv, h5b, &split, NULL));
  }
  MPI_Barrier(ch_group_mpi_comm(&g));

  check_random_reads(&g, h5a);
  check_split(&g, h5b);
  check_open_errors(&g, dir, h5a, csv);
  check_class_names(&g, dir, h5a);

  cht_world_tmpdir_remove(dir);
  ch_group_destroy(&g);
  ch_runtime_finalize();
  return 0;
}
