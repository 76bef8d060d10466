/* Flat layout of a parameter spec table, seeded initialisation and the 1/n partition. */
#include <stdlib.h>
#include <string.h>

#include "cohort/rng.h"
#include "cohort/tensor.h"

#define CH_ALIGN_ELEMS 16

size_t ch_dtype_size(ch_dtype t) {
  switch (t) {
    case CH_F32: case CH_I32: return 4;
    case CH_F64: case CH_I64: return 8;
    case CH_U8: return 1;
    case CH_BF16: return 2;
  }
  return 0;
}

const char *ch_dtype_name(ch_dtype t) {
  switch (t) {
    case CH_F32: return "float32";
    case CH_F64: return "float64";
    case CH_I32: return "int32";
    case CH_I64: return "int64";
    case CH_U8: return "uint8";
    case CH_BF16: return "bfloat16";
  }
  return "unknown";
}

int64_t ch_param_numel(const ch_param_spec *p) {
  int64_t n = 1;
  for (int i = 0; i < p->ndim; i++) n *= p->shape[i];
  return n;
}

static size_t align_up(size_t x) { return (x + CH_ALIGN_ELEMS - 1) / CH_ALIGN_ELEMS * CH_ALIGN_ELEMS; }

ch_status ch_layout_create(const ch_param_spec *specs, int n, ch_layout *out) {
  memset(out, 0, sizeof *out);
  if (n <= 0) return CH_FAIL(CH_ERR_INVALID, "empty parameter table");
  int nunits = specs[n - 1].unit + 1;
  for (int i = 0; i < n; i++) {
    int prev = i ? specs[i - 1].unit : 0;
    if (specs[i].unit < prev || specs[i].unit > prev + 1 || (i == 0 && specs[0].unit != 0))
      return CH_FAIL(CH_ERR_INVALID, "parameter '%s': units must be numbered 0.. in table order",
                     specs[i].name);
    /* Empty tensors are allowed: a tensor-parallel rank may hold none of a tensor's heads. */
    int bad = specs[i].ndim < 1 || specs[i].ndim > CH_MAX_DIMS;
    for (int d = 0; !bad && d < specs[i].ndim; d++) bad = specs[i].shape[d] < 0;
    if (bad) return CH_FAIL(CH_ERR_INVALID, "parameter '%s': bad shape", specs[i].name);
  }
  out->params = malloc(sizeof *out->params * (size_t)n);
  out->offsets = malloc(sizeof *out->offsets * (size_t)n);
  out->units = calloc((size_t)nunits, sizeof *out->units);
  if (!out->params || !out->offsets || !out->units) {
    ch_layout_destroy(out);
    return CH_FAIL(CH_ERR_NOMEM, "parameter layout");
  }
  memcpy(out->params, specs, sizeof *specs * (size_t)n);
  out->nparams = n;
  out->nunits = nunits;
  size_t off = 0;
  for (int i = 0; i < n; i++) {
    ch_unit *u = &out->units[specs[i].unit];
    if (u->nparams == 0) {
      u->offset = off;
      u->first_param = i;
    }
    u->nparams++;
    out->offsets[i] = off;
    off = align_up(off + (size_t)ch_param_numel(&specs[i]));
    u->numel = off - u->offset;
  }
  out->numel = off;
  return CH_OK;
}

void ch_layout_destroy(ch_layout *l) {
  free(l->params);
  free(l->offsets);
  free(l->units);
  memset(l, 0, sizeof *l);
}

void ch_layout_init_params(const ch_layout *l, float *flat, uint64_t seed) {
  ch_segment all = {0, l->numel, 0};
  ch_shard whole = {&all, 1, l->numel};
  ch_layout_init_shard(l, &whole, CH_ADDR_FLAT, flat, seed);
}

void ch_layout_init_shard(const ch_layout *l, const ch_shard *own, ch_addr addr, float *buf,
                          uint64_t seed) {
  for (int s = 0; s < own->nsegs; s++) {
    const ch_segment *g = &own->segs[s];
    float *out = buf + ch_shard_at(g, addr); /* flat element e at out[e - g->offset] */
    memset(out, 0, sizeof *out * g->numel);
    for (int i = 0; i < l->nparams; i++) {
      const ch_param_spec *p = &l->params[i];
      int64_t n = ch_param_numel(p), off = (int64_t)l->offsets[i];
      int64_t lo = (int64_t)g->offset - off, hi = lo + (int64_t)g->numel;
      lo = lo < 0 ? 0 : lo;
      hi = hi > n ? n : hi;
      uint64_t stream = ch_hash_str(p->name);
      for (int64_t j = lo; j < hi; j++) {
        float *w = out + (off + j - (int64_t)g->offset); /* element j of the parameter */
        switch (p->init) {
          case CH_INIT_ZEROS: *w = 0.0f; break;
          case CH_INIT_ONES: *w = 1.0f; break;
          case CH_INIT_UNIFORM:
            *w = p->init_scale * (2.0f * ch_rng_uniform(seed, stream, (uint64_t)j) - 1.0f);
            break;
          case CH_INIT_NORMAL: *w = p->init_scale * ch_rng_normal(seed, stream, (uint64_t)j); break;
        }
      }
    }
  }
}

size_t ch_part_count(size_t total, int n, int r) {
  return total / (size_t)n + ((size_t)r < total % (size_t)n ? 1 : 0);
}

size_t ch_part_offset(size_t total, int n, int r) {
  size_t base = total / (size_t)n, rem = total % (size_t)n;
  return (size_t)r * base + ((size_t)r < rem ? (size_t)r : rem);
}

ch_status ch_shard_create(const ch_layout *l, int n, int r, int per_unit, ch_shard *out) {
  int k = per_unit ? l->nunits : 1;
  out->segs = calloc((size_t)k, sizeof *out->segs);
  out->nsegs = k;
  out->numel = 0;
  if (!out->segs) return CH_FAIL(CH_ERR_NOMEM, "shard of %d segments", k);
  for (int s = 0; s < k; s++) {
    size_t base = per_unit ? l->units[s].offset : 0, total = per_unit ? l->units[s].numel : l->numel;
    ch_segment *g = &out->segs[s];
    g->offset = base + ch_part_offset(total, n, r);
    g->numel = ch_part_count(total, n, r);
    g->local = out->numel;
    out->numel += g->numel;
  }
  return CH_OK;
}

void ch_shard_destroy(ch_shard *s) {
  free(s->segs);
  s->segs = NULL;
  s->nsegs = 0;
}
