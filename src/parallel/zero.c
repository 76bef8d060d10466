/* The ZeRO machinery behind ch_dp (dp.c has the front and the strategies' overview).
 *
 * Transient whole-layout buffers (zero2/3 gradients, zero3 parameters) are anonymous mappings
 * of the layout's size whose pages exist only while a unit is live: dropping a unit returns
 * its pages to the kernel (MADV_DONTNEED; they read back as zeros), so resident memory really
 * is what the strategy keeps, and the model addresses parameters as under DDP. zero3 gathers a
 * unit when the model fetches it and prefetches the one that followed it on the last step;
 * every ZeRO stage reduce-scatters a unit when its gradient is final. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cohort/runtime.h"
#include "parallel/dp_internal.h"

/* ---- Transient whole-layout views ------------------------------------------------------ */

/* An anonymous view of `bytes` (a multiple of CH_HUGE) aligned to CH_HUGE, so that a large
 * unit's interior is made of whole huge pages when `huge` (see view.h). */
float *ch_dp_map_view(size_t bytes, int huge, void **base) {
  void *p = mmap(NULL, bytes + CH_HUGE, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return NULL;
  *base = p;
  char *a = (char *)(((uintptr_t)p + CH_HUGE - 1) / CH_HUGE * CH_HUGE);
  if (huge) madvise(a, bytes, MADV_HUGEPAGE); /* a hint: kernels without THP ignore it */
  return (float *)a;
}

/* Gives unit u's pages of a mapped view back to the kernel; its elements read as zero after.
 * Pages shared with a neighbouring unit stay: their part of u is zeroed by hand. */
void ch_dp_drop_unit(const ch_dp *d, float *view, int u) {
  const ch_unit *un = &d->l->units[u];
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  uintptr_t lo = (uintptr_t)(view + un->offset), hi = (uintptr_t)(view + un->offset + un->numel);
  uintptr_t a = (lo + page - 1) / page * page, b = hi / page * page;
  if (a < b) {
    memset((void *)lo, 0, a - lo);
    memset((void *)b, 0, hi - b);
    madvise((void *)a, b - a, MADV_DONTNEED);
  } else {
    memset((void *)lo, 0, hi - lo);
  }
}

/* Bytes of a mapped view resident now. */
static size_t resident(ch_dp *d, const float *view) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE), n = (d->map_bytes + page - 1) / page, r = 0;
  if (mincore((void *)view, d->map_bytes, d->pages) != 0) return 0;
  for (size_t i = 0; i < n; i++) r += d->pages[i] & 1;
  return r * page;
}

/* Updates the peak of transient memory (first steps only: every step repeats the pattern). */
static void sample_memory(ch_dp *d) {
  if (!d->measuring) return;
  size_t b = (d->params_mapped ? resident(d, d->params) : 0) +
             (d->grads_mapped ? resident(d, d->grads) : 0) +
             (d->rs_tmp ? d->own.numel * sizeof(float) : 0) +
             (d->strategy == CH_STRATEGY_ZERO1 ? d->own.numel * sizeof(float) : 0);
  if (b > d->mem.comm) d->mem.comm = b;
}

/* ---- zero3: parameters ------------------------------------------------------------------ */

static ch_status gather(ch_dp *d, int u, int blocking) {
  const ch_unit *un = &d->l->units[u];
  if (d->training) d->stats.bytes_communicated += un->numel * sizeof(float);
  d->state[u] = blocking ? RESIDENT : GATHERING;
  return ch_comm_allgather(d->g, d->shard_params + ch_dp_seg(d, u)->local, d->params + un->offset,
                           un->numel, CH_F32, blocking ? NULL : &d->ag[u]);
}

ch_status ch_dp_on_fetch(void *ctx, int u) {
  ch_dp *d = ctx;
  if (d->training && d->nrec < 4 * d->l->nunits + 4) d->rec[d->nrec++] = u;
  double t0 = ch_time();
  if (d->state[u] == GATHERING) CH_CHECK(ch_comm_wait(&d->ag[u]));
  else if (d->state[u] == ABSENT) CH_CHECK(gather(d, u, 1));
  d->state[u] = RESIDENT;
  if (d->training) d->stats.exposed_seconds += ch_time() - t0;
  /* Prefetch: the unit that followed u last time, if this pass is going the same way. */
  if (d->training && d->prefetch) {
    while (d->pos < d->norder && d->order[d->pos] != u) d->pos++;
    if (d->pos < d->norder) d->pos++;
    if (d->pos < d->norder && d->state[d->order[d->pos]] == ABSENT)
      CH_CHECK(gather(d, d->order[d->pos], 0));
  }
  return CH_OK;
}

