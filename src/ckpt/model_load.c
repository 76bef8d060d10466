/* A model rebuilt from a checkpoint alone (generation, tools, serving): the model attributes
 * give the architecture and data shape, the stored tensors the parameters. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/ckpt.h"
#include "cohort/log.h"
#include "cohort/parallel.h"

/* The model (for max_batch samples; 0: layout only) that the open checkpoint `f` holds, from its
 * model attributes: the stored YAML is for users and is never parsed. */
static ch_status build_model(const ch_ckpt_file *f, const ch_backend *be, int max_batch,
                             ch_ckpt_model_info *info, ch_model **m) {
  if (!f->meta.has_model)
    return CH_FAIL(CH_ERR_FORMAT, "%s: format version %d has no model attributes (model_type, "
                   "data_features, ...): only checkpoints of format version %d or later can be "
                   "loaded as a model", f->path, f->format_version, 2);
  if (!f->meta.attrs_verified)
    CH_WARN("%s: format version %d: its root attributes are not covered by a checksum and "
            "cannot be verified", f->path, f->format_version);
  *info = f->meta.model;
  return ch_model_create(be, &info->model, info->features, info->classes, max_batch, m);
}

ch_status ch_ckpt_load_model(const char *path, const ch_backend *be, int max_batch,
                             ch_ckpt_model_info *info, ch_model **model, float **params) {
  ch_ckpt_file f;
  CH_CHECK(ch_ckpt_open(path, &f));
  ch_status st = CH_OK;
  ch_model *m = NULL;
  float *p = NULL;
  CH_CHECK_GOTO(build_model(&f, be, max_batch, info, &m), st, done);
  const ch_layout *l = ch_model_layout(m);
  p = ch_alloc_aligned(l->numel * sizeof(float));
  if (!p) {
    st = CH_FAIL(CH_ERR_NOMEM, "parameters (%zu floats)", l->numel);
    goto done;
  }
  memset(p, 0, l->numel * sizeof(float));
  for (int i = 0; i < l->nparams; i++) {
    const ch_param_spec *s = &l->params[i];
    const ch_ckpt_tensor *t = ch_ckpt_model_tensor(&f, s->name);
    if (!t || t->numel != ch_param_numel(s)) {
      st = CH_FAIL(CH_ERR_FORMAT, "%s: /model/%s is %s", path, s->name,
                   t ? "of another shape than the stored model" : "missing");
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
  if (st == CH_OK) /* read on the host, then to the backend */
    st = ch_backend_adopt(be, &p, ch_model_layout(m)->numel * sizeof(float));
  if (st != CH_OK) {
    ch_model_destroy(m);
    ch_free_aligned(p); /* host memory here, or NULL */
    return st;
  }
  *model = m;
  *params = p;
  return CH_OK;
}

/* This rank's slices of every model tensor, and a whole-tensor checksum of every size-th tensor
 * from this rank's turn on, so that the group verifies each tensor once. */
static ch_status read_slices(ch_ckpt_file *f, const ch_layout *full, const ch_layout *local,
                             const ch_tp_slice *sl, int rank, int size, float *p) {
  for (int i = 0; i < full->nparams; i++) {
    const ch_param_spec *s = &full->params[i];
    const ch_ckpt_tensor *t = ch_ckpt_model_tensor(f, s->name);
    int same = t && t->ndim == s->ndim;
    for (int d = 0; same && d < s->ndim; d++) same = t->shape[d] == s->shape[d];
    if (!same)
      return CH_FAIL(CH_ERR_FORMAT, "%s: /model/%s is %s", f->path, s->name,
                     t ? "of another shape than the stored model" : "missing");
    CH_CHECK(ch_ckpt_read_slab(f, t, sl[i].dim, sl[i].ngroups, sl[i].start, sl[i].count,
                               p + local->offsets[i]));
    if (i % size != rank) continue;
    ch_ckpt_check c;
    CH_CHECK(ch_ckpt_read_tensor(f, t, NULL, &c));
    if (!c.has_crc || c.stored != c.computed)
      return CH_FAIL(CH_ERR_FORMAT, "%s: checksum mismatch in dataset /model/%s", f->path, s->name);
  }
  return CH_OK;
}

ch_status ch_ckpt_load_tp(const ch_group *g, const char *path, const ch_backend *be,
                          ch_ckpt_model_info *info,
                          ch_model **model, ch_layout *local, ch_tp_slice **slices,
                          float **params) {
  ch_ckpt_file f;
  ch_model *m = NULL;
  ch_tp_slice *sl = NULL;
  float *p = NULL;
  memset(local, 0, sizeof *local);
  int opened = 0;
  ch_status st = ch_ckpt_open(path, &f);
  opened = st == CH_OK;
  if (st == CH_OK) st = build_model(&f, be, 0, info, &m);
  if (st == CH_OK) st = ch_tp_layout(ch_model_layout(m), g->size, g->rank, local, &sl);
  if (st == CH_OK && !(p = ch_alloc_aligned(sizeof(float) * (local->numel + 1))))
    st = CH_FAIL(CH_ERR_NOMEM, "tensor-parallel parameters (%zu floats)", local->numel);
  if (st == CH_OK) {
    memset(p, 0, sizeof(float) * local->numel);
    st = read_slices(&f, ch_model_layout(m), local, sl, g->rank, g->size, p);
  }
  if (opened) ch_ckpt_close(&f);
  /* Every rank learns whether all loaded; the first failing rank's message is its own. */
  int bad = st != CH_OK ? g->rank + 1 : 0, any = bad;
  ch_status cs = ch_comm_allreduce(g, &any, 1, CH_I32, CH_MAX, NULL);
  if (cs != CH_OK) st = cs;
  else if (any && !bad) st = CH_FAIL(CH_ERR_IO, "rank %d could not load %s", any - 1, path);
  if (st != CH_OK) {
    ch_free_aligned(p);
    free(sl);
    if (local->params) ch_layout_destroy(local);
    ch_model_destroy(m);
    return st;
  }
  *model = m;
  *slices = sl;
  *params = p;
  return CH_OK;
}
