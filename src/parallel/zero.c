/* The ZeRO stages behind ch_dp (dp.c has the front and the strategies' overview; zero.h the
 * interface).
 *
 * Transient whole-layout buffers (zero2/3 gradients, zero3 parameters) are anonymous mappings
 * of the layout's size whose pages exist only while a unit is live: dropping a unit returns
 * its pages to the kernel (MADV_DONTNEED; they read back as zeros), so resident memory really
 * is what the strategy keeps, and the model addresses parameters as under DDP. zero3 gathers a
 * unit when the model fetches it and prefetches the one that followed it on the last step;
 * every ZeRO stage reduce-scatters a unit when its gradient is final. An evaluation keeps the
 * units it gathers across its batches (up to eval_keep elements): each is gathered once per
 * evaluation, not once per batch. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cohort/runtime.h"
#include "parallel/view.h"
#include "parallel/zero.h"

enum { ABSENT = 0, GATHERING, RESIDENT }; /* a zero3 unit's parameters */

struct zero {
  const ch_backend *be;  /* where every buffer lives */
  int host;              /* be's memory is host memory: transient views are mappings */
  const ch_group *g;
  const ch_layout *l;
  const ch_shard *own;   /* this rank's part of every unit (borrowed) */
  int strategy, reshard, prefetch;
  float *params, *grads; /* whole-layout views */
  size_t map_bytes;      /* size of each mapped (transient) view */
  void *params_base, *grads_base; /* what mmap returned (the views are aligned inside) */
  /* Transient views: units live only while used (zero3 parameters, zero2/3 gradients). On the
   * host they are mappings whose pages are returned when a unit drops; on a device, whole
   * allocations whose dropped units are zeroed (the memory is not returned: docs/cuda.md). */
  int params_mapped, grads_mapped;
  float *shard_params;   /* zero3: the parameters at rest (packed) */
  float *shard_grads;    /* reduced gradient shard (packed) */
  float *rs_tmp;         /* zero2/3 with accumulation: a later micro-step's reduced shard */
  ch_request *rs, *ag;   /* per unit */
  int *rs_tmp_used;      /* per unit: the running reduce-scatter lands in rs_tmp */
  int *state;            /* zero3, per unit */
  int *kept;             /* zero3, per unit: gathered by an evaluation and kept for its batches */
  size_t eval_keep, nkept; /* the bound on kept elements, and the kept ones now */
  size_t eval_bytes;     /* gathered by the current (last) evaluation, payload bytes */
  int *order, norder, *rec, nrec; /* zero3: fetch order of the last training step, and this one's */
  int pos;
  int micro_first, micro_last, training;
  int measuring;         /* sampling resident pages (the first steps) */
  unsigned char *pages;  /* mincore vector */
  ch_unit_hook hook;
  ch_dp_stats stats;
  size_t comm_peak;
};

static const ch_segment *seg(const zero *z, int u) { return &z->own->segs[u]; }

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
 * Pages shared with a neighbouring unit stay: their part of u is zeroed by hand. On a device the
 * unit is zeroed. */
static ch_status drop_unit(const zero *d, float *view, int u) {
  const ch_unit *un = &d->l->units[u];
  if (!d->host) return ch_op_memset(d->be, view + un->offset, 0, un->numel * sizeof(float));
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
  return CH_OK;
}

/* Bytes of a mapped view resident now. */
static size_t resident(zero *d, const float *view) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE), n = (d->map_bytes + page - 1) / page, r = 0;
  if (mincore((void *)view, d->map_bytes, d->pages) != 0) return 0;
  for (size_t i = 0; i < n; i++) r += d->pages[i] & 1;
  return r * page;
}

/* Updates the peak of transient memory (first steps only: every step repeats the pattern). */
static void sample_memory(zero *d) {
  if (!d->measuring || !d->host || !d->training) return; /* evaluation: bounded by eval_keep */
  size_t b = (d->params_mapped ? resident(d, d->params) : 0) +
             (d->grads_mapped ? resident(d, d->grads) : 0) +
             (d->rs_tmp ? d->own->numel * sizeof(float) : 0) +
             (d->strategy == CH_STRATEGY_ZERO1 ? d->own->numel * sizeof(float) : 0);
  if (b > d->comm_peak) d->comm_peak = b;
}

/* ---- zero3: parameters ------------------------------------------------------------------ */