ch_status ch_dp_on_release(void *ctx, int u, int last) {
  ch_dp *d = ctx;
  if (d->strategy != CH_STRATEGY_ZERO3) return CH_OK;
  if (last) sample_memory(d);
  if (last || d->reshard || !d->training) {
    ch_dp_drop_unit(d, d->params, u);
    d->state[u] = ABSENT;
  }
  return CH_OK;
}

/* ---- zero1/2/3: gradients --------------------------------------------------------------- */

/* A unit's reduce-scatter has completed: accumulate it, then drop the unit's whole gradient
 * (zero2/3). */
static void rs_done(ch_dp *d, int u) {
  const ch_segment *s = ch_dp_seg(d, u);
  if (d->rs_tmp_used[u]) {
    float *acc = d->shard_grads + s->local;
    const float *x = d->rs_tmp + s->local;
    for (size_t i = 0; i < s->numel; i++) acc[i] += x[i];
    d->rs_tmp_used[u] = 0;
  }
  if (d->grads_mapped) ch_dp_drop_unit(d, d->grads, u);
}

/* Drives progress on running reduce-scatters and finishes those that completed. */
static ch_status poll_rs(ch_dp *d) {
  for (int u = 0; u < d->l->nunits; u++) {
    if (!d->rs[u].active) continue;
    int done;
    CH_CHECK(ch_comm_test(&d->rs[u], &done));
    if (done) rs_done(d, u);
  }
  return CH_OK;
}

ch_status ch_dp_on_grad_ready(void *ctx, int u) {
  ch_dp *d = ctx;
  if (d->strategy == CH_STRATEGY_ZERO1 && !d->micro_last) return CH_OK; /* keep accumulating */
  double t0 = ch_time();
  sample_memory(d);
  const ch_unit *un = &d->l->units[u];
  const ch_segment *s = ch_dp_seg(d, u);
  int into_tmp = !d->micro_first && d->strategy != CH_STRATEGY_ZERO1;
  if (into_tmp && !d->rs_tmp) {
    d->rs_tmp = ch_alloc_aligned((d->own.numel ? d->own.numel : 1) * sizeof(float));
    if (!d->rs_tmp) return CH_FAIL(CH_ERR_NOMEM, "reduce-scatter accumulation buffer");
  }
  /* At most two units' whole gradients wait for their reduce-scatter (a bound on transient
   * memory; overlap needs no more): finish the oldest, which is the highest unit. */
  for (int active = 2; d->grads_mapped && active >= 2;) {
    int oldest = -1;
    active = 0;
    for (int v = d->l->nunits - 1; v >= 0; v--)
      if (d->rs[v].active) active++, oldest = oldest < 0 ? v : oldest;
    if (active >= 2) {
      double w = ch_time();
      CH_CHECK(ch_comm_wait(&d->rs[oldest]));
      rs_done(d, oldest);
      w = ch_time() - w;
      d->stats.exposed_seconds += w; /* blocked: not part of the launch cost */
      t0 += w;
    }
  }
  d->rs_tmp_used[u] = into_tmp;
  float *out = (into_tmp ? d->rs_tmp : d->shard_grads) + s->local;
  d->stats.bytes_communicated += un->numel * sizeof(float);
  CH_CHECK(ch_comm_reduce_scatter(d->g, d->grads + un->offset, out, un->numel, CH_F32, CH_SUM,
                                  &d->rs[u]));
  CH_CHECK(poll_rs(d));
  d->stats.launch_seconds += ch_time() - t0;
  return CH_OK;
}


/* Completes every running reduce-scatter (the next backward writes their send buffers). */
ch_status ch_dp_finish_rs(ch_dp *d) {
  for (int u = 0; u < d->l->nunits; u++)
    if (d->rs[u].active) {
      CH_CHECK(ch_comm_wait(&d->rs[u]));
      rs_done(d, u);
    }
  return CH_OK;
}
