/* The executor's wire format: what the leader (rank 0) broadcasts to the followers. Every op
 * is a fixed header, then its payload (broadcasts from rank 0 on the serving group):
 *   STOP    -
 *   INFER   a = rows: rows x features floats (the model's input width)
 *   GEN     a = entries, b = tokens: int32 [3 * a] of (slot, ntokens, reset) per entry, then
 *           the tokens of every entry in order [b] -- a chunk of a sequence's prompt (reset 1
 *           on its first chunk, which empties the slot), or the one token sampled at the last
 *           step (reset 0); every rank runs them as one batched forward
 *   RELOAD  a checkpoint path, CH_PATH_MAX bytes
 *   SYNC    -, then every rank joins an allreduce (MAX) of int32 {signal, rank}: whether a
 *           preemption signal reached a rank (exec.c); sent every SERVE_SYNC_EVERY seconds
 * Followers wait for a header with a non-blocking broadcast polled with growing sleeps (50 us
 * up to 2 ms), so an idle follower costs a few % of a core while a busy stream of ops still
 * starts within microseconds. */
#pragma once
#include <stdint.h>

#include "cohort/comm.h"

enum { SERVE_OP_STOP = 1, SERVE_OP_INFER, SERVE_OP_GEN, SERVE_OP_RELOAD, SERVE_OP_SYNC };

typedef struct serve_op {
  int64_t op, a, b, c;
} serve_op;

/* Leader: sends a header (collective with the followers' serve_wire_recv). */
ch_status serve_wire_send(const ch_group *g, const serve_op *h);
/* Followers: the next header, without spinning a core while idle. The wait counts as one
 * collective for the watchdog, as the leader's send does: the leader sends at least a SYNC
 * every SERVE_SYNC_EVERY seconds, so a follower waiting far longer has a hung leader. */
ch_status serve_wire_recv(const ch_group *g, serve_op *h);

/* The payloads: rank 0 sends, the others receive into the same buffers. */
ch_status serve_wire_infer(const ch_group *g, float *x, int64_t rows, int64_t features);
ch_status serve_wire_gen(const ch_group *g, int32_t *buf, int64_t entries, int64_t tokens);
ch_status serve_wire_path(const ch_group *g, char *path /* [CH_PATH_MAX] */);

/* GEN entry e of buf: its slot, token count and reset flag. */
static inline int32_t *serve_wire_gen_entry(int32_t *buf, int64_t e) { return buf + 3 * e; }
/* GEN: where the tokens start in buf. */
static inline int32_t *serve_wire_gen_tokens(int32_t *buf, int64_t entries) { return buf + 3 * entries; }
