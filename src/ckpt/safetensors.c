/* Reading safetensors files (safetensors.h). The header is JSON (cJSON); the data is read per
 * tensor with pread, so a file of any size needs only the tensor in hand in memory. */
#include "ckpt/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cJSON.h>

/* The header may not exceed 100 MB (the reference implementation's own limit). */
#define ST_MAX_HEADER (100u << 20)

static int dtype_bytes(const char *d) {
  if (!strcmp(d, "F32")) return 4;
  if (!strcmp(d, "F16") || !strcmp(d, "BF16")) return 2;
  return 0;
}

static ch_status read_at(const st_file *f, void *buf, size_t n, uint64_t at) {
  for (size_t got = 0; got < n;) {
    ssize_t r = pread(f->fd, (char *)buf + got, n - got, (off_t)(at + got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0)
      return CH_FAIL(CH_ERR_IO, "%s: cannot read: %s", f->path, r < 0 ? strerror(errno) : "file too short");
    got += (size_t)r;
  }
  return CH_OK;
}

/* One header entry into *t; CH_ERR_INVALID naming it when malformed. */
static ch_status parse_entry(const st_file *f, const cJSON *e, st_tensor *t) {
  memset(t, 0, sizeof *t);
  if (strlen(e->string) >= sizeof t->name)
    return CH_FAIL(CH_ERR_INVALID, "%s: tensor name too long: '%.60s...'", f->path, e->string);
  snprintf(t->name, sizeof t->name, "%s", e->string);
  const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype"),
              *sh = cJSON_GetObjectItemCaseSensitive(e, "shape"),
              *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
  if (!cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2)
    return CH_FAIL(CH_ERR_INVALID, "%s: tensor %s: the header entry lacks dtype, shape or "
                   "data_offsets", f->path, t->name);
  snprintf(t->dtype, sizeof t->dtype, "%s", dt->valuestring);
  t->ndim = cJSON_GetArraySize(sh);
  if (t->ndim > CH_MAX_DIMS)
    return CH_FAIL(CH_ERR_INVALID, "%s: tensor %s has %d dimensions (at most %d)", f->path,
                   t->name, t->ndim, CH_MAX_DIMS);
  t->numel = 1;
  for (int d = 0; d < t->ndim; d++) {
    const cJSON *v = cJSON_GetArrayItem(sh, d);
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 9e15)
      return CH_FAIL(CH_ERR_INVALID, "%s: tensor %s: bad shape", f->path, t->name);
    t->shape[d] = (int64_t)v->valuedouble;
    t->numel *= t->shape[d];
  }
  const cJSON *b = cJSON_GetArrayItem(off, 0), *e2 = cJSON_GetArrayItem(off, 1);
  if (!cJSON_IsNumber(b) || !cJSON_IsNumber(e2) || b->valuedouble < 0 || e2->valuedouble < b->valuedouble)
    return CH_FAIL(CH_ERR_INVALID, "%s: tensor %s: bad data_offsets", f->path, t->name);
  t->begin = (uint64_t)b->valuedouble;
  t->end = (uint64_t)e2->valuedouble;
  int size = dtype_bytes(t->dtype);
  if (size && t->end - t->begin != (uint64_t)t->numel * (uint64_t)size)
    return CH_FAIL(CH_ERR_INVALID, "%s: tensor %s: data_offsets span %llu bytes, %s of its shape "
                   "needs %llu", f->path, t->name, (unsigned long long)(t->end - t->begin),
                   t->dtype, (unsigned long long)t->numel * (unsigned long long)size);
  if (f->data_start + t->end > f->size)
    return CH_FAIL(CH_ERR_INVALID, "%s: tensor %s lies past the end of the file (truncated?)",
                   f->path, t->name);
  return CH_OK;
}

