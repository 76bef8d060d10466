/* A model rebuilt from a checkpoint alone, by one process (generation, tools): the stored config
 * gives the architecture, the stored tensors the data shape and the parameters. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/ckpt.h"
#include "cohort/log.h"

static const ch_ckpt_tensor *find(const ch_ckpt_file *f, const char *name) {
  char full[CH_NAME_MAX + 16];
  snprintf(full, sizeof full, "/model/%s", name);
  for (int i = 0; i < f->ntensors; i++)
    if (!strcmp(f->tensors[i].name, full)) return &f->tensors[i];
  return NULL;
}

/* Data shape the model was built for: (features, classes) of the MLP, the vocabulary of the
 * GPT, read off the first and last layers. */
static ch_status data_shape(const ch_ckpt_file *f, const ch_config *cfg, int64_t *features,
                            int64_t *classes) {
  char last[64];
  const ch_ckpt_tensor *a, *b;
  if (cfg->model.type == CH_MODEL_GPT) {
    a = b = find(f, "wte.weight");
  } else {
    snprintf(last, sizeof last, "layers.%d.weight", cfg->model.depth);
    a = find(f, "layers.0.weight");
    b = find(f, last);
  }
  if (!a || !b || a->ndim != 2 || b->ndim != 2)
    return CH_FAIL(CH_ERR_FORMAT, "%s: the model tensors do not match the stored config", f->path);
  *features = cfg->model.type == CH_MODEL_GPT ? 0 : a->shape[1];
  *classes = b->shape[0];
  return CH_OK;
}

ch_status ch_ckpt_load_model(const char *path, int max_batch, ch_config *cfg, ch_model **model,
                             float **params) {
  ch_ckpt_file f;
  CH_CHECK(ch_ckpt_open(path, &f));
  ch_status st = CH_OK;
  ch_model *m = NULL;
  float *p = NULL;
  int64_t features = 0, classes = 0;
  if (!f.meta.config) {
    st = CH_FAIL(CH_ERR_FORMAT, "%s: no stored config", path);
    goto done;
  }
  CH_CHECK_GOTO(ch_config_load_text(f.meta.config, path, cfg), st, done);
  CH_CHECK_GOTO(data_shape(&f, cfg, &features, &classes), st, done);
  CH_CHECK_GOTO(ch_model_create(cfg, features, classes, max_batch, &m), st, done);
  const ch_layout *l = ch_model_layout(m);
  p = ch_alloc_aligned(l->numel * sizeof(float));
  if (!p) {
    st = CH_FAIL(CH_ERR_NOMEM, "parameters (%zu floats)", l->numel);
    goto done;
  }
  memset(p, 0, l->numel * sizeof(float));
  for (int i = 0; i < l->nparams; i++) {
    const ch_param_spec *s = &l->params[i];
    const ch_ckpt_tensor *t = find(&f, s->name);
    if (!t || t->numel != ch_param_numel(s)) {
      st = CH_FAIL(CH_ERR_FORMAT, "%s: /model/%s is %s", path, s->name,
                   t ? "of another shape than the config's model" : "missing");
      goto done;
    }
    ch_ckpt_check c;
    CH_CHECK_GOTO(ch_ckpt_read_tensor(&f, t, p + l->offsets[i], &c), st, done);
    if (!c.has_crc || c.stored != c.computed) {
      st = CH_FAIL(CH_ERR_FORMAT, "%s: checksum mismatch in dataset /model/%s", path, s->name);
      goto done;
    }
  }
done:
  ch_ckpt_close(&f);
  if (st != CH_OK) {
    ch_model_destroy(m);
    ch_free_aligned(p);
    return st;
  }
  *model = m;
  *params = p;
  return CH_OK;
}
