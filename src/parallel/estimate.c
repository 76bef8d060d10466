/* What a data-parallel strategy holds and sends, from the layout alone (`cohort estimate`).
 *
 * Resident state mirrors ch_dp_create for rank 0, whose ch_part of every unit is the largest
 * (the first total % n ranks get the extra element). With S its shard and Psi the layout
 * (padding included), in fp32 with k optimizer states:
 *   ddp    4 Psi + 4 Psi + 4k Psi        zero1  4 Psi + 4 Psi + 4k S
 *   zero2  4 Psi + 4 S   + 4k S          zero3  4 S   + 4 S   + 4k S
 * The transient buffers are what zero.c's sample_memory measures; see comm_bound. */
#include "cohort/parallel.h"
#include "parallel/view.h"

/* Sum of the numel of the k <= 4 largest units (all of them when there are fewer). */
static size_t largest_units(const ch_layout *l, int k) {
  size_t top[4] = {0}; /* descending */
  for (int u = 0; u < l->nunits; u++) {
    size_t n = l->units[u].numel;
    for (int i = 0; i < k; i++)
      if (n > top[i]) {
        size_t t = top[i];
        top[i] = n;
        n = t;
      }
  }
  size_t sum = 0;
  for (int i = 0; i < k; i++) sum += top[i];
  return sum;
}

/* Upper bound of the transient bytes zero.c measures (comm). A mapped whole-layout view (zero2/3
 * gradients, zero3 parameters) holds at most the pages lying wholly inside live units plus
 * pages that straddle a unit boundary or the end: zero.c's drop_unit keeps those (a neighbour
 * may be live), so after a step they can all stay resident, two per unit at most (view.h's granule).
 *   Gradients: at most 2 units await their reduce-scatter (zero.c's on_grad_ready waits for the
 *   oldest beyond that), 1 unit is being computed, and the GPT's tied embedding unit has its gradient
 *   written by the head at the start of backward and reduced only at its end: 4 units.
 *   Parameters (zero3): the unit being computed, the prefetched next one and the embedding
 *   unit, which the GPT holds through forward: 3 units. Without reshard_after_forward nothing
 *   is dropped between forward and backward, so every unit can be gathered at once.
 *   With accumulation a later micro-step's reduce-scatter lands in a packed S buffer, and
 *   zero1 keeps its reduced gradient shard (S) outside the gradient buffer it accumulates in. */
static size_t comm_bound(const ch_parallel_cfg *pc, const ch_layout *l, int strategy, int accum,
                         size_t S) {
  const size_t f = sizeof(float);
  const size_t view_slack = (size_t)l->nunits * 2 * dp_view_granule(l);
  if (strategy == CH_STRATEGY_DDP) return 0;
  if (strategy == CH_STRATEGY_ZERO1) return S * f;
  size_t b = f * largest_units(l, 4) + view_slack + (accum > 1 ? S * f : 0);
  if (strategy == CH_STRATEGY_ZERO3) {
    size_t gathered = pc->reshard_after_forward ? largest_units(l, 3) : l->numel;
    b += f * gathered + view_slack;
  }
  return b;
}

ch_status ch_dp_estimate_of(const ch_parallel_cfg *pc, const ch_optim_cfg *oc, const ch_layout *l,
                            int strategy, int ranks, int accum, ch_dp_estimate *out) {
  if (!pc || !oc || !l || !out || ranks < 1 || accum < 1 || strategy < CH_STRATEGY_DDP ||
      strategy > CH_STRATEGY_ZERO3)
    return CH_FAIL(CH_ERR_INVALID, "estimate: strategy %d on %d ranks with %d micro-steps",
                   strategy, ranks, accum);
  const size_t f = sizeof(float), Psi = l->numel;
  size_t S = 0;
  for (int u = 0; u < l->nunits; u++) S += ch_part_count(l->units[u].numel, ranks, 0);
  size_t nstates = oc->type == CH_OPTIM_ADAMW ? 2 : oc->momentum != 0.0 ? 1 : 0;
  int zero = strategy != CH_STRATEGY_DDP;
  *out = (ch_dp_estimate){0};
  out->memory.params = (strategy == CH_STRATEGY_ZERO3 ? S : Psi) * f;
  out->memory.grads = (strategy >= CH_STRATEGY_ZERO2 ? S : Psi) * f;
  out->memory.optim = nstates * (zero ? S : Psi) * f;
  out->memory.comm = comm_bound(pc, l, strategy, accum, S);
  /* Collective payloads per optimizer step, in units of the layout (dp.c, zero.c count alike):
   * an allreduce is a reduce-scatter plus an allgather; zero2/3 reduce-scatter on every
   * micro-step; zero3 gathers every unit for forward and, resharded, again for backward (the
   * GPT keeps its embedding and final LayerNorm units, so this is an upper bound). */
  size_t payloads = 2;
  if (strategy == CH_STRATEGY_ZERO2) payloads = (size_t)accum + 1;
  if (strategy == CH_STRATEGY_ZERO3)
    payloads = (size_t)accum * (2 + (pc->reshard_after_forward ? 1 : 0));
  /* A ring sends (N - 1) / N of each payload per rank; rounded as ch_dp_get_stats does. */
  out->bytes_per_step = payloads * Psi * f / (size_t)ranks * (size_t)(ranks - 1);
  return CH_OK;
}
