/* run.init_from: a fresh run that starts from another checkpoint's model weights (fine-tuning a
 * trained or imported model): new optimizer, step 0, any world size and strategy. The
 * checkpoint's model attributes must describe this run's model; a mismatch names every key
 * that differs with both values. A checkpoint that run.resume finds wins: a fine-tune that is
 * preempted and restarted with the same command continues rather than starting over. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cohort/ckpt.h"
#include "cohort/log.h"
#include "train/train_internal.h"

/* Appends "KEY A (checkpoint) vs B (this run)" to `out` when a != b. */
static void differ(char *out, size_t size, const char *key, int64_t a, int64_t b) {
  if (a == b) return;
  size_t n = strlen(out);
  snprintf(out + n, size - n, "%s%s %" PRId64 " (checkpoint) vs %" PRId64 " (this run)",
           n ? ", " : "", key, a, b);
}

/* The keys in which checkpoint model `c` differs from this run's `r`, into `out` ("" when it is
 * the same model). The GPT's vocabulary is the effective one (model.vocab_size, or the data's). */
static void mismatches(const ch_ckpt_model_info *c, const ch_ckpt_model_info *r, char *out,
                       size_t size) {
  out[0] = '\0';
  const ch_model_cfg *a = &c->model, *b = &r->model;
  if (a->type != b->type) {
    snprintf(out, size, "model.type %s (checkpoint) vs %s (this run)",
             a->type == CH_MODEL_GPT ? "gpt" : "mlp", b->type == CH_MODEL_GPT ? "gpt" : "mlp");
    return;
  }
  if (a->type == CH_MODEL_GPT) {
    differ(out, size, "model.n_layer", a->n_layer, b->n_layer);
    differ(out, size, "model.n_head", a->n_head, b->n_head);
    differ(out, size, "model.n_embd", a->n_embd, b->n_embd);
    differ(out, size, "model.context", a->context, b->context);
    differ(out, size, "model.vocab_size", a->vocab_size ? a->vocab_size : c->classes,
           b->vocab_size ? b->vocab_size : r->classes);
    return;
  }
  differ(out, size, "model.depth", a->depth, b->depth);
  differ(out, size, "model.hidden", a->hidden, b->hidden);
  if (a->activation != b->activation) {
    size_t n = strlen(out);
    snprintf(out + n, size - n, "%smodel.activation %s (checkpoint) vs %s (this run)",
             n ? ", " : "", a->activation == CH_ACT_GELU ? "gelu" : "relu",
             b->activation == CH_ACT_GELU ? "gelu" : "relu");
  }
  differ(out, size, "input features (data)", c->features, r->features);
  differ(out, size, "classes (data)", c->classes, r->classes);
}

/* Rank 0 resolves and checks the checkpoint; the others get its verdict: the file in `path`,
 * or the error text in `msg` (status in *code). */
static void check_on_root(trainer *t, char *path, size_t psize, char *msg, size_t msize,
                          int32_t *code) {
  const char *arg = t->cfg->run.init_from;
  char resolved[CH_PATH_MAX * 2];
  ch_ckpt_file f;
  *code = CH_OK;
  if (ch_ckpt_resolve(arg, resolved, sizeof resolved) != CH_OK || ch_ckpt_open(resolved, &f) != CH_OK) {
    *code = CH_ERR_CONFIG;
    snprintf(msg, msize, "run.init_from=%s: %s", arg, ch_error_message());
    return;
  }
  char diff[768];
  if (!f.meta.has_model) {
    *code = CH_ERR_CONFIG;
    snprintf(msg, msize, "run.init_from=%s: format version %d has no model attributes to check "
             "against this run", resolved, f.format_version);
  } else {
    mismatches(&f.meta.model, &t->info, diff, sizeof diff);
    if (diff[0]) {
      *code = CH_ERR_CONFIG;
      snprintf(msg, msize, "run.init_from=%s: its model does not match this run's: %s (set the "
               "model keys to the checkpoint's)", resolved, diff);
    } else if (strcmp(f.meta.model.tokenizer, "none") != 0 &&
               strcmp(f.meta.model.tokenizer, t->info.tokenizer) != 0) {
      CH_WARN("run.init_from=%s was trained with the %s tokenizer, this run's data (%s) is "
              "tokenized with %s", resolved, f.meta.model.tokenizer, t->cfg->data.path,
              t->info.tokenizer);
    }
  }
  ch_ckpt_close(&f);
  snprintf(path, psize, "%s", resolved);
}

ch_status trainer_init_from(trainer *t, int resumed) {
  const char *arg = t->cfg->run.init_from;
  if (!arg[0]) return CH_OK;
  if (resumed) {
    if (t->g->rank == 0)
      CH_INFO("run.init_from=%s not used: the run resumed from its own checkpoint (step %" PRId64
              "), which continues it", arg, t->step);
    return CH_OK;
  }
  struct {
    int32_t code;
    char path[CH_PATH_MAX * 2];
    char msg[1536];
  } v = {CH_OK, "", ""};
  if (t->g->rank == 0) check_on_root(t, v.path, sizeof v.path, v.msg, sizeof v.msg, &v.code);
  CH_CHECK(ch_comm_broadcast(t->g, &v, sizeof v, CH_U8, 0, NULL));
  if (v.code != CH_OK) return CH_FAIL((ch_status)v.code, "%s", v.msg);
  /* The parameters alone: the optimizer state stays the fresh one (zeros), the step 0. */
  float *data[3];
  ch_addr addr[3];
  const ch_shard *own;
  int n;
  CH_CHECK(ch_dp_state_buffers(t->dp, data, addr, &own, &n));
  ch_ckpt_buffer params = {NULL, data[0], addr[0]};
  ch_ckpt_meta m;
  CH_CHECK(ch_ckpt_read(t->g, v.path, t->layout, &params, 1, own, &m));
  ch_status st = ch_dp_loaded(t->dp);
  if (st == CH_OK && t->g->rank == 0)
    CH_INFO("run.init_from: model weights of %s (step %" PRId64 "); fresh optimizer, step 0",
            v.path, m.step);
  ch_ckpt_meta_free(&m);
  return st;
}
