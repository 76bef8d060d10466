/* Serial access to one checkpoint file for the `cohort ckpt` tools: open it with HDF5's default
 * (sec2) driver, list its tensors, read and verify them whole, and export the model tensors as
 * safetensors. Nothing here needs MPI; the trainer's collective path is h5io.c. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include <cJSON.h>

#include "ckpt/ckpt_internal.h"
#include "cohort/fs.h"
#include "cohort_build.h"
#include "runtime/h5util.h"

static ch_status h5_fail(ch_status s, const char *path, const char *what, const char *name) {
  char msg[256];
  h5_error(msg);
  return CH_FAIL(s, "%s: %s%s%s%s%s", path, what, name ? " " : "", name ? name : "",
                 msg[0] ? ": " : "", msg);
}

/* "float32", "float64", "int32", ... for the listing; cohort writes only float32. */
static void describe_type(hid_t type, char *out, size_t size) {
  H5T_class_t c = type < 0 ? H5T_NO_CLASS : H5Tget_class(type);
  size_t bits = type < 0 ? 0 : 8 * H5Tget_size(type);
  if (c == H5T_FLOAT) snprintf(out, size, "float%zu", bits);
  else if (c == H5T_INTEGER) snprintf(out, size, "%sint%zu", H5Tget_sign(type) == H5T_SGN_NONE ? "u" : "", bits);
  else snprintf(out, size, "other");
}

/* Orders names with digit runs compared as numbers: layers.2.weight before layers.10.weight,
 * the order of the spec table. */
static int natural_cmp(const char *a, const char *b) {
  while (*a && *b) {
    if (isdigit((unsigned char)*a) && isdigit((unsigned char)*b)) {
      while (*a == '0') a++;
      while (*b == '0') b++;
      size_t la = 0, lb = 0;
      while (isdigit((unsigned char)a[la])) la++;
      while (isdigit((unsigned char)b[lb])) lb++;
      if (la != lb) return la < lb ? -1 : 1;
      int c = strncmp(a, b, la);
      if (c) return c;
      a += la, b += lb;
    } else {
      if (*a != *b) return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
      a++, b++;
    }
  }
  return (*a != 0) - (*b != 0);
}

static int tensor_cmp(const void *x, const void *y) {
  return natural_cmp(((const ch_ckpt_tensor *)x)->name, ((const ch_ckpt_tensor *)y)->name);
}

typedef struct lister {
  ch_ckpt_file *f;
  const char *group; /* "/model" or "/optim" */
  int cap;
  ch_status st;
} lister;

/* H5Lvisit callback: appends every dataset below the group (groups and soft links skipped). */
static herr_t add_dataset(hid_t g, const char *name, const H5L_info_t *info, void *data) {
  lister *ls = data;
  ch_ckpt_file *f = ls->f;
  if (info->type != H5L_TYPE_HARD) return 0;
  hid_t obj = H5Oopen(g, name, H5P_DEFAULT);
  if (obj < 0) return 0;
  if (H5Iget_type(obj) != H5I_DATASET) {
    H5Oclose(obj);
    return 0;
  }
  if (f->ntensors == ls->cap) {
    int cap = ls->cap ? 2 * ls->cap : 32;
    ch_ckpt_tensor *t = realloc(f->tensors, sizeof *t * (size_t)cap);
    if (!t) {
      H5Oclose(obj);
      ls->st = CH_FAIL(CH_ERR_NOMEM, "%s: tensor list", f->path);
      return -1;
    }
    f->tensors = t;
    ls->cap = cap;
  }
  ch_ckpt_tensor *t = &f->tensors[f->ntensors++];
  memset(t, 0, sizeof *t);
  snprintf(t->name, sizeof t->name, "%s/%s", ls->group, name);
  hid_t space = H5Dget_space(obj), type = H5Dget_type(obj);
  hsize_t dims[32];
  int nd = space < 0 ? -1 : H5Sget_simple_extent_ndims(space);
  t->ndim = nd;
  t->numel = nd >= 0 && nd <= 32 ? 1 : -1;
  if (t->numel == 1 && H5Sget_simple_extent_dims(space, dims, NULL) < 0) t->numel = -1;
  for (int d = 0; d < nd && d < 32 && t->numel >= 0; d++) {
    t->numel *= (int64_t)dims[d];
    if (d < CH_MAX_DIMS) t->shape[d] = (int64_t)dims[d];
  }
  describe_type(type, t->dtype, sizeof t->dtype);
  if (space >= 0) H5Sclose(space);
  if (type >= 0) H5Tclose(type);
  H5Oclose(obj);
  return 0;
}

