/* The model as one serving rank holds it: its tensor-parallel slice and executor. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/ckpt.h"
#include "cohort/log.h"
#include "cohort/parallel.h"
#include "serve/server.h"

static ch_status sum_over(void *ctx, float *x, int64_t n) {
  return ch_comm_allreduce((const ch_group *)ctx, x, (size_t)n, CH_F32, CH_SUM, NULL);
}

ch_status serve_dev_open(const ch_group *g, const ch_serve_opts *o, serve_dev *d) {
  memset(d, 0, sizeof *d);
  CH_CHECK(ch_device_open(&o->device, &d->dev));
  return ch_device_group(d->dev, g, &d->g);
}

void serve_dev_close(serve_dev *d) {
  ch_group_destroy(&d->g);
  ch_device_close(d->dev);
  memset(d, 0, sizeof *d);
}

/* Moves host slices `h` (ch_alloc_aligned, consumed) to the model's backend as m->params. */
static ch_status place_params(serve_model *m, float *h) {
  ch_status st = ch_backend_adopt(m->be, &h, sizeof(float) * (m->local.numel + 1));
  m->params = h;
  return st;
}

/* Shape facts and the executor, once full/local/slices/params are set. */
static ch_status finish(const ch_group *g, const serve_dev *d, serve_model *m,
                        const ch_serve_opts *o) {
  m->is_gpt = m->info.model.type == CH_MODEL_GPT;
  m->vocab = ch_model_vocab(m->full);
  m->context = ch_model_context(m->full);
  if (!m->is_gpt) {
    m->features = m->info.features;
    m->classes = m->info.classes;
  } else if (g->size > m->info.model.n_head && g->rank == 0) {
    CH_WARN("%d ranks for %d attention heads: %d rank(s) hold no head", g->size,
            m->info.model.n_head, g->size - m->info.model.n_head);
  }
  CH_CHECK(ch_model_io(m->full, &m->io));
  if (!m->is_gpt && m->info.n_class_names > 0) CH_CHECK(ch_model_io_add_class_names(&m->io));
  snprintf(m->version, sizeof m->version, "%lld", (long long)m->step);
  int slots = o->max_batch_size > 0 ? o->max_batch_size : 1;
  return ch_tp_model_create(m->full, &m->local, m->params, g->rank == 0, slots, slots,
                            g->size > 1 ? sum_over : NULL, (void *)&d->g, &m->tp);
}

ch_status serve_model_load(const ch_group *g, const serve_dev *d, const char *path,
                           const ch_serve_opts *o, serve_model **out) {
  serve_model *m = calloc(1, sizeof *m);
  if (!m) return CH_FAIL(CH_ERR_NOMEM, "serving model");
  m->be = ch_device_backend(d->dev);
  float *h = NULL;
  ch_status st = ch_ckpt_load_tp(g, path, m->be, &m->info, &m->full, &m->local, &m->slices, &h);
  if (st == CH_OK) st = place_params(m, h);
  if (st == CH_OK) {
    ch_ckpt_file f; /* the version: the step of the checkpoint */
    if (ch_ckpt_open(path, &f) == CH_OK) {
      m->step = f.meta.step;
      ch_ckpt_close(&f);
    }
    st = finish(g, d, m, o);
  }
  if (st == CH_OK) *out = m;
  else serve_model_free(m);
  return st;
}

ch_status serve_model_from_params(const ch_group *g, const serve_dev *d,
                                  const ch_ckpt_model_info *info, const float *params,
                                  int64_t step, const ch_serve_opts *o, serve_model **out) {
  serve_model *m = calloc(1, sizeof *m);
  if (!m) return CH_FAIL(CH_ERR_NOMEM, "serving model");
  m->info = *info;
  m->step = step;
  m->be = ch_device_backend(d->dev);
  float *h = NULL;
  ch_status st = ch_model_create(m->be, &info->model, info->features, info->classes, 0, &m->full);
  if (st == CH_OK)
    st = ch_tp_layout(ch_model_layout(m->full), g->size, g->rank, &m->local, &m->slices);
  if (st == CH_OK && !(h = ch_alloc_aligned(sizeof(float) * (m->local.numel + 1))))
    st = CH_FAIL(CH_ERR_NOMEM, "tensor-parallel parameters");
  if (st == CH_OK) {
    ch_tp_extract(ch_model_layout(m->full), params, &m->local, m->slices, h);
    st = place_params(m, h);
  }
  if (st == CH_OK) st = finish(g, d, m, o);
  if (st == CH_OK) *out = m;
  else serve_model_free(m);
  return st;
}

void serve_model_free(serve_model *m) {
  if (!m) return;
  ch_tp_model_destroy(m->tp);
  if (m->be) ch_op_free(m->be, m->params); /* the CPU backend's free is ch_free_aligned */
  free(m->slices);
  if (m->local.params) ch_layout_destroy(&m->local);
  ch_model_destroy(m->full);
  free(m);
}
