/* Tensor-parallel slices of the spec table (include/cohort/parallel.h). */
#include <stdlib.h>
#include <string.h>

#include "cohort/parallel.h"

ch_status ch_tp_slice_of(const ch_param_spec *p, int size, int rank, ch_tp_slice *out) {
  memset(out, 0, sizeof *out);
  out->dim = p->split == CH_TP_ROWS ? 0 : p->split == CH_TP_COLS ? 1 : -1;
  if (out->dim < 0 || size == 1) {
    out->dim = -1;
    return CH_OK;
  }
  if (out->dim >= p->ndim)
    return CH_FAIL(CH_ERR_INVALID, "%s: split along dimension %d of a %d-D tensor", p->name,
                   out->dim, p->ndim);
  int groups = p->tp_groups > 1 ? p->tp_groups : 1;
  int64_t grain = p->tp_grain > 1 ? p->tp_grain : 1, len = p->shape[out->dim];
  if (groups > CH_TP_MAX_GROUPS || len % groups != 0 || (len / groups) % grain != 0)
    return CH_FAIL(CH_ERR_INVALID, "%s: dimension %d (%lld) is not %d groups of whole %lld-element "
                   "grains", p->name, out->dim, (long long)len, groups, (long long)grain);
  int64_t group = len / groups, grains = group / grain;
  int64_t first = (int64_t)ch_part_offset((size_t)grains, size, rank);
  out->ngroups = groups;
  out->count = (int64_t)ch_part_count((size_t)grains, size, rank) * grain;
  for (int g = 0; g < groups; g++) out->start[g] = g * group + first * grain;
  return CH_OK;
}

ch_status ch_tp_layout(const ch_layout *full, int size, int rank, ch_layout *local,
                       ch_tp_slice **slices) {
  ch_param_spec *specs = malloc(sizeof *specs * (size_t)full->nparams);
  ch_tp_slice *sl = malloc(sizeof *sl * (size_t)full->nparams);
  ch_status st = specs && sl ? CH_OK : CH_FAIL(CH_ERR_NOMEM, "tensor-parallel layout");
  for (int i = 0; st == CH_OK && i < full->nparams; i++) {
    specs[i] = full->params[i];
    st = ch_tp_slice_of(&full->params[i], size, rank, &sl[i]);
    if (st == CH_OK && sl[i].dim >= 0) specs[i].shape[sl[i].dim] = sl[i].count * sl[i].ngroups;
  }
  if (st == CH_OK) st = ch_layout_create(specs, full->nparams, local);
  free(specs);
  if (st != CH_OK) {
    free(sl);
    return st;
  }
  *slices = sl;
  return CH_OK;
}

void ch_tp_extract(const ch_layout *full, const float *full_params, const ch_layout *local,
                   const ch_tp_slice *slices, float *local_params) {
  for (int i = 0; i < full->nparams; i++) {
    const ch_param_spec *p = &full->params[i];
    const float *src = full_params + full->offsets[i];
    float *dst = local_params + local->offsets[i];
    const ch_tp_slice *s = &slices[i];
    if (s->dim < 0) {
      memcpy(dst, src, sizeof(float) * (size_t)ch_param_numel(p));
      continue;
    }
    /* Rows of the tensor seen as [outer, len, inner] along the split dimension. */
    int64_t outer = 1, inner = 1, len = p->shape[s->dim];
    for (int d = 0; d < s->dim; d++) outer *= p->shape[d];
    for (int d = s->dim + 1; d < p->ndim; d++) inner *= p->shape[d];
    for (int64_t o = 0; o < outer; o++)
      for (int g = 0; g < s->ngroups; g++) {
        size_t n = (size_t)(s->count * inner);
        memcpy(dst, src + (o * len + s->start[g]) * inner, sizeof(float) * n);
        dst += n;
      }
  }
}