/* Lists the datasets under `group` (absent: none) in natural order. */
static ch_status list_group(ch_ckpt_file *f, const char *group, int *cap) {
  hid_t file = (hid_t)f->h5;
  if (H5Lexists(file, group, H5P_DEFAULT) <= 0) return CH_OK;
  hid_t g = H5Gopen2(file, group, H5P_DEFAULT);
  if (g < 0) return h5_fail(CH_ERR_FORMAT, f->path, "cannot open group", group);
  lister ls = {f, group, *cap, CH_OK};
  int first = f->ntensors;
  herr_t rc = H5Lvisit(g, H5_INDEX_NAME, H5_ITER_INC, add_dataset, &ls);
  H5Gclose(g);
  *cap = ls.cap;
  if (ls.st != CH_OK) return ls.st;
  if (rc < 0) return h5_fail(CH_ERR_FORMAT, f->path, "cannot list group", group);
  qsort(f->tensors + first, (size_t)(f->ntensors - first), sizeof *f->tensors, tensor_cmp);
  return CH_OK;
}

ch_status ch_ckpt_open(const char *path, ch_ckpt_file *f) {
  memset(f, 0, sizeof *f);
  f->h5 = -1;
  snprintf(f->path, sizeof f->path, "%s", path);
  h5_quiet q;
  h5_quiet_begin(&q);
  ch_status st = CH_OK;
  hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file < 0) {
    st = h5_fail(CH_ERR_IO, path, "cannot open (missing, truncated or not HDF5)", NULL);
    goto done;
  }
  f->h5 = (int64_t)file;
  CH_CHECK_GOTO(ckpt_read_meta(file, path, &f->meta), st, done);
  uint32_t version = 0;
  CH_CHECK_GOTO(ckpt_attr_read_u32(file, "format_version", &version), st, done);
  f->format_version = (int)version;
  int cap = 0;
  CH_CHECK_GOTO(list_group(f, "/model", &cap), st, done);
  CH_CHECK_GOTO(list_group(f, "/optim", &cap), st, done);
done:
  h5_quiet_end(&q);
  if (st != CH_OK) ch_ckpt_close(f);
  return st;
}

void ch_ckpt_close(ch_ckpt_file *f) {
  if (f->h5 >= 0) {
    h5_quiet q;
    h5_quiet_begin(&q);
    H5Fclose((hid_t)f->h5);
    h5_quiet_end(&q);
  }
  f->h5 = -1;
  ch_ckpt_meta_free(&f->meta);
  free(f->tensors);
  f->tensors = NULL;
  f->ntensors = 0;
}

const ch_ckpt_tensor *ch_ckpt_model_tensor(const ch_ckpt_file *f, const char *name) {
  char full[CH_NAME_MAX + 16];
  snprintf(full, sizeof full, "/model/%s", name);
  for (int i = 0; i < f->ntensors; i++)
    if (!strcmp(f->tensors[i].name, full)) return &f->tensors[i];
  return NULL;
}

