/* KServe V2 / Open Inference Protocol JSON codecs for the HTTP front end on rank 0
 * (https://kserve.github.io/website/latest/modelserving/data_plane/v2_protocol/).
 * Pure functions: no HTTP, no MPI, no globals of ours; safe to call from any thread (cJSON's
 * parser itself records its last error position in a process-wide variable that we never read).
 * Numeric data crosses into cohort as float32 (the models compute in fp32) and, for integral
 * datatypes, also as int32 (token ids, class labels).
 * Files: v2.c (requests), v2_data.c (datatypes, tensor data), v2_write.c (responses and
 * metadata); the JSON writer they share with openai.c is jsonw.h. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "serve/jsonw.h"

#define CH_V2_MAX_DIMS 8
#define CH_V2_NAME_MAX 64  /* bytes of a tensor name, NUL included */
#define CH_V2_ID_MAX 256   /* bytes of a request id, NUL included */
#define CH_V2_MAX_OUTPUTS 64 /* requested outputs per request */
#define CH_V2_DEFAULT_MAX_ELEMENTS ((int64_t)1 << 24)
#define CH_V2_DEFAULT_MAX_INPUTS 64

/* The V2 tensor datatypes (BF16 is Triton's extension). */
typedef enum v2_dtype {
  CH_V2_BOOL, CH_V2_UINT8, CH_V2_UINT16, CH_V2_UINT32, CH_V2_UINT64,
  CH_V2_INT8, CH_V2_INT16, CH_V2_INT32, CH_V2_INT64,
  CH_V2_FP16, CH_V2_FP32, CH_V2_FP64, CH_V2_BF16, CH_V2_BYTES,
  CH_V2_NDTYPES
} v2_dtype;

/* The protocol's name of a datatype ("FP32"); "?" for a value outside the enum. */
const char *v2_dtype_name(v2_dtype t);
/* Writes a formatted message into err (when errlen allows) and returns `status`: how the
 * codecs (v2.c, openai.c) report a bad request. */
int codec_fail(char *err, size_t errlen, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Looks a name up (case-sensitive, as the protocol says): 0 and *t, or -1 when unknown. */
int v2_dtype_parse(const char *name, v2_dtype *t);
/* 1 for BOOL and the INT/UINT types, else 0. */
int v2_dtype_is_integral(v2_dtype t);

/* One input tensor. f32 always holds the data (row-major, numel values); i32 holds it too when
 * the datatype is integral (BOOL, INTn, UINTn) and every value fits int32, else i32 is NULL. */
typedef struct v2_input {
  char name[CH_V2_NAME_MAX];
  v2_dtype dtype;
  int ndim;
  int64_t shape[CH_V2_MAX_DIMS];
  int64_t numel;
  float *f32;
  int32_t *i32;
} v2_input;

typedef struct v2_request {
  char id[CH_V2_ID_MAX];
  int has_id;
  v2_input *inputs;
  int ninputs;
  char (*outputs)[CH_V2_NAME_MAX]; /* requested output names in request order */
  int noutputs;                    /* 0: all outputs */
} v2_request;

/* max_elements bounds the elements of all inputs together (and each dim); max_inputs the
 * number of inputs. A value <= 0 (or a NULL limits) means the CH_V2_DEFAULT_* value. */
typedef struct v2_limits {
  int64_t max_elements;
  int max_inputs;
} v2_limits;

/* Parses an inference request body (len bytes, no NUL needed). Returns 0 and fills *out, or
 * an HTTP status (400 bad request; 500 out of memory) with a message naming the input and
 * field in err (errlen may be 0); on failure *out is left zeroed. Accepts data flat or nested
 * exactly as the shape (row-major); rejects BYTES inputs, binary data, NaN/Infinity, integral
 * values that are not exact integers of their type's range. Free with v2_request_free. */
int v2_parse_request(const char *body, size_t len, const v2_limits *limits,
                     v2_request *out, char *err, size_t errlen);
/* Frees what v2_parse_request allocated and zeroes *r (safe on a zeroed request). */
void v2_request_free(v2_request *r);

/* One output tensor of the model. Data comes from i32 when set and the datatype is integral,
 * else from f32 (numel values, row-major); BYTES outputs are not supported. */
typedef struct v2_output {
  const char *name;
  v2_dtype dtype;
  int ndim;
  int64_t shape[CH_V2_MAX_DIMS];
  const float *f32;
  const int32_t *i32;
} v2_output;

/* Returns 0 when every output the request names is among `names`, else 400 with a message
 * naming the first unknown one (check before running the model; v2_response needs it). */
int v2_check_outputs(const v2_request *req, const char *const *names, int n,
                     char *err, size_t errlen);

/* Inference response {"model_name","model_version"(if version),"id"(if req has one),
 * "outputs":[{"name","datatype","shape","data"}]}: all outputs in order, or only those req
 * names in req's order (req may be NULL). Floats print with %.9g, so they read back bit-exact
 * as float32; NaN/Inf (not JSON) print as null. Returns malloc'ed text, or NULL when out of
 * memory, an output is malformed (ndim, negative dim, no data, BYTES) or a requested output
 * is missing. */
char *v2_response(const char *model, const char *version, const v2_request *req,
                  const v2_output *outs, int nouts);

/* {"error": msg} with msg escaped; malloc'ed, NULL when out of memory. */
char *v2_error(const char *msg);

/* An input or output in model metadata; shape -1 marks a variable dim (e.g. the batch). */
typedef struct v2_tensor_meta {
  const char *name;
  v2_dtype dtype;
  int ndim;
  int64_t shape[CH_V2_MAX_DIMS];
} v2_tensor_meta;

/* Server metadata (GET /v2): {"name","version","extensions":[...]} listing extensions[0..n);
 * malloc'ed or NULL. */
char *v2_server_metadata(const char *name, const char *version, const char *const *extensions,
                         int n);
/* Model metadata (GET /v2/models/{m}): {"name","versions","platform","inputs","outputs"}, each
 * tensor {"name","datatype","shape"}; versions omitted when nversions is 0. Malloc'ed or NULL. */
char *v2_model_metadata(const char *model, const char *const *versions, int nversions,
                        const char *platform, const v2_tensor_meta *inputs, int nin,
                        const v2_tensor_meta *outputs, int nout);
