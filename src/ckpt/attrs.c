/* Checkpoint metadata as HDF5 attributes of the root group (docs/checkpoint-format.md).
 * Attributes are metadata: in parallel HDF5 every rank writes the same value collectively.
 * The last one written, attrs_crc32, checksums all the others (attrs_crc.c). */
#include <stdlib.h>
#include <string.h>

#include "ckpt/ckpt_internal.h"
#include "runtime/h5util.h"

ch_status ckpt_attr_fail(const char *path, const char *name, const char *what) {
  char msg[256];
  return CH_FAIL(CH_ERR_FORMAT, "%s: attribute '%s': %s%s%s", path, name, what,
                 h5_error(msg)[0] ? ": " : "", msg);
}

static ch_status write_attr(hid_t obj, const char *name, hid_t type, hid_t space, const void *v) {
  hid_t a = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  herr_t rc = a < 0 ? -1 : H5Awrite(a, type, v);
  if (a >= 0) H5Aclose(a);
  if (rc < 0) {
    char msg[256];
    return CH_FAIL(CH_ERR_IO, "writing attribute '%s': %s", name, h5_error(msg));
  }
  return CH_OK;
}

static ch_status write_scalar(hid_t obj, const char *name, hid_t type, const void *v) {
  hid_t space = H5Screate(H5S_SCALAR);
  ch_status st = write_attr(obj, name, type, space, v);
  H5Sclose(space);
  return st;
}

/* Variable-length UTF-8 strings: h5py reads them as str. */
static hid_t str_type(void) {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  return t;
}

static ch_status write_str(hid_t obj, const char *name, const char *s) {
  hid_t t = str_type();
  ch_status st = write_scalar(obj, name, t, &s);
  H5Tclose(t);
  return st;
}

ch_status ckpt_attr_write_u32(hid_t obj, const char *name, uint32_t v) {
  return write_scalar(obj, name, H5T_STD_U32LE, &v);
}

static ch_status write_i64(hid_t obj, const char *name, int64_t v) {
  return write_scalar(obj, name, H5T_STD_I64LE, &v);
}

static ch_status write_f64(hid_t obj, const char *name, double v) {
  return write_scalar(obj, name, H5T_IEEE_F64LE, &v);
}

/* The model attributes (format version 2): every field a loader needs, one attribute each. */
#define MODEL_INTS(X)                                                                          \
  X("model_depth", model.depth) X("model_hidden", model.hidden)                               \
  X("model_n_layer", model.n_layer) X("model_n_head", model.n_head)                          \
  X("model_n_embd", model.n_embd) X("model_context", model.context)                          \
  X("model_vocab_size", model.vocab_size) X("data_features", features)                       \
  X("data_classes", classes)

static const char *const k_model_types[] = {"mlp", "gpt"}, *const k_activations[] = {"relu", "gelu"};

static ch_status write_model(hid_t file, const ch_ckpt_model_info *mi) {
  const ch_model_cfg *mc = &mi->model;
  if (mc->type < 0 || mc->type > 1 || mc->activation < 0 || mc->activation > 1)
    return CH_FAIL(CH_ERR_INVALID, "checkpoint: model type %d / activation %d", mc->type,
                   mc->activation);
  CH_CHECK(write_str(file, "model_type", k_model_types[mc->type]));
  CH_CHECK(write_str(file, "model_activation", k_activations[mc->activation]));
#define WRITE_INT(name, field) CH_CHECK(write_i64(file, name, (int64_t)mi->field));
  MODEL_INTS(WRITE_INT)
#undef WRITE_INT
  CH_CHECK(write_str(file, "tokenizer", mi->tokenizer[0] ? mi->tokenizer : "none"));
  CH_CHECK(write_str(file, "data_path", mi->data_path));
  if (mi->n_class_names > 0) { /* only then: a file without names reads as before */
    char *json;
    CH_CHECK(ckpt_class_names_json(mi, &json));
    ch_status st = write_str(file, "data_class_names", json);
    free(json);
    CH_CHECK(st);
  }
  return CH_OK;
}