ch_status ch_ckpt_read_tensor(ch_ckpt_file *f, const ch_ckpt_tensor *t, float *data,
                              ch_ckpt_check *check) {
  memset(check, 0, sizeof *check);
  if (strcmp(t->dtype, "float32") != 0)
    return CH_FAIL(CH_ERR_FORMAT, "%s: dataset %s is %s, not float32", f->path, t->name, t->dtype);
  if (t->ndim < 0 || t->ndim > CH_MAX_DIMS || t->numel < 0)
    return CH_FAIL(CH_ERR_FORMAT, "%s: dataset %s has %d dimensions (at most %d)", f->path,
                   t->name, t->ndim, CH_MAX_DIMS);
  float *buf = data ? data : malloc(sizeof(float) * (size_t)(t->numel ? t->numel : 1));
  if (!buf) return CH_FAIL(CH_ERR_NOMEM, "%s: reading %s", f->path, t->name);
  ch_status st = CH_OK;
  h5_quiet q;
  h5_quiet_begin(&q);
  hid_t d = H5Dopen2((hid_t)f->h5, t->name, H5P_DEFAULT);
  if (d < 0) {
    st = h5_fail(CH_ERR_FORMAT, f->path, "cannot open dataset", t->name);
    goto done;
  }
  /* Reading as little-endian float32 gives exactly the bytes the CRC is defined over. */
  if (t->numel > 0 && H5Dread(d, H5T_IEEE_F32LE, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
    st = h5_fail(CH_ERR_IO, f->path, "cannot read dataset", t->name);
  if (st == CH_OK && H5Aexists(d, "crc32") > 0) {
    st = ckpt_attr_read_u32(d, "crc32", &check->stored);
    check->has_crc = st == CH_OK;
    if (st != CH_OK) st = CH_FAIL(CH_ERR_FORMAT, "%s: dataset %s: unreadable crc32 attribute", f->path, t->name);
  }
  H5Dclose(d);
  if (st == CH_OK)
    check->computed = (uint32_t)crc32_z(crc32(0L, Z_NULL, 0), (const Bytef *)buf,
                                        (z_size_t)t->numel * sizeof(float));
done:
  h5_quiet_end(&q);
  if (buf != data) free(buf);
  return st;
}

ch_status ch_ckpt_read_slab(ch_ckpt_file *f, const ch_ckpt_tensor *t, int dim, int nblocks,
                            const int64_t *start, int64_t count, float *data) {
  if (strcmp(t->dtype, "float32") != 0 || t->ndim < 1 || t->ndim > CH_MAX_DIMS || dim >= t->ndim)
    return CH_FAIL(CH_ERR_FORMAT, "%s: dataset %s: not a float32 tensor of >= %d dimensions",
                   f->path, t->name, dim + 1);
  ch_status st = CH_OK;
  h5_quiet q;
  h5_quiet_begin(&q);
  hid_t d = H5Dopen2((hid_t)f->h5, t->name, H5P_DEFAULT), fs = -1, ms = -1;
  if (d < 0) {
    st = h5_fail(CH_ERR_FORMAT, f->path, "cannot open dataset", t->name);
    goto done;
  }
  fs = H5Dget_space(d);
  hsize_t off[CH_MAX_DIMS] = {0}, cnt[CH_MAX_DIMS], n = 1;
  for (int k = 0; k < t->ndim; k++) cnt[k] = (hsize_t)t->shape[k];
  if (dim >= 0) cnt[dim] = (hsize_t)count;
  /* The union of the blocks; HDF5 delivers a union in the file's row-major order. */
  for (int b = 0; b < (dim >= 0 ? nblocks : 1) && st == CH_OK; b++) {
    if (dim >= 0) off[dim] = (hsize_t)start[b];
    if (H5Sselect_hyperslab(fs, b == 0 ? H5S_SELECT_SET : H5S_SELECT_OR, off, NULL, cnt, NULL) < 0)
      st = h5_fail(CH_ERR_FORMAT, f->path, "bad slice of", t->name);
  }
  for (int k = 0; k < t->ndim; k++) n *= cnt[k];
  n *= (hsize_t)(dim >= 0 ? nblocks : 1);
  ms = H5Screate_simple(1, &n, NULL);
  if (st == CH_OK && n > 0 && H5Dread(d, H5T_IEEE_F32LE, ms, fs, H5P_DEFAULT, data) < 0)
    st = h5_fail(CH_ERR_IO, f->path, "cannot read dataset", t->name);
done:
  if (ms >= 0) H5Sclose(ms);
  if (fs >= 0) H5Sclose(fs);
  if (d >= 0) H5Dclose(d);
  h5_quiet_end(&q);
  return st;
}

/* ---- safetensors: u64 LE header length N, N bytes of JSON (space-padded to a multiple of 8 so
 * the data starts aligned), then the tensors' raw little-endian bytes back to back. ---- */

static cJSON *json_i64(int64_t v) {
  /* Raw text: cJSON's numbers are doubles and print large values in exponent form. */
  char s[32];
  snprintf(s, sizeof s, "%" PRId64, v);
  return cJSON_CreateRaw(s);
}

/* The header JSON for the model tensors in `idx`, malloc'ed and padded; NULL when out of memory. */
static char *safetensors_header(const ch_ckpt_file *f, const int *idx, int n, size_t *len) {
  char buf[64];
  cJSON *root = cJSON_CreateObject(), *md = cJSON_AddObjectToObject(root, "__metadata__");
  /* "format": "pt" is what torch-side loaders (transformers) expect of a state_dict file. */
  cJSON_AddStringToObject(md, "format", "pt");
  cJSON_AddStringToObject(md, "cohort_format", CH_CKPT_FORMAT);
  snprintf(buf, sizeof buf, "%d", f->format_version);
  cJSON_AddStringToObject(md, "cohort_format_version", buf);
  snprintf(buf, sizeof buf, "%" PRId64, f->meta.step);
  cJSON_AddStringToObject(md, "step", buf);
  cJSON_AddStringToObject(md, "cohort_version", f->meta.version);
  cJSON_AddStringToObject(md, "created", f->meta.created);
  cJSON_AddStringToObject(md, "exported_by", "cohort " COHORT_VERSION);
  int64_t at = 0;
  for (int i = 0; i < n; i++) {
    const ch_ckpt_tensor *t = &f->tensors[idx[i]];
    cJSON *e = cJSON_AddObjectToObject(root, t->name + strlen("/model/"));
    cJSON_AddStringToObject(e, "dtype", "F32");
    cJSON *shape = cJSON_AddArrayToObject(e, "shape"), *off = cJSON_AddArrayToObject(e, "data_offsets");
    for (int d = 0; d < t->ndim; d++) cJSON_AddItemToArray(shape, json_i64(t->shape[d]));
    cJSON_AddItemToArray(off, json_i64(at));
    at += t->numel * (int64_t)sizeof(float);
    cJSON_AddItemToArray(off, json_i64(at));
  }
  char *text = cJSON_PrintUnformatted(root);
  cJSON_Delete(root);
  if (!text) return NULL;
  size_t raw = strlen(text), padded = (raw + 7) / 8 * 8;
  char *out = realloc(text, padded + 1);
  if (!out) {
    free(text);
    return NULL;
  }
  memset(out + raw, ' ', padded - raw);
  out[padded] = '\0';
  *len = padded;
  return out;
}

static ch_status write_or_fail(FILE *fp, const void *p, size_t n, const char *path) {
  if (n && fwrite(p, 1, n, fp) != n) return CH_FAIL(CH_ERR_IO, "writing %s: %s", path, strerror(errno));
  return CH_OK;
}

ch_status ch_ckpt_export_safetensors(ch_ckpt_file *f, const char *out, int *ntensors,
                                     int64_t *bytes) {
  int n = 0, *idx = malloc(sizeof *idx * (size_t)(f->ntensors + 1));
  char tmp[CH_PATH_MAX * 2 + 8];
  if (!idx) return CH_FAIL(CH_ERR_NOMEM, "export");
  for (int i = 0; i < f->ntensors; i++)
    if (!strncmp(f->tensors[i].name, "/model/", 7)) idx[n++] = i;
  ch_status st = CH_OK;
  char *header = NULL;
  float *buf = NULL;
  FILE *fp = NULL;
  int created = 0;
  size_t hlen = 0;
  int64_t most = 1;
  if (n == 0) {
    st = CH_FAIL(CH_ERR_FORMAT, "%s: no model tensors (/model is empty or missing)", f->path);
    goto done;
  }
  if (snprintf(tmp, sizeof tmp, "%s.tmp", out) >= (int)sizeof tmp) {
    st = CH_FAIL(CH_ERR_INVALID, "output path too long: '%.80s...'", out);
    goto done;
  }
  for (int i = 0; i < n; i++) most = f->tensors[idx[i]].numel > most ? f->tensors[idx[i]].numel : most;
  header = safetensors_header(f, idx, n, &hlen);
  buf = malloc(sizeof(float) * (size_t)most);
  if (!header || !buf) {
    st = CH_FAIL(CH_ERR_NOMEM, "export of %s", f->path);
    goto done;
  }
  fp = fopen(tmp, "wb");
  if (!fp) {
    st = CH_FAIL(CH_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    goto done;
  }
  created = 1;
  unsigned char len8[8];
  for (int b = 0; b < 8; b++) len8[b] = (unsigned char)((uint64_t)hlen >> (8 * b));
  CH_CHECK_GOTO(write_or_fail(fp, len8, 8, tmp), st, done);
  CH_CHECK_GOTO(write_or_fail(fp, header, hlen, tmp), st, done);
  int64_t total = 8 + (int64_t)hlen;
  for (int i = 0; i < n; i++) {
    const ch_ckpt_tensor *t = &f->tensors[idx[i]];
    ch_ckpt_check c;
    CH_CHECK_GOTO(ch_ckpt_read_tensor(f, t, buf, &c), st, done);
    if (!c.has_crc) {
      st = CH_FAIL(CH_ERR_FORMAT, "%s: dataset %s has no crc32 attribute: cannot verify it",
                   f->path, t->name);
      goto done;
    }
    if (c.stored != c.computed) {
      st = CH_FAIL(CH_ERR_FORMAT, "%s: checksum mismatch in dataset %s (stored crc32 %08x, data "
                   "has %08x): the file is corrupt", f->path, t->name, c.stored, c.computed);
      goto done;
    }
    /* buf holds little-endian float32, the byte order safetensors stores. */
    CH_CHECK_GOTO(write_or_fail(fp, buf, (size_t)t->numel * sizeof(float), tmp), st, done);
    total += t->numel * (int64_t)sizeof(float);
  }
  if (fflush(fp) != 0 || fsync(fileno(fp)) != 0) {
    st = CH_FAIL(CH_ERR_IO, "cannot sync %s: %s", tmp, strerror(errno));
    goto done;
  }
  int rc = fclose(fp);
  fp = NULL;
  if (rc != 0) {
    st = CH_FAIL(CH_ERR_IO, "cannot close %s: %s", tmp, strerror(errno));
    goto done;
  }
  if (rename(tmp, out) != 0) {
    st = CH_FAIL(CH_ERR_IO, "cannot rename %s to %s: %s", tmp, out, strerror(errno));
    goto done;
  }
  created = 0;
  CH_CHECK_GOTO(ch_fsync_parent_dir(out), st, done);
  if (ntensors) *ntensors = n;
  if (bytes) *bytes = total;
done:
  if (fp) fclose(fp);
  if (st != CH_OK && created) unlink(tmp);
  free(idx);
  free(header);
  free(buf);
  return st;
}
