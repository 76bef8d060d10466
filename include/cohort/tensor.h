/* Data types, the parameter spec table, and flat parameter buffers (docs/architecture.md).
 * A model is a table of ch_param_spec rows; that table alone drives allocation, unit layout,
 * sharding, checkpoint names and tensor-parallel slices. Tensors are views into flat buffers. */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "cohort/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ch_dtype { CH_F32 = 0, CH_F64, CH_I32, CH_I64, CH_U8, CH_BF16 } ch_dtype;

/* Bytes per element of `t`. */
CH_API size_t ch_dtype_size(ch_dtype t);
/* Lower-case name ("float32"). */
CH_API const char *ch_dtype_name(ch_dtype t);

typedef enum ch_init {
  CH_INIT_ZEROS = 0,
  CH_INIT_ONES,
  CH_INIT_UNIFORM, /* U(-scale, scale) */
  CH_INIT_NORMAL,  /* N(0, scale^2) */
} ch_init;

/* How tensor parallelism splits a parameter: not at all, along dim 0 (rows), or dim 1 (cols). */
typedef enum ch_tp_split { CH_TP_NONE = 0, CH_TP_ROWS, CH_TP_COLS } ch_tp_split;

#define CH_MAX_DIMS 4
#define CH_NAME_MAX 96

typedef struct ch_param_spec {
  char name[CH_NAME_MAX];   /* stable name, PyTorch state_dict style ("layers.0.weight") */
  int ndim;
  int64_t shape[CH_MAX_DIMS];
  ch_init init;
  float init_scale;
  ch_dtype dtype;
  ch_tp_split split;
  /* The split dimension holds tp_groups equal groups (GPT's fused [q | k | v]: 3), each split
   * over the ranks separately, in whole grains of tp_grain elements (a head: head size). 0 and
   * 1 both mean one group, element grain. */
  int tp_groups;
  int64_t tp_grain;
  int unit;                 /* unit index: parameters of one unit are contiguous */
  int no_decay;             /* excluded from weight decay (biases, norms) */
} ch_param_spec;

/* Number of elements of a spec's logical tensor. */
CH_API int64_t ch_param_numel(const ch_param_spec *p);

/* Layout of a spec table in one flat buffer: parameters in table order, each unit a contiguous
 * range, each parameter's offset aligned to 16 elements (64 bytes for fp32). */
typedef struct ch_unit {
  size_t offset, numel;     /* range in the flat buffer (numel includes alignment padding) */
  int first_param, nparams;
} ch_unit;

typedef struct ch_layout {
  ch_param_spec *params;    /* owned copy of the table */
  size_t *offsets;          /* per parameter, element offset in the flat buffer */
  int nparams;
  ch_unit *units;
  int nunits;
  size_t numel;             /* total elements incl. padding */
} ch_layout;

/* Builds the flat layout of a spec table (copied). Units must be numbered 0..U-1 and appear in
 * non-decreasing order. Errors: CH_ERR_INVALID, CH_ERR_NOMEM. Free with ch_layout_destroy. */
CH_API ch_status ch_layout_create(const ch_param_spec *specs, int n, ch_layout *out);
CH_API void ch_layout_destroy(ch_layout *l);

/* Fills `flat` (l->numel floats) with each parameter's seeded initial values; padding is 0.
 * Values depend only on (seed, parameter name, element index). */
CH_API void ch_layout_init_params(const ch_layout *l, float *flat, uint64_t seed);

/* Contiguous 1/n slice of [0, total): rank r gets ch_part_count elements at ch_part_offset.
 * The first total % n ranks get one extra element, so any n works. */
CH_API size_t ch_part_offset(size_t total, int n, int r);
CH_API size_t ch_part_count(size_t total, int n, int r);

/* What one rank owns of a flat layout: segments [offset, offset + numel) in increasing order,
 * which a packed buffer stores one after the other (segment s from element `local`). DDP's
 * checkpoint slice is one segment; a ZeRO shard is one segment per unit, the rank's ch_part of
 * the unit, so any rank count works. */
typedef struct ch_segment {
  size_t offset, numel, local;
} ch_segment;

typedef struct ch_shard {
  ch_segment *segs;
  int nsegs;
  size_t numel;       /* elements owned: the size of a packed buffer */
} ch_shard;

/* Rank r of n's shard of `l`: per_unit 0 gives its part of the whole buffer (one segment),
 * per_unit 1 its part of every unit (units smaller than n leave some ranks empty segments).
 * Errors: CH_ERR_NOMEM. Free with ch_shard_destroy. */
CH_API ch_status ch_shard_create(const ch_layout *l, int n, int r, int per_unit, ch_shard *out);
CH_API void ch_shard_destroy(ch_shard *s);

/* The one-segment shard [lo, hi), in `seg` (caller storage). */
static inline ch_shard ch_shard_range(ch_segment *seg, size_t lo, size_t hi) {
  *seg = (ch_segment){lo, hi - lo, 0};
  return (ch_shard){seg, 1, hi - lo};
}

/* Where a buffer keeps a shard's elements: at their flat positions (a whole-layout buffer) or
 * packed. ch_shard_at gives a segment's first element in such a buffer. */
typedef enum ch_addr { CH_ADDR_FLAT = 0, CH_ADDR_PACKED } ch_addr;
static inline size_t ch_shard_at(const ch_segment *s, ch_addr a) {
  return a == CH_ADDR_FLAT ? s->offset : s->local;
}

/* ch_layout_init_params restricted to a shard: the same values, written where `addr` says. */
CH_API void ch_layout_init_shard(const ch_layout *l, const ch_shard *own, ch_addr addr, float *buf,
                          uint64_t seed);

#ifdef __cplusplus
}
#endif
