/* The root attributes' checksum (format version 3), docs/checkpoint-format.md.
 * attrs_crc32 is the zlib CRC-32 of a canonical serialisation of every other root attribute, in
 * strcmp order of their names; each contributes
 *   name bytes, 0x00, a class byte ('i' integer, 'f' float, 's' string), the element count n
 *   (uint64 LE), then the n values: 'i' int64 LE, 'f' float64 LE, 's' length (uint64 LE) + bytes.
 * So a changed, added or removed attribute changes it, whatever its type; readers in other
 * languages can recompute it (docs/checkpoint-format.md has it in Python). */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "ckpt/ckpt_internal.h"

#define ATTRS_CRC "attrs_crc32"

typedef struct canon {
  unsigned char *buf;
  size_t len, cap;
  int failed;
} canon;

static void put(canon *c, const void *p, size_t n) {
  if (c->failed) return;
  if (c->len + n > c->cap) {
    size_t cap = c->cap ? c->cap : 4096;
    while (cap < c->len + n) cap *= 2;
    unsigned char *b = realloc(c->buf, cap);
    if (!b) {
      c->failed = 1;
      return;
    }
    c->buf = b;
    c->cap = cap;
  }
  memcpy(c->buf + c->len, p, n);
  c->len += n;
}

static void put_u64(canon *c, uint64_t v) {
  unsigned char b[8];
  for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i));
  put(c, b, 8);
}

typedef struct names {
  char **v;
  int n, cap;
} names;

static herr_t collect(hid_t obj, const char *name, const H5A_info_t *info, void *arg) {
  (void)obj;
  (void)info;
  names *ns = arg;
  if (!strcmp(name, ATTRS_CRC)) return 0;
  if (ns->n == ns->cap) {
    int cap = ns->cap ? 2 * ns->cap : 64;
    char **v = realloc(ns->v, sizeof *v * (size_t)cap);
    if (!v) return -1;
    ns->v = v;
    ns->cap = cap;
  }
  if (!(ns->v[ns->n] = strdup(name))) return -1;
  ns->n++;
  return 0;
}

static int by_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Appends attribute `name` of `obj` to the serialisation. */
static ch_status canon_attr(hid_t obj, const char *path, const char *name, canon *c) {
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  if (a < 0) return ckpt_attr_fail(path, name, "cannot open");
  hid_t ft = H5Aget_type(a), space = H5Aget_space(a);
  hssize_t n = space < 0 ? -1 : H5Sget_simple_extent_npoints(space);
  H5T_class_t cls = ft < 0 ? H5T_NO_CLASS : H5Tget_class(ft);
  if (space >= 0) H5Sclose(space);
  if (ft >= 0) H5Tclose(ft);
  H5Aclose(a);
  ch_status st = CH_OK;
  put(c, name, strlen(name) + 1);
  if (cls == H5T_STRING && n == 1) {
    char *s;
    CH_CHECK(ckpt_attr_read_str(obj, path, name, &s));
    put(c, "s", 1);
    put_u64(c, 1);
    put_u64(c, strlen(s));
    put(c, s, strlen(s));
    free(s);
  } else if ((cls == H5T_INTEGER || cls == H5T_FLOAT) && n >= 0 && n < (1 << 24)) {
    int64_t *v = malloc(sizeof *v * (size_t)(n + 1));
    if (!v) return CH_FAIL(CH_ERR_NOMEM, "attribute '%s'", name);
    a = H5Aopen(obj, name, H5P_DEFAULT);
    /* int64 and float64 are both 8 bytes: the float's bits are written as an integer */
    herr_t rc = a < 0 ? -1 : H5Aread(a, cls == H5T_INTEGER ? H5T_NATIVE_INT64 : H5T_NATIVE_DOUBLE, v);
    if (a >= 0) H5Aclose(a);
    if (rc < 0) st = ckpt_attr_fail(path, name, "cannot read");
    put(c, cls == H5T_INTEGER ? "i" : "f", 1);
    put_u64(c, (uint64_t)n);
    for (hssize_t i = 0; i < n && st == CH_OK; i++) put_u64(c, (uint64_t)v[i]);
    free(v);
  } else {
    st = ckpt_attr_fail(path, name, "not an integer, float or string (cannot be checksummed)");
  }
  return st;
}

/* The checksum of the root attributes of `file` other than attrs_crc32. */
static ch_status attrs_crc(hid_t file, const char *path, uint32_t *crc) {
  names ns = {0};
  hsize_t idx = 0;
  ch_status st = CH_OK;
  if (H5Aiterate2(file, H5_INDEX_NAME, H5_ITER_NATIVE, &idx, collect, &ns) < 0)
    st = CH_FAIL(CH_ERR_FORMAT, "%s: cannot list the root attributes", path);
  if (st == CH_OK && ns.n > 0) qsort(ns.v, (size_t)ns.n, sizeof *ns.v, by_name);
  canon c = {0};
  for (int i = 0; i < ns.n && st == CH_OK; i++) st = canon_attr(file, path, ns.v[i], &c);
  if (st == CH_OK && c.failed) st = CH_FAIL(CH_ERR_NOMEM, "%s: attribute checksum", path);
  if (st == CH_OK)
    *crc = (uint32_t)crc32_z(crc32(0L, Z_NULL, 0), c.buf ? c.buf : (const Bytef *)"", c.len);
  for (int i = 0; i < ns.n; i++) free(ns.v[i]);
  free(ns.v);
  free(c.buf);
  return st;
}

ch_status ckpt_attrs_verify(hid_t file, const char *path, int64_t version, int *verified) {
  *verified = 0;
  if (H5Aexists(file, ATTRS_CRC) <= 0) {
    if (version >= 3)
      return CH_FAIL(CH_ERR_FORMAT, "%s: attribute '" ATTRS_CRC "' (the root attributes' "
                     "checksum) is missing", path);
    return CH_OK;
  }
  uint32_t stored, computed;
  if (ckpt_attr_read_u32(file, ATTRS_CRC, &stored) != CH_OK)
    return CH_FAIL(CH_ERR_FORMAT, "%s: attribute '" ATTRS_CRC "' (the root attributes' checksum) "
                   "is not a readable scalar", path);
  CH_CHECK(attrs_crc(file, path, &computed));
  if (stored != computed)
    return CH_FAIL(CH_ERR_FORMAT, "%s: root attribute checksum mismatch (stored " ATTRS_CRC
                   " %08x, the attributes hash to %08x): an attribute (step, samples, config, "
                   "...) is corrupt", path, stored, computed);
  *verified = 1;
  return CH_OK;
}

ch_status ckpt_attrs_seal(hid_t file, const char *path) {
  uint32_t crc;
  CH_CHECK(attrs_crc(file, path, &crc));
  return ckpt_attr_write_u32(file, ATTRS_CRC, crc);
}
