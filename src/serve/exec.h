/* The executor's ops as every rank runs them (exec.c) and the leader's loop (lead.c). */
#pragma once
#include "serve/server.h"

/* INFER: rows x features of x -> logits [rows, classes] (NULL on followers: rank 0 keeps them). */
ch_status serve_exec_infer(serve_state *s, int64_t rows, const float *x, float *logits);
/* GEN: decodes every entry of a GEN payload (wire.h) in one batched forward into logits
 * [entries, vocab] (scratch; NULL on followers: no LM head); with reqs (the leader), samples
 * the next token of each entry with reqs[e] != NULL into reqs[e]->out[nout] (NULL: a prompt
 * chunk that does not end its prompt). */
ch_status serve_exec_gen(serve_state *s, int64_t nent, int32_t *buf, float *logits,
                         serve_req **reqs);
/* RELOAD: loads path on every rank and switches to it; CH_ERR_CONFIG (the old model kept) when
 * it may not replace the served model (another family: the name, routes and metadata stay
 * those of the served one). Collective. */
ch_status serve_exec_reload(serve_state *s, const char *path);
/* SYNC: every rank tells whether a preemption signal reached it; out: {the signal, the highest
 * rank it reached} or {0, -1}. Collective. */
ch_status serve_exec_sync(serve_state *s, int32_t out[2]);
/* The leader's loop (rank 0): ops from the queue until shutdown, then STOP. */
ch_status serve_lead(serve_state *s);
