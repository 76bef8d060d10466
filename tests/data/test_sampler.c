/* Distributed sampler on 1..4 ranks: every sample exactly once per epoch across all ranks,
 * the ranks' parts equal the 1-rank batch, batches cross epoch ends, determinism by seed. */
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/data.h"
#include "cohort/rng.h"
#include "cohort/tensor.h"
#include "testlib.h"

/* The documented permutation, written independently: Fisher-Yates from the top with
 * j = ch_rng_below(seed, epoch, i, i + 1). */
static void reference_perm(int64_t n, uint64_t seed, int64_t epoch, int64_t *p) {
  for (int64_t i = 0; i < n; i++) p[i] = i;
  for (int64_t i = n - 1; i > 0; i--) {
    int64_t j = (int64_t)ch_rng_below(seed, (uint64_t)epoch, (uint64_t)i, (uint64_t)i + 1);
    int64_t t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
}

/* Runs batches of B positions over 3 full epochs of n samples on all ranks. A rank's part has the
 * same size in every batch, so all batches are gathered with one collective at the end. */
static void check_stream(int64_t n, int64_t B, uint64_t seed, int rank, int size) {
  const int epochs = 3;
  const int64_t nb = (epochs * n + B - 1) / B; /* batches; the last may run into epoch 3 */
  ch_sampler s, ref;
  CHT_OK(ch_sampler_create(n, seed, &s));
  CHT_OK(ch_sampler_create(n, seed, &ref));
  int64_t *perm = malloc(sizeof *perm * (size_t)n * epochs);
  for (int e = 0; e < epochs; e++) reference_perm(n, seed, e, perm + (size_t)e * n);
  int *seen = calloc((size_t)n * epochs, sizeof *seen);
  int64_t *mine = malloc(sizeof *mine * (size_t)(nb * B)), *all = malloc(sizeof *all * (size_t)(nb * B));
  int64_t *one = malloc(sizeof *one * (size_t)B);
  int *counts = malloc(sizeof *counts * (size_t)size), *displs = malloc(sizeof *displs * (size_t)size);
  for (int r = 0; r < size; r++) {
    counts[r] = (int)(nb * (int64_t)ch_part_count((size_t)B, size, r));
    displs[r] = (int)(nb * (int64_t)ch_part_offset((size_t)B, size, r));
  }
  const int64_t my_count = (int64_t)ch_part_count((size_t)B, size, rank);
  for (int64_t k = 0; k < nb; k++) {
    int64_t cnt = ch_sampler_batch(&s, k * B, B, size, rank, mine + k * my_count);
    CHT_ASSERT(cnt == my_count, "n=%lld B=%lld batch %lld: rank part %lld, expected %lld", (long long)n,
               (long long)B, (long long)k, (long long)cnt, (long long)my_count);
  }
  MPI_Allgatherv(mine, counts[rank], MPI_INT64_T, all, counts, displs, MPI_INT64_T, MPI_COMM_WORLD);
  int crossed = 0;
  for (int64_t k = 0; k < nb; k++) {
    int64_t p = k * B;
    /* Same as one rank computing the whole batch, and as the documented formula. */
    CHT_ASSERT(ch_sampler_batch(&ref, p, B, 1, 0, one) == B, "1-rank batch size");
    for (int r = 0, i = 0; r < size; r++) {
      int64_t c = (int64_t)ch_part_count((size_t)B, size, r);
      for (int64_t j = 0; j < c; j++, i++) {
        int64_t got = all[displs[r] + k * c + j], q = p + i, e = q / n;
        CHT_ASSERT(got == one[i], "n=%lld B=%lld pos %lld: %d ranks give %lld, 1 rank %lld", (long long)n,
                   (long long)B, (long long)q, size, (long long)got, (long long)one[i]);
        if (e < epochs) {
          CHT_ASSERT(got == perm[e * n + q % n], "pos %lld: sample %lld, documented %lld", (long long)q,
                     (long long)got, (long long)perm[e * n + q % n]);
          seen[e * n + got]++;
        }
      }
    }
    if (p / n != (p + B - 1) / n) crossed = 1;
  }
  for (int e = 0; e < epochs; e++)
    for (int64_t k = 0; k < n; k++)
      CHT_ASSERT(seen[e * n + k] == 1, "n=%lld B=%lld epoch %d: sample %lld seen %d times", (long long)n,
                 (long long)B, e, (long long)k, seen[e * n + k]);
  if (n % B != 0 && B < n) CHT_ASSERT(crossed, "n=%lld B=%lld: no batch crossed an epoch end", (long long)n, (long long)B);

  /* Every rank count (simulated locally) partitions the batch into the same contiguous parts. */
  for (int nr = 1; nr <= 5; nr++) {
    int64_t p = n - 1; /* crosses the end of epoch 0 whenever B > 1 */
    int64_t got = 0;
    for (int r = 0; r < nr; r++) got += ch_sampler_batch(&s, p, B, nr, r, mine + got);
    CHT_ASSERT(got == B, "parts over %d ranks cover %lld of %lld", nr, (long long)got, (long long)B);
    for (int64_t i = 0; i < B; i++)
      CHT_ASSERT(mine[i] == ch_sampler_at(&ref, p + i), "%d ranks: boundary batch differs at %lld", nr,
                 (long long)i);
    if (B > 1) CHT_ASSERT(mine[0] == perm[n - 1] && mine[1] == perm[n], "boundary batch: epoch 0 tail then epoch 1 head");
  }
  free(perm);
  free(seen);
  free(mine);
  free(all);
  free(one);
  free(counts);
  free(displs);
  ch_sampler_destroy(&s);
  ch_sampler_destroy(&ref);
}

static void check_determinism(void) {
  const int64_t n = 1797;
  ch_sampler a, b, c;
  CHT_OK(ch_sampler_create(n, 1234, &a));
  CHT_OK(ch_sampler_create(n, 1234, &b));
  CHT_OK(ch_sampler_create(n, 1235, &c));
  int64_t same_seed_diff = 0, seed_diff = 0, epoch_diff = 0, fixed = 0;
  for (int64_t i = 0; i < n; i++) {
    int64_t va = ch_sampler_at(&a, i);
    same_seed_diff += va != ch_sampler_at(&b, i);
    seed_diff += va != ch_sampler_at(&c, i);
    fixed += va == i;
  }
  for (int64_t i = 0; i < n; i++) epoch_diff += ch_sampler_at(&a, i) != ch_sampler_at(&b, n + i);
  /* Jumping back and forth between epochs recomputes the same permutations. */
  for (int64_t i = 0; i < 200; i++) {
    int64_t pos = (int64_t)ch_rng_below(7, 7, (uint64_t)i, (uint64_t)(5 * n));
    CHT_ASSERT(ch_sampler_at(&a, pos) == ch_sampler_at(&b, pos), "random access at %lld", (long long)pos);
  }
  CHT_ASSERT(same_seed_diff == 0, "same seed gives different permutations");
  CHT_ASSERT(seed_diff > n / 2, "seeds 1234 and 1235 agree on %lld of %lld positions", (long long)(n - seed_diff), (long long)n);
  CHT_ASSERT(epoch_diff > n / 2, "epochs 0 and 1 agree on %lld of %lld positions", (long long)(n - epoch_diff), (long long)n);
  CHT_ASSERT(fixed < 20, "permutation leaves %lld of %lld samples in place", (long long)fixed, (long long)n);
  ch_sampler_destroy(&a);
  ch_sampler_destroy(&b);
  ch_sampler_destroy(&c);

  ch_sampler bad;
  CHT_ASSERT(ch_sampler_create(0, 1, &bad) == CH_ERR_INVALID, "empty sampler must be rejected");
  ch_sampler_destroy(&bad);
  ch_sampler one;
  CHT_OK(ch_sampler_create(1, 9, &one));
  for (int64_t p = 0; p < 5; p++) CHT_ASSERT(ch_sampler_at(&one, p) == 0, "n=1");
  int64_t r[3];
  CHT_ASSERT(ch_sampler_batch(&one, 0, 3, 2, 2, r) == -1, "rank out of range must return -1");
  ch_sampler_destroy(&one);
}

/* Resharding, as a resume does: batches before a checkpoint taken on na ranks, after it on nb
 * ranks (every rank simulated here), continuing from the global position. Within each epoch
 * every sample is still seen exactly once: nothing repeated, nothing skipped. */
static void check_reshard(void) {
  const int64_t n = 97, B = 10, total = 3 * n; /* positions [0, total) */
  ch_sampler s;
  CHT_OK(ch_sampler_create(n, 5, &s));
  int64_t rows[B];
  for (int na = 1; na <= 4; na++)
    for (int nb = 1; nb <= 4; nb++)
      for (int64_t cut = 1; cut < 12; cut += 5) { /* checkpoint after `cut` batches */
        int seen[3][97] = {{0}};
        for (int64_t k = 0; k * B < total; k++) {
          int nr = k < cut ? na : nb;
          for (int r = 0; r < nr; r++) {
            int64_t cnt = ch_sampler_batch(&s, k * B, B, nr, r, rows);
            int64_t first = k * B + (int64_t)ch_part_offset((size_t)B, nr, r);
            for (int64_t i = 0; i < cnt; i++)
              if (first + i < total) seen[(first + i) / n][rows[i]]++;
          }
        }
        for (int e = 0; e < 3; e++)
          for (int64_t i = 0; i < n; i++)
            CHT_ASSERT(seen[e][i] == 1, "%d -> %d ranks after %lld batches: epoch %d sample %lld seen "
                       "%d times", na, nb, (long long)cut, e, (long long)i, seen[e][i]);
      }
  ch_sampler_destroy(&s);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const int64_t ns[] = {1797, 7, 1, 64};
  const int64_t bs[] = {64, 5, 1, 7, 13};
  const uint64_t seeds[] = {0, 42};
  for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
    for (size_t b = 0; b < sizeof bs / sizeof *bs; b++)
      for (size_t c = 0; c < 2; c++) check_stream(ns[a], bs[b], seeds[c], rank, size);
  check_determinism();
  check_reshard();
  MPI_Finalize();
  return 0;
}