static ch_status gather(zero *d, int u, int blocking) {
  const ch_unit *un = &d->l->units[u];
  if (d->training) d->stats.bytes_communicated += un->numel * sizeof(float);
  else d->eval_bytes += un->numel * sizeof(float);
  d->state[u] = blocking ? RESIDENT : GATHERING;
  return ch_comm_allgather(d->g, d->shard_params + seg(d, u)->local, d->params + un->offset,
                           un->numel, CH_F32, blocking ? NULL : &d->ag[u]);
}

static ch_status on_fetch(void *ctx, int u) {
  zero *d = ctx;
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
  zero *d = ctx;
  if (d->strategy != CH_STRATEGY_ZERO3) return CH_OK;
  if (last) sample_memory(d);
  if (!d->training && !d->kept[u] && d->nkept + d->l->units[u].numel <= d->eval_keep) {
    d->kept[u] = 1; /* the evaluation's next batches find it gathered */
    d->nkept += d->l->units[u].numel;
  }
  if (d->kept[u]) return CH_OK;
  if (last || d->reshard || !d->training) {
    CH_CHECK(drop_unit(d, d->params, u));
    d->state[u] = ABSENT;
  }
  return CH_OK;
}

/* Drops the units an evaluation kept: training's schedule starts from nothing gathered, and
 * after an update they are stale. */
static ch_status drop_kept(zero *d) {
  for (int u = 0; d->nkept && u < d->l->nunits; u++)
    if (d->kept[u]) {
      CH_CHECK(drop_unit(d, d->params, u));
      d->state[u] = ABSENT;
      d->kept[u] = 0;
    }
  d->nkept = 0;
  return CH_OK;
}

/* ---- zero1/2/3: gradients --------------------------------------------------------------- */

/* A unit's reduce-scatter has completed: accumulate it, then drop the unit's whole gradient
 * (zero2/3). */
static ch_status rs_done(zero *d, int u) {
  const ch_segment *s = seg(d, u);
  if (d->rs_tmp_used[u]) {
    float *acc = d->shard_grads + s->local;
    CH_CHECK(ch_op_add(d->be, acc, acc, d->rs_tmp + s->local, (int64_t)s->numel));
    d->rs_tmp_used[u] = 0;
  }
  return d->grads_mapped ? drop_unit(d, d->grads, u) : CH_OK;
}

/* Drives progress on running reduce-scatters and finishes those that completed. */
static ch_status poll_rs(zero *d) {
  for (int u = 0; u < d->l->nunits; u++) {
    if (!d->rs[u].active) continue;
    int done;
    CH_CHECK(ch_comm_test(&d->rs[u], &done));
    if (done) CH_CHECK(rs_done(d, u));
  }
  return CH_OK;
}

