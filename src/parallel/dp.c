/* Data-parallel strategies behind one front: ddp, zero1, zero2, zero3 (docs/parallel.md).
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
 * The ZeRO stages (transient views, gathers, reduce-scatters) are a `zero` object of their own
 * (zero.h); DDP's buffers and buckets live here and in ddp.c. */
#include <stdlib.h>
#include <string.h>

#include "cohort/runtime.h"
#include "parallel/zero.h"

struct ch_dp {
  const ch_backend *be;  /* where params, grads and optimizer state live */
  const ch_group *g;
  const ch_layout *l;
  int strategy;
  ch_shard own;          /* what the optimizer updates */
  ch_shard ckpt;         /* what this rank writes and reads in checkpoints */
  ch_optim *optim;
  zero *z;               /* zero1/2/3 */
  float *params, *grads; /* ddp: whole-layout buffers */
  ch_ddp *ddp;
  ch_dp_stats stats;     /* ddp */
  ch_dp_memory mem;
  float *mirror[3];      /* device backends: host copies of the checkpointed state */
};

static int is_zero(const ch_dp *d) { return d->z != NULL; }

ch_status ch_dp_create(const ch_parallel_cfg *pc, const ch_optim_cfg *oc, const ch_backend *be,
                       const ch_group *g, const ch_layout *l, ch_dp **out) {
  ch_dp *d = calloc(1, sizeof *d);
  if (!d) return CH_FAIL(CH_ERR_NOMEM, "data-parallel strategy");
  *out = d;
  d->be = be;
  d->g = g;
  d->l = l;
  d->strategy = pc->strategy;
  int zero = d->strategy != CH_STRATEGY_DDP;
  CH_CHECK(ch_shard_create(l, zero ? g->size : 1, zero ? g->rank : 0, zero, &d->own));
  CH_CHECK(ch_shard_create(l, g->size, g->rank, zero, &d->ckpt));
  CH_CHECK(ch_optim_create(be, oc, l, &d->own, &d->optim));
  size_t f = sizeof(float), n = d->own.numel;
  d->mem.params = (d->strategy == CH_STRATEGY_ZERO3 ? n : l->numel) * f;
  d->mem.grads = (d->strategy >= CH_STRATEGY_ZERO2 ? n : l->numel) * f;
  d->mem.optim = (size_t)ch_optim_nstates(d->optim) * n * f;
  if (zero)
    return zero_create(be, g, l, &d->own, d->strategy, pc->reshard_after_forward, pc->prefetch,
                       (size_t)(pc->eval_keep_mb * 1048576.0 / sizeof(float)), &d->z);
  size_t bytes = l->numel * f;
  void *p = NULL, *gr = NULL;
  CH_CHECK(ch_op_alloc(be, bytes, &p));
  d->params = p;
  CH_CHECK(ch_op_alloc(be, bytes, &gr));
  d->grads = gr;
  CH_CHECK(ch_op_memset(be, d->grads, 0, bytes));
  return ch_ddp_create(g, l, d->grads, pc->bucket_mb, pc->first_bucket_mb, pc->overlap, &d->ddp);
}

void ch_dp_destroy(ch_dp *d) {
  if (!d) return;
  zero_destroy(d->z);
  ch_ddp_destroy(d->ddp);
  ch_optim_destroy(d->optim);
  ch_op_free(d->be, d->params);
  ch_op_free(d->be, d->grads);
  for (int b = 0; b < 3; b++) free(d->mirror[b]);
  ch_shard_destroy(&d->own);
  ch_shard_destroy(&d->ckpt);
  free(d);
}

ch_status ch_dp_init_params(ch_dp *d, uint64_t seed) {
  if (is_zero(d)) {
    CH_CHECK(zero_init_params(d->z, seed)); /* each rank writes what it keeps */
    if (zero_shard_params(d->z)) return CH_OK;
  } else if (ch_backend_is_host(d->be)) {
    ch_layout_init_params(d->l, d->params, seed);
  } else {
    float *h = malloc(d->l->numel * sizeof(float) + 1);
    if (!h) return CH_FAIL(CH_ERR_NOMEM, "initial parameters (%zu floats)", d->l->numel);
    ch_layout_init_params(d->l, h, seed);
    ch_status st = ch_op_upload(d->be, d->params, h, d->l->numel * sizeof(float));
    free(h);
    CH_CHECK(st);
  }
  /* Init is a pure function of the seed, so replicas agree already; the broadcast makes that
   * an invariant rather than an assumption (as torch DDP does at construction). */
  return ch_comm_broadcast(d->g, ch_dp_params(d), d->l->numel, CH_F32, 0, NULL);
}

float *ch_dp_params(ch_dp *d) { return is_zero(d) ? zero_params(d->z) : d->params; }
float *ch_dp_grads(ch_dp *d) { return is_zero(d) ? zero_grads(d->z) : d->grads; }
ch_optim *ch_dp_optim(ch_dp *d) { return d->optim; }
int ch_dp_strategy(const ch_dp *d) { return d->strategy; }

ch_status ch_dp_begin_micro(ch_dp *d, int micro, int nmicro, const ch_unit_hook **hook) {
  int first = micro == 0, last = micro == nmicro - 1;
  if (is_zero(d)) return zero_begin_micro(d->z, first, last, hook);
  if (first) {
    d->stats = (ch_dp_stats){0, 0, 0, 0};
    CH_CHECK(ch_op_memset(d->be, d->grads, 0, d->l->numel * sizeof(float)));
  }
  *hook = last ? ch_ddp_hook(d->ddp) : NULL; /* accumulation needs no communication */
  return CH_OK;
}

