/* Data-parallel strategies behind one front: ddp, zero1, zero2, zero3 (DESIGN.md section 2).
 *
 * Every rank owns a shard of the flat layout: its ch_part of every unit (ZeRO), or everything
 * (DDP). The optimizer updates the owned elements only, so its state is 1/N under every ZeRO
 * stage. Where the rest lives:
 *   ddp    params and grads whole; grads summed by bucketed allreduce (ddp.c).
 *   zero1  params and grads whole; on the last micro-step each unit's gradient is
 *          reduce-scattered into the packed gradient shard as backward finishes it; after the
 *          update each unit's parameters are allgathered.
 *   zero2  as zero1, but a unit's whole gradient exists only from its backward to the end of
 *          its reduce-scatter, on every micro-step (accumulation sums the reduced shards).
 *   zero3  as zero2, and parameters live as a packed shard: a unit is allgathered before its
 *          forward and again before its backward (parallel.reshard_after_forward) and dropped
 *          after; the next unit in the order recorded on the previous step is prefetched.
 * Transient whole-layout buffers (zero2/3 gradients, zero3 parameters) are anonymous mappings
 * of the layout's size whose pages exist only while a unit is live: dropping a unit returns
 * its pages to the kernel (MADV_DONTNEED; they read back as zeros), so resident memory really
 * is what the strategy keeps, and the model addresses parameters as under DDP. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cohort/log.h"
#include "cohort/parallel.h"
#include "cohort/runtime.h"
#include "parallel/view.h"

enum { ABSENT = 0, GATHERING, RESIDENT };

struct ch_dp {
  const ch_group *g;
  const ch_layout *l;
  int strategy, reshard, prefetch;
  ch_shard own;          /* what the optimizer updates */
  ch_shard ckpt;         /* what this rank writes and reads in checkpoints */
  float *params, *grads; /* whole-layout views */
  size_t map_bytes;      /* size of each mapped (transient) view; 0: not mapped */
  void *params_base, *grads_base; /* what mmap returned (the views are aligned inside) */
  int params_mapped, grads_mapped;
  float *shard_params;   /* zero3: the parameters at rest (packed) */
  float *shard_grads;    /* zero: reduced gradient shard (packed) */
  float *rs_tmp;         /* zero2/3 with accumulation: a later micro-step's reduced shard */
  ch_optim *optim;
  ch_ddp *ddp;
  ch_request *rs, *ag;   /* per unit */
  int *rs_tmp_used;      /* per unit: the running reduce-scatter lands in rs_tmp */
  int *state;            /* zero3, per unit */
  int *order, norder, *rec, nrec; /* zero3: fetch order of the last training step, and this one's */
  int pos;
  int micro_first, micro_last, training;
  int measuring;         /* sampling resident pages (the first steps) */
  unsigned char *pages;  /* mincore vector */
  ch_unit_hook hook;
  ch_dp_stats stats;
  ch_dp_memory mem;
};

static int is_zero(const ch_dp *d) { return d->strategy != CH_STRATEGY_DDP; }

static const ch_segment *seg(const ch_dp *d, int u) { return &d->own.segs[u]; }

/* ---- Transient whole-layout views ------------------------------------------------------ */

/* An anonymous view of `bytes` (a multiple of CH_HUGE) aligned to CH_HUGE, so that a large
 * unit's interior is made of whole huge pages when `huge` (see view.h). */
