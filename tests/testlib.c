#include "testlib.h"

#include <math.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "cohort/rng.h"

void cht_fail(const char *file, int line, const char *fmt, ...) {
  int init = 0, fin = 0, rank = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  if (init && !fin) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "FAIL rank %d %s:%d: ", rank, file, line);
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  fflush(stderr);
  if (init && !fin) MPI_Abort(MPI_COMM_WORLD, 1);
  exit(1);
}

double cht_max_rel_err(const float *a, const float *b, size_t n, double floor) {
  double worst = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)a[i] - (double)b[i]);
    double r = d / fmax(fabs((double)b[i]), floor);
    if (!(r <= worst)) worst = r; /* NaN propagates as the worst */
  }
  return worst;
}

void cht_fill_uniform(float *x, size_t n, uint64_t seed, uint64_t stream) {
  for (size_t i = 0; i < n; i++) x[i] = 2.0f * ch_rng_uniform(seed, stream, i) - 1.0f;
}

void cht_world_tmpdir(char *dir, size_t size) {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank == 0) CHT_ASSERT(mkdtemp(dir), "mkdtemp %s", dir);
  MPI_Bcast(dir, (int)size, MPI_CHAR, 0, MPI_COMM_WORLD);
}

void cht_world_tmpdir_remove(const char *dir) {
  int rank = 0;
  MPI_Barrier(MPI_COMM_WORLD);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank != 0) return;
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  CHT_ASSERT(system(cmd) == 0, "cleanup of %s", dir);
}

void cht_gpt(ch_model_cfg *m, int n_layer, int n_head, int n_embd, int context) {
  m->type = CH_MODEL_GPT;
  m->n_layer = n_layer;
  m->n_head = n_head;
  m->n_embd = n_embd;
  m->context = context;
}