ch_status ch_dp_reduce(ch_dp *d) {
  if (is_zero(d)) return zero_reduce(d->z);
  CH_CHECK(ch_ddp_finish(d->ddp));
  ch_ddp_stats s = ch_ddp_get_stats(d->ddp);
  d->stats.exposed_seconds += s.wait_seconds;
  d->stats.launch_seconds += s.launch_seconds;
  d->stats.bytes_communicated += 2 * s.bytes_reduced;
  return CH_OK;
}

ch_status ch_dp_clip(ch_dp *d, double max_norm, double *norm) {
  const ch_backend *be = ch_optim_backend(d->optim);
  if (!is_zero(d)) return ch_clip_grad_norm(be, d->grads, d->l->numel, max_norm, NULL, norm);
  return ch_clip_grad_norm(be, zero_shard_grads(d->z), d->own.numel, max_norm, d->g, norm);
}

ch_status ch_dp_update(ch_dp *d, double lr) {
  if (!is_zero(d)) {
    ch_optim_step(d->optim, d->params, CH_ADDR_FLAT, d->grads, CH_ADDR_FLAT, lr);
    return CH_OK;
  }
  float *shard = zero_shard_params(d->z);
  if (shard)
    ch_optim_step(d->optim, shard, CH_ADDR_PACKED, zero_shard_grads(d->z), CH_ADDR_PACKED, lr);
  else
    ch_optim_step(d->optim, zero_params(d->z), CH_ADDR_FLAT, zero_shard_grads(d->z),
                  CH_ADDR_PACKED, lr);
  zero_step_done(d->z);
  return zero_publish(d->z);
}

const ch_unit_hook *ch_dp_eval_hook(ch_dp *d) { return is_zero(d) ? zero_eval_hook(d->z) : NULL; }

/* The checkpointed buffers where they live (backend memory) and each one's element count. */
static int state_buffers(ch_dp *d, float **data, ch_addr *addr, size_t *count) {
  int n = 0;
  float *shard = is_zero(d) ? zero_shard_params(d->z) : NULL;
  data[n] = shard ? shard : ch_dp_params(d);
  count[n] = shard ? d->own.numel : d->l->numel;
  addr[n++] = shard ? CH_ADDR_PACKED : CH_ADDR_FLAT;
  /* DDP's optimizer state covers the whole layout, so packed is flat there. */
  for (int i = 0; i < ch_optim_nstates(d->optim); i++) {
    data[n] = ch_optim_state(d->optim, i);
    count[n] = d->own.numel;
    addr[n++] = is_zero(d) ? CH_ADDR_PACKED : CH_ADDR_FLAT;
  }
  return n;
}

ch_status ch_dp_state_buffers(ch_dp *d, float **data, ch_addr *addr, const ch_shard **own,
                              int *nbufs) {
  size_t count[3];
  int n = state_buffers(d, data, addr, count);
  *own = &d->ckpt;
  *nbufs = n;
  if (ch_backend_is_host(d->be)) return CH_OK;
  for (int b = 0; b < n; b++) { /* a device's state, copied to the host */
    if (!d->mirror[b] && !(d->mirror[b] = malloc(count[b] * sizeof(float) + 1)))
      return CH_FAIL(CH_ERR_NOMEM, "host copy of the checkpoint state (%zu floats)", count[b]);
    CH_CHECK(ch_op_download(d->be, d->mirror[b], data[b], count[b] * sizeof(float)));
    data[b] = d->mirror[b];
  }
  return CH_OK;
}

ch_status ch_dp_loaded(ch_dp *d) {
  float *data[3];
  ch_addr addr[3];
  size_t count[3];
  int n = state_buffers(d, data, addr, count);
  if (!ch_backend_is_host(d->be)) /* what was read went into the host copies */
    for (int b = 0; b < n; b++)
      CH_CHECK(ch_op_upload(d->be, data[b], d->mirror[b], count[b] * sizeof(float)));
  if (is_zero(d)) return zero_publish(d->z);
  /* DDP: each rank read its slice of everything; allgather makes the replicas whole. */
  for (int b = 0; b < n; b++)
    CH_CHECK(ch_comm_allgather(d->g, data[b] + d->ckpt.segs[0].offset, data[b], d->l->numel,
                               CH_F32, NULL));
  return CH_OK;
}

ch_status ch_dp_full_params(ch_dp *d, float *out) {
  if (is_zero(d)) return zero_full_params(d->z, out);
  return ch_op_download(d->be, out, d->params, d->l->numel * sizeof(float));
}

ch_dp_stats ch_dp_get_stats(const ch_dp *d) {
  /* Counted as collective payloads (allreduce twice, as a reduce-scatter plus an allgather);
   * a ring sends (N - 1) / N of each payload per rank. */
  ch_dp_stats s = is_zero(d) ? zero_stats(d->z) : d->stats;
  s.bytes_communicated = s.bytes_communicated / (size_t)d->g->size * (size_t)(d->g->size - 1);
  s.eval_bytes = s.eval_bytes / (size_t)d->g->size * (size_t)(d->g->size - 1);
  return s;
}

ch_dp_memory ch_dp_get_memory(const ch_dp *d) {
  ch_dp_memory m = d->mem;
  m.comm = is_zero(d) ? zero_comm_peak(d->z) : 0;
  return m;
}

const char *ch_strategy_name(int strategy) {
  static const char *names[] = {"ddp", "zero1", "zero2", "zero3"};
  return strategy >= 0 && strategy < 4 ? names[strategy] : "?";
}
