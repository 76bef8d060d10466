/* KServe V2 / Open Inference Protocol JSON codecs for the HTTP front end on rank 0
 * (https://kserve.github.io/website/latest/modelserving/data_plane/v2_protocol/).
 * Pure functions: no HTTP, no MPI, no globals of ours; safe to call from any thread (cJSON's
 * parser itself records its last error position in a process-wide variable that we never read).
 * Numeric data crosses into cohort as float32 (the models compute in fp32) and, for integral
 * datatypes, also as int32 (token ids, class labels).
 * Triton's binary tensor data extension is supported both ways: a request body may be a JSON
 * header followed by raw little-endian tensor bytes (inputs with "parameters":
 * {"binary_data_size": N}, the header's length in Inference-Header-Content-Length), and a
 * response carries outputs the same way when the request asks ("binary_data" per output,
 * "binary_data_output" for all).
 * Files: v2.c (requests), v2_data.c (datatypes, JSON tensor data), v2_binary.c (binary tensor
 * data), v2_write.c (responses and metadata), v2_config.c (Triton's model configuration); the
 * JSON writer they share with openai.c is jsonw.h. */
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
/* Bytes of one element in binary tensor data (BOOL 1, FP16 2, ...); 0 for BYTES, whose elements
 * are each a 4-byte length and the bytes. */
size_t v2_dtype_size(v2_dtype t);
/* Whether an input of datatype `given` may feed a model input of datatype `want`: the same
 * type, or, for an INT32 input (token ids, labels), any INTn/UINTn type (values are checked to
 * fit int32). A float input takes only its own type: FP64 for an FP32 input is refused rather
 * than rounded. */
int v2_dtype_accepts(v2_dtype want, v2_dtype given);

/* An input or output in model metadata; shape -1 marks a variable dim (e.g. the batch). */
typedef struct v2_tensor_meta {
  const char *name;
  v2_dtype dtype;
  int ndim;
  int64_t shape[CH_V2_MAX_DIMS];
} v2_tensor_meta;

/* One input tensor. f32 always holds the data (row-major, numel values); i32 holds it too when
 * the datatype is integral (BOOL, INTn, UINTn) and every value fits int32, else i32 is NULL. */
typedef struct v2_input {
  char name[CH_V2_NAME_MAX];
  v2_dtype dtype;
  int ndim;
  int64_t shape[CH_V2_MAX_DIMS];
  int64_t numel;
  int64_t binary_size; /* parameters.binary_data_size; -1 when the data came as JSON */
  float *f32;
  int32_t *i32;
} v2_input;

typedef struct v2_request {
  char id[CH_V2_ID_MAX];
  int has_id;
  v2_input *inputs;
  int ninputs;
  char (*outputs)[CH_V2_NAME_MAX]; /* requested output names in request order */
  signed char *output_binary;      /* per requested output: parameters.binary_data, -1 unset */
  int noutputs;                    /* 0: all outputs */
  int binary_output;               /* parameters.binary_data_output: the default for outputs */
} v2_request;

/* max_elements bounds the elements of all inputs together (and each dim); max_inputs the
 * number of inputs. A value <= 0 (or a NULL limits) means the CH_V2_DEFAULT_* value. */
typedef struct v2_limits {
  int64_t max_elements;
  int max_inputs;
} v2_limits;

/* Parses an inference request body (len bytes, no NUL needed) that is JSON only. Returns 0
 * and fills *out, or an HTTP status (400 bad request; 500 out of memory) with a message naming
 * the input and field in err (errlen may be 0); on failure *out is left zeroed. Accepts data
 * flat or nested exactly as the shape (row-major); rejects BYTES inputs, NaN/Infinity,
 * integral values that are not exact integers of their type's range. Free with
 * v2_request_free. Same as v2_parse_request_binary(body, len, len, ...). */
int v2_parse_request(const char *body, size_t len, const v2_limits *limits,
                     v2_request *out, char *err, size_t errlen);
/* The same for a body whose first json_len bytes are the JSON header and the rest the binary
 * tensor data of the inputs that name a "binary_data_size", in input order (Triton's binary
 * tensor data extension). Each size must equal the input's elements times its datatype's size
 * and the sizes must add up to the binary part exactly (else 400 naming the input); binary
 * floats must be finite, as in JSON. json_len > len is a 400. */
int v2_parse_request_binary(const char *body, size_t len, size_t json_len,
                            const v2_limits *limits, v2_request *out, char *err, size_t errlen);