ch_status ckpt_write_meta(hid_t file, const char *path, const ch_ckpt_meta *m) {
  CH_CHECK(write_str(file, "format", CH_CKPT_FORMAT));
  CH_CHECK(write_i64(file, "format_version", CH_CKPT_VERSION));
  CH_CHECK(write_i64(file, "step", m->step));
  CH_CHECK(write_i64(file, "samples", m->samples));
  CH_CHECK(write_f64(file, "epoch", m->epoch));
  CH_CHECK(write_i64(file, "rng_seed", m->seed));
  CH_CHECK(write_i64(file, "rng_offset", m->samples));
  CH_CHECK(write_i64(file, "optim_steps", m->optim_steps));
  CH_CHECK(write_i64(file, "world_size", m->world_size));
  CH_CHECK(write_str(file, "strategy", m->strategy));
  CH_CHECK(write_str(file, "cohort_version", m->version));
  CH_CHECK(write_str(file, "created", m->created));
  CH_CHECK(write_str(file, "config", m->config ? m->config : ""));
  CH_CHECK(write_model(file, &m->model));
  if (m->n_interval_losses > 0) {
    hsize_t n = (hsize_t)m->n_interval_losses;
    hid_t space = H5Screate_simple(1, &n, NULL);
    ch_status st = write_attr(file, "log_interval_losses", H5T_IEEE_F64LE, space, m->interval_losses);
    H5Sclose(space);
    CH_CHECK(st);
  }
  /* last: it covers every attribute written above */
  return ckpt_attrs_seal(file, path);
}

/* Reads a scalar numeric attribute, converting to `mem_type`. */
static ch_status read_scalar(hid_t obj, const char *path, const char *name, hid_t mem_type, void *v) {
  if (H5Aexists(obj, name) <= 0) return ckpt_attr_fail(path, name, "missing");
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  if (a < 0) return ckpt_attr_fail(path, name, "cannot open");
  hid_t space = H5Aget_space(a);
  int ok = space >= 0 && H5Sget_simple_extent_npoints(space) == 1;
  if (space >= 0) H5Sclose(space);
  herr_t rc = ok ? H5Aread(a, mem_type, v) : -1;
  H5Aclose(a);
  return rc < 0 ? ckpt_attr_fail(path, name, "not a readable scalar") : CH_OK;
}

ch_status ckpt_attr_read_u32(hid_t obj, const char *name, uint32_t *v) {
  return read_scalar(obj, "", name, H5T_NATIVE_UINT32, v);
}

/* Reads a string attribute (variable or fixed length) into a malloc'ed copy. */
ch_status ckpt_attr_read_str(hid_t obj, const char *path, const char *name, char **out) {
  *out = NULL;
  if (H5Aexists(obj, name) <= 0) return ckpt_attr_fail(path, name, "missing");
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  if (a < 0) return ckpt_attr_fail(path, name, "cannot open");
  hid_t ft = H5Aget_type(a);
  ch_status st = CH_OK;
  if (ft < 0 || H5Tget_class(ft) != H5T_STRING) {
    st = ckpt_attr_fail(path, name, "not a string");
  } else if (H5Tis_variable_str(ft) > 0) {
    hid_t mt = str_type();
    char *s = NULL;
    if (H5Aread(a, mt, &s) < 0 || !s) st = ckpt_attr_fail(path, name, "cannot read");
    else {
      *out = strdup(s);
      H5free_memory(s);
    }
    H5Tclose(mt);
  } else {
    size_t n = H5Tget_size(ft);
    hid_t mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, n + 1);
    *out = calloc(n + 1, 1);
    if (*out && H5Aread(a, mt, *out) < 0) st = ckpt_attr_fail(path, name, "cannot read");
    H5Tclose(mt);
  }
  if (st == CH_OK && !*out) st = CH_FAIL(CH_ERR_NOMEM, "attribute '%s'", name);
  if (ft >= 0) H5Tclose(ft);
  H5Aclose(a);
  return st;
}

static ch_status read_str_into(hid_t obj, const char *path, const char *name, char *buf, size_t size) {
  char *s;
  CH_CHECK(ckpt_attr_read_str(obj, path, name, &s));
  snprintf(buf, size, "%s", s);
  free(s);
  return CH_OK;
}

/* Index of `s` in `names`, or -1. */
static int name_index(const char *s, const char *const *names, int n) {
  for (int i = 0; i < n; i++)
    if (!strcmp(s, names[i])) return i;
  return -1;
}

