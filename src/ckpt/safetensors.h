/* Reading safetensors files (the writer is the export in inspect.c): an 8-byte little-endian
 * header length N, N bytes of JSON naming each tensor's dtype, shape and byte range, then the
 * data. Private to src/ckpt (the Hugging Face import, hf.c). */
#pragma once
#include <stdint.h>
#include "cohort/status.h"
#include "cohort/tensor.h"

typedef struct st_tensor {
  char name[CH_NAME_MAX + 64];
  char dtype[8];              /* "F32", "F16", "BF16", or what the file says */
  int ndim;
  int64_t shape[CH_MAX_DIMS];
  int64_t numel;
  uint64_t begin, end;        /* byte range after the header */
} st_tensor;

typedef struct st_file {
  char path[CH_PATH_MAX];
  int fd;
  uint64_t data_start, size;  /* where the data begins; the file's size */
  st_tensor *tensors;
  int ntensors;
} st_file;

/* Opens `path` and parses its header: every tensor's entry is checked (a known dtype or not,
 * at most CH_MAX_DIMS dimensions, a byte range inside the file that matches dtype x shape).
 * Errors: CH_ERR_IO (cannot open or read), CH_ERR_INVALID naming the file and the entry (not
 * a safetensors file, a malformed entry). Close with st_close. */
ch_status st_open(const char *path, st_file *f);
void st_close(st_file *f);
/* The entry called `name`, or NULL. */
const st_tensor *st_find(const st_file *f, const char *name);
/* Reads tensor `t` as float32 into `out` (t->numel floats), converting F16 and BF16 exactly.
 * Errors: CH_ERR_INVALID naming the tensor (another dtype), CH_ERR_IO. */
ch_status st_read_f32(const st_file *f, const st_tensor *t, float *out);
