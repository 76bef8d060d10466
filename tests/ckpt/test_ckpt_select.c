/* ckpt_select_range against a naive enumeration: for random shapes of 1-4 dims and random
 * element ranges [a, b), the hyperslab union must select exactly the elements whose row-major
 * index lies in [a, b). Serial (HDF5 dataspaces only). */
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt/ckpt_internal.h"
#include "cohort/rng.h"
#include "testlib.h"

static int check(int ndim, const int64_t *shape, int64_t a, int64_t b) {
  hsize_t dims[CH_MAX_DIMS];
  int64_t n = 1;
  for (int d = 0; d < ndim; d++) dims[d] = (hsize_t)shape[d], n *= shape[d];
  hid_t space = H5Screate_simple(ndim, dims, NULL);
  CHT_ASSERT(ckpt_select_range(space, ndim, shape, a, b) >= 0, "select failed");
  CHT_ASSERT(H5Sget_select_npoints(space) == b - a, "npoints %lld != %lld",
             (long long)H5Sget_select_npoints(space), (long long)(b - a));
  char *mark = calloc((size_t)n, 1);
  if (b > a) {
    hssize_t nb = H5Sget_select_hyper_nblocks(space);
    CHT_ASSERT(nb >= 1, "no blocks for a non-empty range");
    hsize_t *bl = malloc(sizeof *bl * 2 * (size_t)ndim * (size_t)nb);
    H5Sget_select_hyper_blocklist(space, 0, (hsize_t)nb, bl);
    for (hssize_t k = 0; k < nb; k++) {
      const hsize_t *lo = bl + 2 * ndim * k, *hi = lo + ndim;
      hsize_t idx[CH_MAX_DIMS];
      memcpy(idx, lo, sizeof(hsize_t) * (size_t)ndim);
      for (;;) { /* every element of the box, row-major */
        int64_t flat = 0;
        for (int d = 0; d < ndim; d++) flat = flat * shape[d] + (int64_t)idx[d];
        CHT_ASSERT(!mark[flat], "element %lld selected twice", (long long)flat);
        mark[flat] = 1;
        int d = ndim - 1;
        while (d >= 0 && idx[d] == hi[d]) idx[d] = lo[d], d--;
        if (d < 0) break;
        idx[d]++;
      }
    }
    free(bl);
  }
  for (int64_t i = 0; i < n; i++)
    CHT_ASSERT(mark[i] == (i >= a && i < b), "element %lld: selected %d, expected %d", (long long)i,
               mark[i], i >= a && i < b);
  free(mark);
  H5Sclose(space);
  return 0;
}

int main(void) {
  int cases = 0;
  for (uint64_t t = 0; t < 3000; t++) {
    int ndim = 1 + (int)ch_rng_below(7, t, 0, 4);
    int64_t shape[CH_MAX_DIMS], n = 1;
    for (int d = 0; d < ndim; d++) shape[d] = 1 + (int64_t)ch_rng_below(7, t, 1 + (uint64_t)d, 6), n *= shape[d];
    int64_t a = (int64_t)ch_rng_below(7, t, 10, (uint64_t)n + 1);
    int64_t b = a + (int64_t)ch_rng_below(7, t, 11, (uint64_t)(n - a) + 1);
    if (check(ndim, shape, a, b)) return 1;
    cases++;
  }
  /* Edges: whole tensor, empty, one element, one partial row. */
  int64_t s3[3] = {4, 5, 6};
  if (check(3, s3, 0, 120) || check(3, s3, 7, 7) || check(3, s3, 119, 120) || check(3, s3, 31, 33))
    return 1;
  printf("ok: %d random ranges over 1-4 dim shapes select exactly [a, b)\n", cases);
  return 0;
}