ch_status st_open(const char *path, st_file *f) {
  memset(f, 0, sizeof *f);
  snprintf(f->path, sizeof f->path, "%s", path);
  f->fd = open(path, O_RDONLY | O_CLOEXEC);
  if (f->fd < 0) return CH_FAIL(CH_ERR_IO, "cannot open %s: %s", path, strerror(errno));
  struct stat sb;
  unsigned char len8[8];
  char *text = NULL;
  cJSON *root = NULL;
  ch_status st = CH_OK;
  uint64_t n = 0;
  if (fstat(f->fd, &sb) != 0) {
    st = CH_FAIL(CH_ERR_IO, "%s: %s", path, strerror(errno));
    goto done;
  }
  f->size = (uint64_t)sb.st_size;
  if (f->size < 8) {
    st = CH_FAIL(CH_ERR_INVALID, "%s is not a safetensors file (%llu bytes)", path,
                 (unsigned long long)f->size);
    goto done;
  }
  CH_CHECK_GOTO(read_at(f, len8, 8, 0), st, done);
  for (int b = 0; b < 8; b++) n |= (uint64_t)len8[b] << (8 * b);
  if (n < 2 || n > ST_MAX_HEADER || n > f->size - 8) {
    st = CH_FAIL(CH_ERR_INVALID, "%s is not a safetensors file (header length %llu in a file of "
                 "%llu bytes)", path, (unsigned long long)n, (unsigned long long)f->size);
    goto done;
  }
  f->data_start = 8 + n;
  text = malloc(n + 1);
  if (!text) {
    st = CH_FAIL(CH_ERR_NOMEM, "%s: header", path);
    goto done;
  }
  CH_CHECK_GOTO(read_at(f, text, n, 8), st, done);
  text[n] = '\0';
  root = cJSON_Parse(text);
  if (!cJSON_IsObject(root)) {
    st = CH_FAIL(CH_ERR_INVALID, "%s is not a safetensors file (its header is not a JSON object)", path);
    goto done;
  }
  f->tensors = calloc((size_t)cJSON_GetArraySize(root) + 1, sizeof *f->tensors);
  if (!f->tensors) {
    st = CH_FAIL(CH_ERR_NOMEM, "%s: tensor list", path);
    goto done;
  }
  for (const cJSON *e = root->child; e; e = e->next) {
    if (!strcmp(e->string, "__metadata__")) continue;
    CH_CHECK_GOTO(parse_entry(f, e, &f->tensors[f->ntensors]), st, done);
    f->ntensors++;
  }
done:
  cJSON_Delete(root);
  free(text);
  if (st != CH_OK) st_close(f);
  return st;
}

void st_close(st_file *f) {
  if (f->fd >= 0) close(f->fd);
  f->fd = -1;
  free(f->tensors);
  f->tensors = NULL;
  f->ntensors = 0;
}

const st_tensor *st_find(const st_file *f, const char *name) {
  for (int i = 0; i < f->ntensors; i++)
    if (!strcmp(f->tensors[i].name, name)) return &f->tensors[i];
  return NULL;
}

/* IEEE half -> float, exactly (subnormals, infinities and NaNs included). */
static float half_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 31, m = h & 1023, bits;
  if (e == 31) bits = sign | 0x7f800000u | (m << 13);
  else if (e) bits = sign | ((e + 112) << 23) | (m << 13);
  else if (!m) bits = sign;
  else { /* subnormal: normalise */
    e = 113;
    while (!(m & 1024)) m <<= 1, e--;
    bits = sign | (e << 23) | ((m & 1023) << 13);
  }
  float v;
  memcpy(&v, &bits, sizeof v);
  return v;
}

ch_status st_read_f32(const st_file *f, const st_tensor *t, float *out) {
  int size = dtype_bytes(t->dtype);
  if (!size)
    return CH_FAIL(CH_ERR_INVALID, "%s: tensor %s is %s; only F32, F16 and BF16 are read",
                   f->path, t->name, t->dtype);
  /* Read into the tail of `out`, then widen front to back: element i's 4 bytes never overrun
   * the 2-byte elements not yet read (4 i + 4 <= 2 numel + 2 i + 2 for i < numel). */
  size_t n = (size_t)t->numel, bytes = n * (size_t)size;
  unsigned char *raw = (unsigned char *)out + (4 * n - bytes);
  CH_CHECK(read_at(f, raw, bytes, f->data_start + t->begin));
  if (size == 4) return CH_OK; /* little-endian float32: the host's order (x86-64, aarch64) */
  int bf16 = !strcmp(t->dtype, "BF16");
  for (size_t i = 0; i < n; i++) {
    uint16_t h = (uint16_t)(raw[2 * i] | raw[2 * i + 1] << 8);
    if (bf16) {
      uint32_t bits = (uint32_t)h << 16;
      memcpy(&out[i], &bits, sizeof bits);
    } else {
      out[i] = half_to_float(h);
    }
  }
  return CH_OK;
}