/* The JSON header's length from an Inference-Header-Content-Length value (value NULL: no
 * header, the whole body is JSON): 0 and *json_len, or 400 with a message when the value is not
 * a decimal byte count within the body's len bytes. */
int v2_header_length(const char *value, size_t len, size_t *json_len, char *err, size_t errlen);
/* Returns 0 when the request's inputs are exactly the model's: every input named in `model`
 * (no unknown name, none missing) with a datatype v2_dtype_accepts; else 400 with a message
 * naming the input (check before running the model). */
int v2_check_inputs(const v2_request *req, const v2_tensor_meta *model, int n, char *err,
                    size_t errlen);
/* Frees what v2_parse_request allocated and zeroes *r (safe on a zeroed request). */
void v2_request_free(v2_request *r);

/* One output tensor of the model. Data comes from i32 when set and the datatype is integral,
 * else from f32 (numel values, row-major); a BYTES output's from str (numel NUL-terminated
 * strings: JSON strings, or in binary data each a 4-byte little-endian length and its bytes). */
typedef struct v2_output {
  const char *name;
  v2_dtype dtype;
  int ndim;
  int64_t shape[CH_V2_MAX_DIMS];
  const float *f32;
  const int32_t *i32;
  const char *const *str;
} v2_output;

/* Returns 0 when every output the request names is among `names`, else 400 with a message
 * naming the first unknown one (check before running the model; v2_response needs it). */
int v2_check_outputs(const v2_request *req, const char *const *names, int n,
                     char *err, size_t errlen);

/* Inference response {"model_name","model_version"(if version),"id"(if req has one),
 * "outputs":[{"name","datatype","shape","data"}]}: all outputs in order, or only those req
 * names in req's order (req may be NULL). Floats print with %.9g, so they read back bit-exact
 * as float32; NaN/Inf (not JSON) print as null. Returns malloc'ed text, or NULL when out of
 * memory, an output is malformed (ndim, negative dim, no data) or a requested output
 * is missing. */
char *v2_response(const char *model, const char *version, const v2_request *req,
                  const v2_output *outs, int nouts);

/* A response body that may end with binary tensor data: `json_len` bytes of JSON, then
 * `len - json_len` bytes of outputs' data (binary when json_len < len). data is malloc'ed. */
typedef struct v2_body {
  char *data;
  size_t len, json_len;
} v2_body;
/* The inference response as v2_response, except that each output the request wants in binary
 * ("binary_data": true, or unset under "binary_data_output": true) carries "parameters":
 * {"binary_data_size": N} instead of "data", its bytes (little-endian, row-major) following the
 * JSON in output order. 0 and *body, or -1 (as v2_response's NULL; also an FP16/BF16 output in
 * binary). The HTTP layer sends Inference-Header-Content-Length: json_len when binary. */
int v2_response_body(const char *model, const char *version, const v2_request *req,
                     const v2_output *outs, int nouts, v2_body *body);

/* {"error": msg} with msg escaped; malloc'ed, NULL when out of memory. */
char *v2_error(const char *msg);


/* Server metadata (GET /v2): {"name","version","extensions":[...]} listing extensions[0..n);
 * malloc'ed or NULL. */
char *v2_server_metadata(const char *name, const char *version, const char *const *extensions,
                         int n);
/* Model metadata (GET /v2/models/{m}): {"name","versions","platform","inputs","outputs"}, each
 * tensor {"name","datatype","shape"}; versions omitted when nversions is 0. Malloc'ed or NULL. */
char *v2_model_metadata(const char *model, const char *const *versions, int nversions,
                        const char *platform, const v2_tensor_meta *inputs, int nin,
                        const v2_tensor_meta *outputs, int nout);

/* Triton's model configuration (GET /v2/models/{m}/config, what perf_analyzer and
 * tritonclient's get_model_config read): {"name","platform","backend":"cohort",
 * "version_policy","max_batch_size","input":[{"name","data_type":"TYPE_FP32","format",
 * "dims",...}],"output":[...],"dynamic_batching":{...}}. With max_batch_size > 0 each tensor's
 * leading -1 (the batch) is left out of "dims", as Triton does, and a tensor left with no dims
 * gets [1] and "reshape": {"shape": []}; dynamic_batching (max_queue_delay_microseconds) is
 * written only then. Malloc'ed or NULL. */
char *v2_model_config(const char *model, const char *platform, int max_batch_size,
                      int64_t max_queue_delay_us, const v2_tensor_meta *inputs, int nin,
                      const v2_tensor_meta *outputs, int nout);
