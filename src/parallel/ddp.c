/* DDP gradient buckets with allreduce overlapped with backward (the layout: buckets.c). */
#include <stdlib.h>

#include "cohort/parallel.h"
#include "cohort/runtime.h"
#include "parallel/buckets.h"

typedef struct bucket {
  ddp_bucket r;          /* range and units */
  int remaining;         /* units not yet ready this step */
  int started;
  ch_request req;
} bucket;

struct ch_ddp {
  const ch_group *g;
  float *grads;
  int overlap;
  bucket *buckets;
  int nbuckets;
  int *unit_bucket;      /* unit -> its first bucket (a split unit's pieces follow it) */
  ch_unit_hook hook;
  ch_ddp_stats stats;
};

/* Starts a bucket's allreduce: non-blocking during backward (overlap), blocking from
 * ch_ddp_finish, where nothing is left to overlap with and Open MPI's blocking allreduce is
 * faster than its non-blocking one (bench/RESULTS.md). */
static ch_status start_bucket(ch_ddp *d, bucket *b, int blocking) {
  b->started = 1;
  d->stats.bytes_reduced += b->r.numel * sizeof(float);
  if (d->g->size == 1) return CH_OK; /* a sum over one rank is the identity */
  return ch_comm_allreduce(d->g, d->grads + b->r.offset, b->r.numel, CH_F32, CH_SUM,
                           blocking ? NULL : &b->req);
}

/* Called by backward when a unit's gradient is final: every bucket it completes starts (a
 * split unit completes all its pieces at once). */
static ch_status on_unit_ready(void *ctx, int unit) {
  ch_ddp *d = ctx;
  double t0 = ch_time();
  for (int i = d->unit_bucket[unit]; i < d->nbuckets; i++) {
    bucket *b = &d->buckets[i];
    if (unit < b->r.lo_unit || unit > b->r.hi_unit) break;
    if (--b->remaining == 0 && d->overlap) CH_CHECK(start_bucket(d, b, 0));
  }
  /* Drive MPI progress on what is in flight, so it advances while backward computes. */
  for (int i = 0; i < d->nbuckets; i++) {
    int done;
    if (d->buckets[i].started) CH_CHECK(ch_comm_test(&d->buckets[i].req, &done));
  }
  d->stats.launch_seconds += ch_time() - t0;
  return CH_OK;
}

ch_status ch_ddp_create(const ch_group *g, const ch_layout *layout, float *grads, double bucket_mb,
                        double first_bucket_mb, int overlap, ch_ddp **out) {
  ddp_bucket *plan;
  int n;
  CH_CHECK(ddp_plan_buckets(layout, bucket_mb, first_bucket_mb, &plan, &n));
  ch_ddp *d = calloc(1, sizeof *d);
  if (!d) {
    free(plan);
    return CH_FAIL(CH_ERR_NOMEM, "ddp");
  }
  d->g = g;
  d->grads = grads;
  d->overlap = overlap;
  d->buckets = calloc((size_t)n, sizeof *d->buckets);
  d->unit_bucket = calloc((size_t)layout->nunits, sizeof *d->unit_bucket);
  if (!d->buckets || !d->unit_bucket) {
    free(plan);
    ch_ddp_destroy(d);
    return CH_FAIL(CH_ERR_NOMEM, "ddp buckets");
  }
  d->nbuckets = n;
  for (int i = n - 1; i >= 0; i--) { /* backwards, so each unit ends at its first bucket */
    d->buckets[i].r = plan[i];
    for (int u = plan[i].lo_unit; u <= plan[i].hi_unit; u++) d->unit_bucket[u] = i;
  }
  free(plan);
  d->stats.nbuckets = d->nbuckets;
  d->hook = (ch_unit_hook){.grad_ready = on_unit_ready, .ctx = d};
  *out = d;
  return CH_OK;
}

void ch_ddp_destroy(ch_ddp *d) {
  if (!d) return;
  for (int i = 0; d->buckets && i < d->nbuckets; i++) ch_comm_wait(&d->buckets[i].req);
  free(d->buckets);
  free(d->unit_bucket);
  free(d);
}

const ch_unit_hook *ch_ddp_hook(ch_ddp *d) {
  d->stats.wait_seconds = d->stats.launch_seconds = 0;
  d->stats.bytes_reduced = 0;
  for (int i = 0; i < d->nbuckets; i++) {
    bucket *b = &d->buckets[i];
    b->remaining = b->r.hi_unit - b->r.lo_unit + 1;
    b->started = 0;
  }
  return &d->hook;
}

ch_status ch_ddp_finish(ch_ddp *d) {
  double t0 = ch_time();
  for (int i = 0; i < d->nbuckets; i++) {
    bucket *b = &d->buckets[i];
    if (b->remaining != 0)
      return CH_FAIL(CH_ERR_INTERNAL, "ddp: bucket %d finished with %d units not ready", i,
                     b->remaining);
    if (!b->started) CH_CHECK(start_bucket(d, b, 1));
  }
  for (int i = 0; i < d->nbuckets; i++) CH_CHECK(ch_comm_wait(&d->buckets[i].req));
  d->stats.wait_seconds += ch_time() - t0;
  return CH_OK;
}

ch_ddp_stats ch_ddp_get_stats(const ch_ddp *d) { return d->stats; }

void ch_ddp_bucket_range(const ch_ddp *d, int b, size_t *offset, size_t *numel) {
  *offset = d->buckets[b].r.offset;
  *numel = d->buckets[b].r.numel;
}
