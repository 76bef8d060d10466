/* The state behind ch_dp (parallel.h), shared by the front (dp.c) and the ZeRO machinery
 * (zero.c: transient views, zero3 gathers, reduce-scatters). */
#pragma once
#include "cohort/parallel.h"
#include "parallel/view.h"

enum { ABSENT = 0, GATHERING, RESIDENT }; /* a zero3 unit's parameters */

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

static inline int ch_dp_is_zero(const ch_dp *d) { return d->strategy != CH_STRATEGY_DDP; }
static inline const ch_segment *ch_dp_seg(const ch_dp *d, int u) { return &d->own.segs[u]; }

/* zero.c */
/* An anonymous view of `bytes` (a multiple of CH_HUGE) aligned to CH_HUGE, on transparent huge
 * pages when `huge`; *base gets what to munmap (bytes + CH_HUGE). NULL on failure. */
float *ch_dp_map_view(size_t bytes, int huge, void **base);
/* Gives unit u's pages of a mapped view back to the kernel; its elements read as zero after. */
void ch_dp_drop_unit(const ch_dp *d, float *view, int u);
/* Completes every running reduce-scatter (accumulating and dropping as each finishes). */
ch_status ch_dp_finish_rs(ch_dp *d);
/* The ch_unit_hook callbacks of the ZeRO stages (ctx: the ch_dp). */
ch_status ch_dp_on_fetch(void *ctx, int u);
ch_status ch_dp_on_release(void *ctx, int u, int last);
ch_status ch_dp_on_grad_ready(void *ctx, int u);
