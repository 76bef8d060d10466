/* Shared by the V2 request parser (v2.c) and its tensor-data halves (v2_data.c: JSON,
 * v2_binary.c: binary): the parse context and the steps of an input they own. Not part of the
 * codec's API. */
#pragma once
#include <cJSON.h>

#include "serve/v2.h"

typedef struct v2_ctx {
  char *err;
  size_t errlen;
  int64_t max_el; /* limit on all inputs' elements together */
  int64_t used;   /* elements of the inputs parsed so far */
} v2_ctx;

#define V2_FAIL(c, ...) codec_fail((c)->err, (c)->errlen, 400, __VA_ARGS__)

/* Parses an input's "shape" into in->ndim/shape/numel, within the elements left (c->used
 * grows). 0 or 400. */
int v2_parse_shape(v2_input *in, const cJSON *shape, v2_ctx *c);
/* Parses an input's "data" (flat or nested as the shape) into freshly allocated f32 (and i32)
 * arrays. 0, 400 or 500. */
int v2_parse_data(v2_input *in, const cJSON *data, v2_ctx *c);
/* Allocates in->f32 (and in->i32 when the datatype is integral) for in->numel values. 0 or
 * 500. */
int v2_alloc_data(v2_input *in, v2_ctx *c);
/* Stores value v as element k of a float input (FP16/FP32/FP64/BF16) or of an integral one
 * whose value was read from JSON: finite, exact integer within the datatype's range when
 * integral (i32 too; *fits cleared when outside int32), and within float32. 0 or 400. */
int v2_store(v2_input *in, int64_t k, double v, int *fits, v2_ctx *c);
/* Decodes an input's binary tensor data p[0..n) (n == in->binary_size) into freshly allocated
 * f32 (and i32) arrays: n must be numel times the datatype's size. 0, 400 or 500. */
int v2_decode_binary(v2_input *in, const unsigned char *p, size_t n, v2_ctx *c);
/* Appends the n values of output o (from iv when not NULL, else from o->f32) to w as binary
 * tensor data of o->dtype. 0, or -1 for a datatype without a binary encoding here (BYTES, FP16,
 * BF16: the models output none) or when w failed. */
int v2_encode_binary(const v2_output *o, int64_t n, const int32_t *iv, jsonw *w);