static ch_status on_grad_ready(void *ctx, int u) {
  zero *d = ctx;
  if (d->strategy == CH_STRATEGY_ZERO1 && !d->micro_last) return CH_OK; /* keep accumulating */
  double t0 = ch_time();
  sample_memory(d);
  const ch_unit *un = &d->l->units[u];
  const ch_segment *s = seg(d, u);
  int into_tmp = !d->micro_first && d->strategy != CH_STRATEGY_ZERO1;
  if (into_tmp && !d->rs_tmp) {
    void *p;
    CH_CHECK(ch_op_alloc(d->be, d->own->numel * sizeof(float), &p));
    d->rs_tmp = p;
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
      CH_CHECK(rs_done(d, oldest));
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
static ch_status finish_rs(zero *d) {
  for (int u = 0; u < d->l->nunits; u++)
    if (d->rs[u].active) {
      CH_CHECK(ch_comm_wait(&d->rs[u]));
      CH_CHECK(rs_done(d, u));
    }
  return CH_OK;
}

/* ---- The object ------------------------------------------------------------------------- */

/* Backend memory for a buffer of `bytes`: NULL on failure (the caller reports it). */
static float *alloc(const zero *z, size_t bytes) {
  void *p = NULL;
  return ch_op_alloc(z->be, bytes, &p) == CH_OK ? p : NULL;
}

ch_status zero_create(const ch_backend *be, const ch_group *g, const ch_layout *l,
                      const ch_shard *own, int strategy, int reshard_after_forward, int prefetch,
                      size_t eval_keep, zero **out) {
  zero *z = calloc(1, sizeof *z);
  if (!z) return CH_FAIL(CH_ERR_NOMEM, "ZeRO state");
  *out = z;
  *z = (zero){.be = be, .host = ch_backend_is_host(be), .g = g, .l = l, .own = own,
              .strategy = strategy, .reshard = reshard_after_forward, .prefetch = prefetch,
              .eval_keep = eval_keep};
  int U = l->nunits;
  size_t bytes = l->numel * sizeof(float), page = (size_t)sysconf(_SC_PAGESIZE);
  z->map_bytes = (bytes + CH_HUGE - 1) / CH_HUGE * CH_HUGE;
  z->params_mapped = strategy == CH_STRATEGY_ZERO3;
  z->grads_mapped = strategy == CH_STRATEGY_ZERO2 || strategy == CH_STRATEGY_ZERO3;
  int huge = dp_view_granule(l) == CH_HUGE;
  z->params = z->params_mapped && z->host ? map_view(z->map_bytes, huge, &z->params_base)
                                          : alloc(z, bytes);
  z->grads = z->grads_mapped && z->host ? map_view(z->map_bytes, huge, &z->grads_base)
                                        : alloc(z, bytes);
  size_t sb = own->numel * sizeof(float);
  z->shard_grads = alloc(z, sb);
  if (z->params_mapped) z->shard_params = alloc(z, sb);
  z->rs = calloc((size_t)U, sizeof *z->rs);
  z->ag = calloc((size_t)U, sizeof *z->ag);
  z->rs_tmp_used = calloc((size_t)U, sizeof *z->rs_tmp_used);
  z->state = calloc((size_t)U, sizeof *z->state);
  z->kept = calloc((size_t)U, sizeof *z->kept);
  z->order = calloc((size_t)(4 * U + 4), sizeof *z->order);
  z->rec = calloc((size_t)(4 * U + 4), sizeof *z->rec);
  z->pages = calloc(z->map_bytes / page + 1, 1);
  if (!z->params || !z->grads || !z->shard_grads || (z->params_mapped && !z->shard_params) ||
      !z->rs || !z->ag || !z->rs_tmp_used || !z->state || !z->kept || !z->order || !z->rec ||
      !z->pages)
    return CH_FAIL(CH_ERR_NOMEM, "%s buffers for %zu parameters", ch_strategy_name(strategy),
                   l->numel);
  /* Mapped views read as zeros; everything else starts zeroed too (units enter as zeros). */
  if (!z->grads_mapped || !z->host) CH_CHECK(ch_op_memset(be, z->grads, 0, bytes));
  if (z->params_mapped && !z->host) CH_CHECK(ch_op_memset(be, z->params, 0, bytes));
  for (int u = 0; u < U; u++) z->state[u] = z->params_mapped ? ABSENT : RESIDENT;
  z->hook = (ch_unit_hook){z->params_mapped ? on_fetch : NULL, on_release, on_grad_ready, z};
  z->measuring = 2;
  return CH_OK;
}

/* Frees a whole-layout view: a mapping, or backend memory. */
static void free_view(zero *z, float *view, int mapped, void *base) {
  if (mapped && z->host) {
    if (view) munmap(base, z->map_bytes + CH_HUGE);
  } else {
    ch_op_free(z->be, view);
  }
}

void zero_destroy(zero *z) {
  if (!z) return;
  for (int u = 0; z->rs && u < z->l->nunits; u++) ch_comm_wait(&z->rs[u]);
  for (int u = 0; z->ag && u < z->l->nunits; u++) ch_comm_wait(&z->ag[u]);
  free_view(z, z->params, z->params_mapped, z->params_base);
  free_view(z, z->grads, z->grads_mapped, z->grads_base);
  ch_op_free(z->be, z->shard_params);
  ch_op_free(z->be, z->shard_grads);
  ch_op_free(z->be, z->rs_tmp);
  free(z->rs);
  free(z->ag);
  free(z->rs_tmp_used);
  free(z->state);
  free(z->kept);
  free(z->order);
  free(z->rec);
  free(z->pages);
  free(z);
}

float *zero_params(zero *z) { return z->params; }
float *zero_grads(zero *z) { return z->grads; }
float *zero_shard_grads(zero *z) { return z->shard_grads; }
float *zero_shard_params(zero *z) { return z->shard_params; }

ch_status zero_init_params(zero *z, uint64_t seed) {
  size_t n = z->params_mapped ? z->own->numel : z->l->numel;
  float *dst = z->params_mapped ? z->shard_params : z->params;
  float *h = z->host ? dst : malloc((n ? n : 1) * sizeof(float));
  if (!h) return CH_FAIL(CH_ERR_NOMEM, "initial parameters (%zu floats)", n);
  if (z->params_mapped) ch_layout_init_shard(z->l, z->own, CH_ADDR_PACKED, h, seed);
  else ch_layout_init_params(z->l, h, seed);
  ch_status st = z->host ? CH_OK : ch_op_upload(z->be, dst, h, n * sizeof(float));
  if (h != dst) free(h);
  return st;
}

ch_status zero_begin_micro(zero *z, int first, int last, const ch_unit_hook **hook) {
  z->micro_first = first;
  z->micro_last = last;
  z->training = 1;
  z->pos = 0;
  *hook = &z->hook;
  if (first) {
    CH_CHECK(drop_kept(z));
    z->stats = (ch_dp_stats){0, 0, 0, 0};
    z->nrec = 0;
    if (!z->grads_mapped) CH_CHECK(ch_op_memset(z->be, z->grads, 0, z->l->numel * sizeof(float)));
    return CH_OK;
  }
  double t0 = ch_time();
  CH_CHECK(finish_rs(z));
  z->stats.exposed_seconds += ch_time() - t0;
  return CH_OK;
}

ch_status zero_reduce(zero *z) {
  double t0 = ch_time();
  CH_CHECK(finish_rs(z));
  z->stats.exposed_seconds += ch_time() - t0;
  if (z->params_mapped) {
    /* The recorded order steers the next step's prefetches; nothing stays gathered. */
    memcpy(z->order, z->rec, sizeof *z->rec * (size_t)z->nrec);
    z->norder = z->nrec;
    for (int u = 0; u < z->l->nunits; u++) {
      if (z->state[u] == GATHERING) CH_CHECK(ch_comm_wait(&z->ag[u]));
      if (z->state[u] != ABSENT) CH_CHECK(drop_unit(z, z->params, u));
      z->state[u] = ABSENT;
    }
  }
  z->training = 0;
  return CH_OK;
}

ch_status zero_publish(zero *z) {
  if (z->params_mapped) return drop_kept(z); /* the shard changed: what was kept is stale */
  double t0 = ch_time();
  for (int u = 0; u < z->l->nunits; u++) {
    const ch_unit *un = &z->l->units[u];
    z->stats.bytes_communicated += un->numel * sizeof(float);
    CH_CHECK(ch_comm_allgather(z->g, z->params + seg(z, u)->offset, z->params + un->offset,
                               un->numel, CH_F32, &z->ag[u]));
  }
  for (int u = 0; u < z->l->nunits; u++) CH_CHECK(ch_comm_wait(&z->ag[u]));
  z->stats.exposed_seconds += ch_time() - t0;
  return CH_OK;
}

void zero_step_done(zero *z) {
  if (z->measuring) z->measuring--;
}

const ch_unit_hook *zero_eval_hook(zero *z) {
  z->training = 0;
  z->eval_bytes = 0;
  return z->params_mapped ? &z->hook : NULL;
}

ch_status zero_full_params(zero *z, float *out) {
  size_t bytes = z->l->numel * sizeof(float);
  if (!z->params_mapped) return ch_op_download(z->be, out, z->params, bytes);
  /* zero3: every unit gathered into a whole buffer of the backend's (out itself on the host). */
  float *whole = z->host ? out : alloc(z, bytes);
  if (!whole) return CH_FAIL(CH_ERR_NOMEM, "whole parameters (%zu bytes)", bytes);
  ch_status st = CH_OK;
  for (int u = 0; u < z->l->nunits && st == CH_OK; u++) {
    const ch_unit *un = &z->l->units[u];
    st = ch_comm_allgather(z->g, z->shard_params + seg(z, u)->local, whole + un->offset,
                           un->numel, CH_F32, NULL);
  }
  if (whole != out) {
    if (st == CH_OK) st = ch_op_download(z->be, out, whole, bytes);
    ch_op_free(z->be, whole);
  }
  return st;
}

ch_dp_stats zero_stats(const zero *z) {
  ch_dp_stats s = z->stats;
  s.eval_bytes = z->eval_bytes;
  return s;
}
size_t zero_comm_peak(const zero *z) { return z->comm_peak; }
