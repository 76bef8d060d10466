/* DDP's bucket layout: which ranges of the flat gradient buffer are allreduced together
 * (ddp.c uses it; tests check it). Internal to src/parallel. */
#pragma once
#include <stddef.h>

#include "cohort/status.h"
#include "cohort/tensor.h"

/* Caps relative to the model: no bucket holds more than a DDP_BUCKET_SHARE-th of the model
 * unless first_bucket_mb allows more (see ddp_bucket_caps). */
#define DDP_BUCKET_SHARE 8

typedef struct ddp_bucket {
  size_t offset, numel;   /* range in the flat buffer */
  int lo_unit, hi_unit;   /* the units it touches, lo..hi inclusive (a piece: lo == hi) */
} ddp_bucket;

/* The caps in elements for layout `l`: *first for bucket 0 = min(first_bucket_mb, *rest), and
 * *rest for the others = min(bucket_mb, max(first_bucket_mb, model bytes / DDP_BUCKET_SHARE)).
 * Both at least 1. */
void ddp_bucket_caps(const ch_layout *l, double bucket_mb, double first_bucket_mb, size_t *first,
                     size_t *rest);

/* Lays out buckets over `l` in backward order (bucket 0 holds the end of the flat buffer, the
 * last bucket its start; together they cover every element exactly once):
 *   - units are packed whole in backward order and a bucket closes BEFORE a unit that would take
 *     it over its cap, so no bucket waits for a unit it could have started without beyond that;
 *   - a unit larger than the cap is split into pieces of at most the cap, each a bucket of its
 *     own (all start the moment the unit is final; no later unit joins them);
 *   - unit 0, final last (the GPT's tied embedding is written by the head at the start of
 *     backward and finished by the embedding at its end), starts a bucket of its own: whatever
 *     shares its bucket could not start before backward ends.
 * *out is malloc'ed (*n entries). Errors: CH_ERR_INVALID (a cap not positive), CH_ERR_NOMEM. */
ch_status ddp_plan_buckets(const ch_layout *l, double bucket_mb, double first_bucket_mb,
                           ddp_bucket **out, int *n);