static float *map_view(size_t bytes, int huge, void **base) {
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
static void drop_unit(const ch_dp *d, float *view, int u) {
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
  return ch_comm_allgather(d->g, d->shard_params + seg(d, u)->local, d->params + un->offset,
                           un->numel, CH_F32, blocking ? NULL : &d->ag[u]);
}

static ch_status on_fetch(void *ctx, int u) {
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

static ch_status on_release(void *ctx, int u, int last) {
  ch_dp *d = ctx;
  if (d->strategy != CH_STRATEGY_ZERO3) return CH_OK;
  if (last) sample_memory(d);
  if (last || d->reshard || !d->training) {
    drop_unit(d, d->params, u);
    d->state[u] = ABSENT;
  }
  return CH_OK;
}

/* ---- zero1/2/3: gradients --------------------------------------------------------------- */

/* A unit's reduce-scatter has completed: accumulate it, then drop the unit's whole gradient
 * (zero2/3). */
static void rs_done(ch_dp *d, int u) {
  const ch_segment *s = seg(d, u);
  if (d->rs_tmp_used[u]) {
    float *acc = d->shard_grads + s->local;
    const float *x = d->rs_tmp + s->local;
    for (size_t i = 0; i < s->numel; i++) acc[i] += x[i];
    d->rs_tmp_used[u] = 0;
  }
  if (d->grads_mapped) drop_unit(d, d->grads, u);
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

static ch_status on_grad_ready(void *ctx, int u) {
  ch_dp *d = ctx;
  if (d->strategy == CH_STRATEGY_ZERO1 && !d->micro_last) return CH_OK; /* keep accumulating */
  double t0 = ch_time();
  sample_memory(d);
  const ch_unit *un = &d->l->units[u];
  const ch_segment *s = seg(d, u);
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

/* ---- The front -------------------------------------------------------------------------- */

ch_status ch_dp_create(const ch_config *cfg, const ch_group *g, const ch_layout *l, ch_dp **out) {
  ch_dp *d = calloc(1, sizeof *d);
  if (!d) return CH_FAIL(CH_ERR_NOMEM, "data-parallel strategy");
  *out = d;
  d->g = g;
  d->l = l;
  d->strategy = cfg->parallel.strategy;
  d->reshard = cfg->parallel.reshard_after_forward;
  d->prefetch = cfg->parallel.prefetch;
  int U = l->nunits, zero = is_zero(d);
  CH_CHECK(ch_shard_create(l, zero ? g->size : 1, zero ? g->rank : 0, zero, &d->own));
  CH_CHECK(ch_shard_create(l, g->size, g->rank, zero, &d->ckpt));
  size_t bytes = l->numel * sizeof(float), page = (size_t)sysconf(_SC_PAGESIZE);
  d->map_bytes = (bytes + CH_HUGE - 1) / CH_HUGE * CH_HUGE;
  d->params_mapped = d->strategy == CH_STRATEGY_ZERO3;
  d->grads_mapped = d->strategy == CH_STRATEGY_ZERO2 || d->strategy == CH_STRATEGY_ZERO3;
  int huge = ch_dp_view_granule(l) == CH_HUGE;
  d->params = d->params_mapped ? map_view(d->map_bytes, huge, &d->params_base) : ch_alloc_aligned(bytes);
  d->grads = d->grads_mapped ? map_view(d->map_bytes, huge, &d->grads_base) : ch_alloc_aligned(bytes);
  size_t sb = (d->own.numel ? d->own.numel : 1) * sizeof(float);
  if (zero) d->shard_grads = ch_alloc_aligned(sb);
  if (d->params_mapped) d->shard_params = ch_alloc_aligned(sb);
  d->rs = calloc((size_t)U, sizeof *d->rs);
  d->ag = calloc((size_t)U, sizeof *d->ag);
  d->rs_tmp_used = calloc((size_t)U, sizeof *d->rs_tmp_used);
  d->state = calloc((size_t)U, sizeof *d->state);
  d->order = calloc((size_t)(4 * U + 4), sizeof *d->order);
  d->rec = calloc((size_t)(4 * U + 4), sizeof *d->rec);
  d->pages = calloc(d->map_bytes / page + 1, 1);
  if (!d->params || !d->grads || (zero && !d->shard_grads) || (d->params_mapped && !d->shard_params) ||
      !d->rs || !d->ag || !d->rs_tmp_used || !d->state || !d->order || !d->rec || !d->pages)
    return CH_FAIL(CH_ERR_NOMEM, "%s buffers for %zu parameters", ch_strategy_name(d->strategy),
                   l->numel);
  if (!d->grads_mapped) memset(d->grads, 0, bytes);
  for (int u = 0; u < U; u++) d->state[u] = d->params_mapped ? ABSENT : RESIDENT;
  CH_CHECK(ch_optim_create(cfg, l, &d->own, &d->optim));
  if (!zero)
    CH_CHECK(ch_ddp_create(g, l, d->grads, cfg->parallel.bucket_mb, cfg->parallel.first_bucket_mb,
                           cfg->parallel.overlap, &d->ddp));
  d->hook = (ch_unit_hook){d->params_mapped ? on_fetch : NULL, on_release, on_grad_ready, d};
  d->measuring = 2;
  size_t f = sizeof(float), n = d->own.numel;
  d->mem.params = (d->params_mapped ? n : l->numel) * f;
  d->mem.grads = (d->grads_mapped ? n : l->numel) * f;
  d->mem.optim = (size_t)ch_optim_nstates(d->optim) * n * f;
  return CH_OK;
}

void ch_dp_destroy(ch_dp *d) {
  if (!d) return;
  for (int u = 0; d->rs && u < d->l->nunits; u++) ch_comm_wait(&d->rs[u]);
  for (int u = 0; d->ag && u < d->l->nunits; u++) ch_comm_wait(&d->ag[u]);
  ch_ddp_destroy(d->ddp);
  ch_optim_destroy(d->optim);
  if (d->params_mapped && d->params) munmap(d->params_base, d->map_bytes + CH_HUGE);
  else if (!d->params_mapped) ch_free_aligned(d->params);
  if (d->grads_mapped && d->grads) munmap(d->grads_base, d->map_bytes + CH_HUGE);
  else if (!d->grads_mapped) ch_free_aligned(d->grads);
  ch_free_aligned(d->shard_params);
  ch_free_aligned(d->shard_grads);
  ch_free_aligned(d->rs_tmp);
  ch_shard_destroy(&d->own);
  ch_shard_destroy(&d->ckpt);
  free(d->rs);
  free(d->ag);
  free(d->rs_tmp_used);
  free(d->state);
  free(d->order);
  free(d->rec);
  free(d->pages);
  free(d);
}

/* Makes every rank's parameters the whole model again after its owned elements changed
 * (zero1/2: one in-place allgather per unit, all in flight at once). */
static ch_status publish(ch_dp *d) {
  if (d->strategy != CH_STRATEGY_ZERO1 && d->strategy != CH_STRATEGY_ZERO2) return CH_OK;
  double t0 = ch_time();
  for (int u = 0; u < d->l->nunits; u++) {
    const ch_unit *un = &d->l->units[u];
    d->stats.bytes_communicated += un->numel * sizeof(float);
    CH_CHECK(ch_comm_allgather(d->g, d->params + seg(d, u)->offset, d->params + un->offset,
                               un->numel, CH_F32, &d->ag[u]));
  }
  for (int u = 0; u < d->l->nunits; u++) CH_CHECK(ch_comm_wait(&d->ag[u]));
  d->stats.exposed_seconds += ch_time() - t0;
  return CH_OK;
}

ch_status ch_dp_init_params(ch_dp *d, uint64_t seed) {
  if (d->params_mapped) {
    ch_layout_init_shard(d->l, &d->own, CH_ADDR_PACKED, d->shard_params, seed);
    return CH_OK;
  }
  ch_layout_init_params(d->l, d->params, seed);
  /* Init is a pure function of the seed, so replicas agree already; the broadcast makes that
   * an invariant rather than an assumption (as torch DDP does at construction). */
  return ch_comm_broadcast(d->g, d->params, d->l->numel, CH_F32, 0, NULL);
}

float *ch_dp_params(ch_dp *d) { return d->params; }
float *ch_dp_grads(ch_dp *d) { return d->grads; }
ch_optim *ch_dp_optim(ch_dp *d) { return d->optim; }
int ch_dp_strategy(const ch_dp *d) { return d->strategy; }

/* Completes every running reduce-scatter (the next backward writes their send buffers). */
static ch_status finish_rs(ch_dp *d) {
  for (int u = 0; u < d->l->nunits; u++)
    if (d->rs[u].active) {
      CH_CHECK(ch_comm_wait(&d->rs[u]));
      rs_done(d, u);
    }
  return CH_OK;
}

ch_status ch_dp_begin_micro(ch_dp *d, int micro, int nmicro, const ch_unit_hook **hook) {
  d->micro_first = micro == 0;
  d->micro_last = micro == nmicro - 1;
  d->training = 1;
  if (d->micro_first) {
    d->stats.exposed_seconds = d->stats.launch_seconds = 0;
    d->stats.bytes_communicated = 0;
    if (!d->grads_mapped) memset(d->grads, 0, d->l->numel * sizeof(float));
  }
  d->pos = 0;
  if (d->micro_first) d->nrec = 0;
  *hook = !is_zero(d) ? (d->micro_last ? ch_ddp_hook(d->ddp) : NULL) : &d->hook;
  if (!is_zero(d) || d->micro_first) return CH_OK;
  double t0 = ch_time();
  CH_CHECK(finish_rs(d));
  d->stats.exposed_seconds += ch_time() - t0;
  return CH_OK;
}

ch_status ch_dp_reduce(ch_dp *d) {
  double t0 = ch_time();
  if (!is_zero(d)) {
    CH_CHECK(ch_ddp_finish(d->ddp));
    ch_ddp_stats s = ch_ddp_get_stats(d->ddp);
    d->stats.exposed_seconds += s.wait_seconds;
    d->stats.launch_seconds += s.launch_seconds;
    d->stats.bytes_communicated += 2 * s.bytes_reduced;
    return CH_OK;
  }
  CH_CHECK(finish_rs(d));
  d->stats.exposed_seconds += ch_time() - t0;
  if (d->params_mapped) {
    /* The recorded order steers the next step's prefetches; nothing stays gathered. */
    memcpy(d->order, d->rec, sizeof *d->rec * (size_t)d->nrec);
    d->norder = d->nrec;
    for (int u = 0; u < d->l->nunits; u++) {
      if (d->state[u] == GATHERING) CH_CHECK(ch_comm_wait(&d->ag[u]));
      if (d->state[u] != ABSENT) drop_unit(d, d->params, u);
      d->state[u] = ABSENT;
    }
  }
  d->training = 0;
  return CH_OK;
}

ch_status ch_dp_clip(ch_dp *d, double max_norm, double *norm) {
  if (!is_zero(d)) return ch_clip_grad_norm(d->grads, d->l->numel, max_norm, NULL, norm);
  return ch_clip_grad_norm(d->shard_grads, d->own.numel, max_norm, d->g, norm);
}

ch_status ch_dp_update(ch_dp *d, double lr) {
  if (!is_zero(d)) ch_optim_step(d->optim, d->params, CH_ADDR_FLAT, d->grads, CH_ADDR_FLAT, lr);
  else if (d->params_mapped)
    ch_optim_step(d->optim, d->shard_params, CH_ADDR_PACKED, d->shard_grads, CH_ADDR_PACKED, lr);
  else
    ch_optim_step(d->optim, d->params, CH_ADDR_FLAT, d->shard_grads, CH_ADDR_PACKED, lr);
  if (d->measuring) d->measuring--;
  return publish(d);
}

const ch_unit_hook *ch_dp_eval_hook(ch_dp *d) {
  d->training = 0;
  return d->params_mapped ? &d->hook : NULL;
}

int ch_dp_state_buffers(ch_dp *d, float **data, ch_addr *addr, const ch_shard **own) {
  int n = 0;
  data[n] = d->params_mapped ? d->shard_params : d->params;
  addr[n++] = d->params_mapped ? CH_ADDR_PACKED : CH_ADDR_FLAT;
  /* DDP's optimizer state covers the whole layout, so packed is flat there. */
  for (int i = 0; i < ch_optim_nstates(d->optim); i++) {
    data[n] = ch_optim_state(d->optim, i);
    addr[n++] = is_zero(d) ? CH_ADDR_PACKED : CH_ADDR_FLAT;
  }
  *own = &d->ckpt;
  return n;
}

ch_status ch_dp_loaded(ch_dp *d) {
  if (is_zero(d)) return publish(d);
  /* DDP: each rank read its slice of everything; allgather makes the replicas whole. */
  float *data[3];
  ch_addr addr[3];
  const ch_shard *own;
  int n = ch_dp_state_buffers(d, data, addr, &own);
  for (int b = 0; b < n; b++)
    CH_CHECK(ch_comm_allgather(d->g, data[b] + own->segs[0].offset, data[b], d->l->numel, CH_F32,
                               NULL));
  return CH_OK;
}

ch_status ch_dp_full_params(ch_dp *d, float *out) {
  if (!d->params_mapped) {
    memcpy(out, d->params, d->l->numel * sizeof(float));
    return CH_OK;
  }
  for (int u = 0; u < d->l->nunits; u++) {
    const ch_unit *un = &d->l->units[u];
    CH_CHECK(ch_comm_allgather(d->g, d->shard_params + seg(d, u)->local, out + un->offset,
                               un->numel, CH_F32, NULL));
  }
  return CH_OK;
}

ch_dp_stats ch_dp_get_stats(const ch_dp *d) {
  /* Counted as collective payloads (allreduce twice, as a reduce-scatter plus an allgather);
   * a ring sends (N - 1) / N of each payload per rank. */
  ch_dp_stats s = d->stats;
  s.bytes_communicated = s.bytes_communicated / (size_t)d->g->size * (size_t)(d->g->size - 1);
  return s;
}
ch_dp_memory ch_dp_get_memory(const ch_dp *d) { return d->mem; }

void ch_dp_reset(ch_dp *d, uint64_t seed) {
  if (d->params_mapped) ch_layout_init_shard(d->l, &d->own, CH_ADDR_PACKED, d->shard_params, seed);
  else ch_layout_init_params(d->l, d->params, seed);
  for (int i = 0; i < ch_optim_nstates(d->optim); i++)
    memset(ch_optim_state(d->optim, i), 0, d->own.numel * sizeof(float));
  ch_optim_set_steps(d->optim, 0);
}
