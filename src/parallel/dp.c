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
 * The ZeRO machinery (transient views, gathers, reduce-scatters) is in zero.c. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cohort/runtime.h"
#include "parallel/dp_internal.h"

/* ---- The front -------------------------------------------------------------------------- */

ch_status ch_dp_create(const ch_parallel_cfg *pc, const ch_optim_cfg *oc, const ch_group *g,
                       const ch_layout *l, ch_dp **out) {
  ch_dp *d = calloc(1, sizeof *d);
  if (!d) return CH_FAIL(CH_ERR_NOMEM, "data-parallel strategy");
  *out = d;
  d->g = g;
  d->l = l;
  d->strategy = pc->strategy;
  d->reshard = pc->reshard_after_forward;
  d->prefetch = pc->prefetch;
  int U = l->nunits, zero = ch_dp_is_zero(d);
  CH_CHECK(ch_shard_create(l, zero ? g->size : 1, zero ? g->rank : 0, zero, &d->own));
  CH_CHECK(ch_shard_create(l, g->size, g->rank, zero, &d->ckpt));
  size_t bytes = l->numel * sizeof(float), page = (size_t)sysconf(_SC_PAGESIZE);
  d->map_bytes = (bytes + CH_HUGE - 1) / CH_HUGE * CH_HUGE;
  d->params_mapped = d->strategy == CH_STRATEGY_ZERO3;
  d->grads_mapped = d->strategy == CH_STRATEGY_ZERO2 || d->strategy == CH_STRATEGY_ZERO3;
  int huge = ch_dp_view_granule(l) == CH_HUGE;
  d->params = d->params_mapped ? ch_dp_map_view(d->map_bytes, huge, &d->params_base) : ch_alloc_aligned(bytes);
  d->grads = d->grads_mapped ? ch_dp_map_view(d->map_bytes, huge, &d->grads_base) : ch_alloc_aligned(bytes);
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
  CH_CHECK(ch_optim_create(oc, l, &d->own, &d->optim));
  if (!zero)
    CH_CHECK(ch_ddp_create(g, l, d->grads, pc->bucket_mb, pc->first_bucket_mb,
                           pc->overlap, &d->ddp));
  d->hook = (ch_unit_hook){d->params_mapped ? ch_dp_on_fetch : NULL, ch_dp_on_release, ch_dp_on_grad_ready, d};
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
    CH_CHECK(ch_comm_allgather(d->g, d->params + ch_dp_seg(d, u)->offset, d->params + un->offset,
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
  *hook = !ch_dp_is_zero(d) ? (d->micro_last ? ch_ddp_hook(d->ddp) : NULL) : &d->hook;
  if (!ch_dp_is_zero(d) || d->micro_first) return CH_OK;
  double t0 = ch_time();
  CH_CHECK(ch_dp_finish_rs(d));
  d->stats.exposed_seconds += ch_time() - t0;
  return CH_OK;
}

ch_status ch_dp_reduce(ch_dp *d) {
  double t0 = ch_time();
  if (!ch_dp_is_zero(d)) {
    CH_CHECK(ch_ddp_finish(d->ddp));
    ch_ddp_stats s = ch_ddp_get_stats(d->ddp);
    d->stats.exposed_seconds += s.wait_seconds;
    d->stats.launch_seconds += s.launch_seconds;
    d->stats.bytes_communicated += 2 * s.bytes_reduced;
    return CH_OK;
  }
  CH_CHECK(ch_dp_finish_rs(d));
  d->stats.exposed_seconds += ch_time() - t0;
  if (d->params_mapped) {
    /* The recorded order steers the next step's prefetches; nothing stays gathered. */
    memcpy(d->order, d->rec, sizeof *d->rec * (size_t)d->nrec);
    d->norder = d->nrec;
    for (int u = 0; u < d->l->nunits; u++) {
      if (d->state[u] == GATHERING) CH_CHECK(ch_comm_wait(&d->ag[u]));
      if (d->state[u] != ABSENT) ch_dp_drop_unit(d, d->params, u);
      d->state[u] = ABSENT;
    }
  }
  d->training = 0;
  return CH_OK;
}

ch_status ch_dp_clip(ch_dp *d, double max_norm, double *norm) {
  if (!ch_dp_is_zero(d)) return ch_clip_grad_norm(d->grads, d->l->numel, max_norm, NULL, norm);
  return ch_clip_grad_norm(d->shard_grads, d->own.numel, max_norm, d->g, norm);
}

ch_status ch_dp_update(ch_dp *d, double lr) {
  if (!ch_dp_is_zero(d)) ch_optim_step(d->optim, d->params, CH_ADDR_FLAT, d->grads, CH_ADDR_FLAT, lr);
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
    addr[n++] = ch_dp_is_zero(d) ? CH_ADDR_PACKED : CH_ADDR_FLAT;
  }
  *own = &d->ckpt;
  return n;
}

ch_status ch_dp_loaded(ch_dp *d) {
  if (ch_dp_is_zero(d)) return publish(d);
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
    CH_CHECK(ch_comm_allgather(d->g, d->shard_params + ch_dp_seg(d, u)->local, out + un->offset,
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

const char *ch_strategy_name(int strategy) {
  static const char *names[] = {"ddp", "zero1", "zero2", "zero3"};
  return strategy >= 0 && strategy < 4 ? names[strategy] : "?";
}
