/* DDP's bucket layout (buckets.h has the rules; docs/parallel.md "Buckets" the measurements). */
#include <stdlib.h>

#include "parallel/buckets.h"

/* MiB to elements, at least 1 (caps are positive but may be below one float). */
static size_t mib_elems(double mb) {
  double e = mb * 1048576.0 / sizeof(float);
  return e < 1.0 ? 1 : (e > 1e18 ? (size_t)1e18 : (size_t)e);
}

void ddp_bucket_caps(const ch_layout *l, double bucket_mb, double first_bucket_mb, size_t *first,
                     size_t *rest) {
  size_t share = l->numel / DDP_BUCKET_SHARE, fb = mib_elems(first_bucket_mb);
  size_t r = share > fb ? share : fb, b = mib_elems(bucket_mb);
  *rest = r < b ? r : b;
  *first = fb < *rest ? fb : *rest;
}

ch_status ddp_plan_buckets(const ch_layout *l, double bucket_mb, double first_bucket_mb,
                           ddp_bucket **out, int *n) {
  *out = NULL;
  *n = 0;
  if (!(bucket_mb > 0) || !(first_bucket_mb > 0))
    return CH_FAIL(CH_ERR_INVALID, "bucket sizes must be positive (%g, %g MiB)", bucket_mb,
                   first_bucket_mb);
  size_t cap0, cap;
  ddp_bucket_caps(l, bucket_mb, first_bucket_mb, &cap0, &cap);
  /* At most one bucket per unit plus the pieces of split units. */
  size_t most = (size_t)l->nunits;
  for (int u = 0; u < l->nunits; u++) most += l->units[u].numel / cap + 1;
  ddp_bucket *b = calloc(most, sizeof *b);
  if (!b) return CH_FAIL(CH_ERR_NOMEM, "ddp buckets (%zu)", most);
  int nb = 0, open = 0; /* open: bucket nb - 1 still takes units */
  for (int u = l->nunits - 1; u >= 0; u--) {
    const ch_unit *un = &l->units[u];
    if (open && (u == 0 || b[nb - 1].numel + un->numel > (nb == 1 ? cap0 : cap))) open = 0;
    if (!open && un->numel > (nb == 0 ? cap0 : cap)) {
      /* Pieces from the unit's end down, each sized evenly under its bucket's cap. */
      for (size_t left = un->numel; left > 0;) {
        size_t c = nb == 0 ? cap0 : cap, pieces = (left + c - 1) / c;
        size_t take = (left + pieces - 1) / pieces;
        left -= take;
        b[nb++] = (ddp_bucket){un->offset + left, take, u, u};
      }
      continue;
    }
    if (!open) {
      b[nb++] = (ddp_bucket){un->offset + un->numel, 0, u, u};
      open = 1;
    }
    ddp_bucket *cur = &b[nb - 1];
    cur->offset = un->offset;
    cur->numel += un->numel;
    cur->lo_unit = u;
  }
  *out = b;
  *n = nb;
  return CH_OK;
}