static ch_status read_model(hid_t file, const char *path, ch_ckpt_model_info *mi) {
  char type[16], act[16];
  int64_t v;
  CH_CHECK(read_str_into(file, path, "model_type", type, sizeof type));
  CH_CHECK(read_str_into(file, path, "model_activation", act, sizeof act));
  mi->model.type = name_index(type, k_model_types, 2);
  mi->model.activation = name_index(act, k_activations, 2);
  if (mi->model.type < 0) return ckpt_attr_fail(path, "model_type", "not mlp or gpt");
  if (mi->model.activation < 0) return ckpt_attr_fail(path, "model_activation", "not relu or gelu");
  /* int fields must fit: a value out of range is a damaged file, not a model */
#define READ_INT(name, field)                                                                  \
  CH_CHECK(read_scalar(file, path, name, H5T_NATIVE_INT64, &v));                              \
  mi->field = v;                                                       \
  if ((int64_t)mi->field != v || v < 0) return ckpt_attr_fail(path, name, "out of range");
  MODEL_INTS(READ_INT)
#undef READ_INT
  CH_CHECK(read_str_into(file, path, "tokenizer", mi->tokenizer, sizeof mi->tokenizer));
  CH_CHECK(read_str_into(file, path, "data_path", mi->data_path, sizeof mi->data_path));
  mi->n_class_names = 0;
  if (H5Aexists(file, "data_class_names") > 0) {
    char *json;
    CH_CHECK(ckpt_attr_read_str(file, path, "data_class_names", &json));
    ch_status st = ckpt_class_names_parse(path, json, mi);
    free(json);
    CH_CHECK(st);
  }
  return CH_OK;
}

ch_status ckpt_read_meta(hid_t file, const char *path, ch_ckpt_meta *m) {
  memset(m, 0, sizeof *m);
  char format[64];
  if (H5Aexists(file, "format") <= 0)
    return CH_FAIL(CH_ERR_FORMAT, "%s is not a cohort checkpoint (no 'format' attribute)", path);
  CH_CHECK(read_str_into(file, path, "format", format, sizeof format));
  if (strcmp(format, CH_CKPT_FORMAT) != 0)
    return CH_FAIL(CH_ERR_FORMAT, "%s is not a cohort checkpoint (format '%s')", path, format);
  int64_t version = 0, ws = 0;
  CH_CHECK(read_scalar(file, path, "format_version", H5T_NATIVE_INT64, &version));
  /* before any value is believed, the version included */
  CH_CHECK(ckpt_attrs_verify(file, path, version, &m->attrs_verified));
  if (version < 1 || version > CH_CKPT_VERSION)
    return CH_FAIL(CH_ERR_FORMAT, "%s: format version %lld is not supported (this cohort reads "
                   "1..%d)", path, (long long)version, CH_CKPT_VERSION);
  CH_CHECK(read_scalar(file, path, "step", H5T_NATIVE_INT64, &m->step));
  CH_CHECK(read_scalar(file, path, "samples", H5T_NATIVE_INT64, &m->samples));
  CH_CHECK(read_scalar(file, path, "epoch", H5T_NATIVE_DOUBLE, &m->epoch));
  CH_CHECK(read_scalar(file, path, "rng_seed", H5T_NATIVE_INT64, &m->seed));
  CH_CHECK(read_scalar(file, path, "optim_steps", H5T_NATIVE_INT64, &m->optim_steps));
  CH_CHECK(read_scalar(file, path, "world_size", H5T_NATIVE_INT64, &ws));
  m->world_size = (int)ws;
  CH_CHECK(read_str_into(file, path, "strategy", m->strategy, sizeof m->strategy));
  CH_CHECK(read_str_into(file, path, "cohort_version", m->version, sizeof m->version));
  CH_CHECK(read_str_into(file, path, "created", m->created, sizeof m->created));
  CH_CHECK(ckpt_attr_read_str(file, path, "config", &m->config));
  if (version >= 2) {
    CH_CHECK(read_model(file, path, &m->model));
    m->has_model = 1;
  }
  if (H5Aexists(file, "log_interval_losses") > 0) {
    hid_t a = H5Aopen(file, "log_interval_losses", H5P_DEFAULT);
    hid_t space = a < 0 ? -1 : H5Aget_space(a);
    hssize_t n = space < 0 ? -1 : H5Sget_simple_extent_npoints(space);
    if (space >= 0) H5Sclose(space);
    if (n > 0 && n < (1 << 24)) {
      m->interval_losses = malloc(sizeof(double) * (size_t)n);
      if (m->interval_losses && H5Aread(a, H5T_NATIVE_DOUBLE, m->interval_losses) >= 0)
        m->n_interval_losses = (int)n;
    }
    if (a >= 0) H5Aclose(a);
    if (m->n_interval_losses != n) return ckpt_attr_fail(path, "log_interval_losses", "cannot read");
  }
  return CH_OK;
}

void ch_ckpt_meta_free(ch_ckpt_meta *m) {
  free(m->config);
  free(m->interval_losses);
  m->config = NULL;
  m->interval_losses = NULL;
  m->n_interval_losses = 0;
}
