/* Shared by the V2 request parser (v2.c) and its tensor-data half (v2_data.c): the parse
 * context and the two steps of an input that v2_data.c owns. Not part of the codec's API. */
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
