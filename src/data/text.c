/* Text -> token dataset converter (`cohort data text`) and the loader of the tokenizer it
 * stores. Layout (docs/data-format.md): /train/tokens, /val/tokens int32 1-D, contiguous (a
 * window is then one file extent for the parallel reader); root attributes vocab_size, tokenizer,
 * source. A GPT-2 tokenizer is stored as the two texts it was made from, as uint8 datasets
 * /tokenizer/encoder_json and /tokenizer/bpe_merges rather than attributes: GPT-2's
 * encoder.json is about 1 MB, past HDF5's 64 KiB limit for attributes in the default (compact)
 * object header storage. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cohort/data.h"
#include "data/bpe.h"
#include "data/data_internal.h"
#include "data/gzin.h"
#include "runtime/h5util.h"

/* Longest `source` attribute written; more input names are summarised. */
#define SOURCE_MAX 4000

typedef struct text_buf {
  char *s;
  size_t len, cap;
} text_buf;

static ch_status buf_reserve(text_buf *b, size_t more) {
  if (b->cap - b->len >= more) return CH_OK;
  size_t cap = b->cap ? b->cap : 1 << 16;
  while (cap - b->len < more) cap *= 2;
  char *s = realloc(b->s, cap);
  if (!s) return CH_FAIL(CH_ERR_NOMEM, "text buffer of %zu bytes", cap);
  b->s = s;
  b->cap = cap;
  return CH_OK;
}

/* Appends the whole file (gzip or plain: zlib reads plain files transparently) to b. */
static ch_status append_file(text_buf *b, const char *path) {
  gzFile f;
  CH_CHECK(gzin_open(path, &f));
  ch_status st = CH_OK;
  for (;;) {
    CH_CHECK_GOTO(buf_reserve(b, 1 << 16), st, done);
    size_t room = b->cap - b->len > (1u << 30) ? (1u << 30) : b->cap - b->len, got;
    CH_CHECK_GOTO(gzin_read(f, path, b->s + b->len, room, &got), st, done);
    if (got == 0) break;
    b->len += got;
  }
done:
  gzclose(f);
  return st;
}

/* The concatenated inputs (see ch_data_text_convert for the joining rule). */
static ch_status read_inputs(const char *const *paths, int nin, text_buf *b) {
  for (int i = 0; i < nin; i++) {
    size_t start = b->len;
    CH_CHECK(append_file(b, paths[i]));
    if (i + 1 < nin && b->len > start && b->s[b->len - 1] != '\n') {
      CH_CHECK(buf_reserve(b, 1));
      b->s[b->len++] = '\n';
    }
  }
  return CH_OK;
}

/* Input base names joined with ", " (shortened past SOURCE_MAX). */
static char *source_names(const char *const *paths, int nin) {
  char *s = malloc(SOURCE_MAX + 64);
  if (!s) return NULL;
  size_t len = 0;
  s[0] = '\0';
  for (int i = 0; i < nin; i++) {
    const char *slash = strrchr(paths[i], '/'), *base = slash ? slash + 1 : paths[i];
    if (len + strlen(base) + 2 > SOURCE_MAX) {
      snprintf(s + len, 64, "%s... (%d files)", i ? ", " : "", nin);
      break;
    }
    len += (size_t)sprintf(s + len, "%s%s", i ? ", " : "", base);
  }
  return s;
}

/* Entropy in bits of the empirical distribution of tokens[0..n): -sum p log2 p. */
static ch_status unigram_entropy(const int32_t *tokens, int64_t n, int64_t vocab, double *bits) {
  int64_t *count = calloc((size_t)vocab, sizeof *count);
  if (!count) return CH_FAIL(CH_ERR_NOMEM, "token counts for %lld ids", (long long)vocab);
  for (int64_t i = 0; i < n; i++) count[tokens[i]]++;
  double h = 0;
  for (int64_t v = 0; v < vocab; v++)
    if (count[v]) {
      double p = (double)count[v] / (double)n;
      h -= p * log2(p);
    }
  free(count);
  *bits = h;
  return CH_OK;
}

static ch_status write_tokens(hid_t file, const char *split, const int32_t *tokens, int64_t n, const char *path) {
  hid_t g = H5Gcreate2(file, split, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (g < 0) return data_h5_fail(CH_ERR_IO, path, split);
  hsize_t dims[1] = {(hsize_t)n};
  ch_status st = data_write_dataset(g, "tokens", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, dims, tokens, path);
  H5Gclose(g);
  return st;
}

static ch_status write_tokenizer(hid_t file, const ch_tokenizer *tok, const char *path) {
  const char *enc, *merges;
  size_t enc_len, merges_len;
  tokenizer_texts(tok, &enc, &enc_len, &merges, &merges_len);
  if (!enc) return CH_OK;
  hid_t g = H5Gcreate2(file, "tokenizer", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (g < 0) return data_h5_fail(CH_ERR_IO, path, "tokenizer");
  hsize_t de[1] = {enc_len}, dm[1] = {merges_len};
  ch_status st = data_write_dataset(g, "encoder_json", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, de, enc, path);
  if (st == CH_OK) st = data_write_dataset(g, "bpe_merges", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, dm, merges, path);
  H5Gclose(g);
  return st;
}

/* A float64 scalar attribute of the root group. */
static ch_status write_attr_f64(hid_t file, const char *name, double v, const char *path) {
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t a = space < 0 ? -1 : H5Acreate2(file, name, H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT);
  herr_t w = a < 0 ? -1 : H5Awrite(a, H5T_NATIVE_DOUBLE, &v);
  if (a >= 0) H5Aclose(a);
  if (space >= 0) H5Sclose(space);
  return w < 0 ? data_h5_fail(CH_ERR_IO, path, name) : CH_OK;
}

static ch_status write_file(const char *tmp, const int32_t *tokens, int64_t ntrain, int64_t nval,
                            const ch_tokenizer *tok, const char *source, double entropy_bits) {
  hid_t file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (file < 0) return data_h5_fail(CH_ERR_IO, tmp, "create failed");
  ch_status st = CH_OK;
  CH_CHECK_GOTO(write_tokens(file, "train", tokens, ntrain, tmp), st, done);
  CH_CHECK_GOTO(write_tokens(file, "val", tokens + ntrain, nval, tmp), st, done);
  CH_CHECK_GOTO(data_write_attr_i64(file, "vocab_size", ch_tokenizer_vocab(tok), tmp), st, done);
  CH_CHECK_GOTO(data_write_attr_str(file, "tokenizer", ch_tokenizer_name(tok), tmp), st, done);
  CH_CHECK_GOTO(data_write_attr_str(file, "source", source, tmp), st, done);
  /* In nats, the unit of the trainer's cross-entropy: the loss of a model ignoring context. */
  CH_CHECK_GOTO(write_attr_f64(file, "unigram_entropy", entropy_bits * 0.69314718055994531, tmp), st,
                done);
  CH_CHECK_GOTO(write_tokenizer(file, tok, tmp), st, done);
done:
  if (H5Fclose(file) < 0 && st == CH_OK) st = data_h5_fail(CH_ERR_IO, tmp, "close failed");
  return st;
}

/* Split sizes: val = round(f * n), both at least 2. */
static ch_status split_sizes(int64_t n, double f, int64_t *ntrain, int64_t *nval) {
  *nval = (int64_t)floor(f * (double)n + 0.5);
  *ntrain = n - *nval;
  if (n < 4)
    return CH_FAIL(CH_ERR_FORMAT, "the text has %lld token%s; train and val need at least 2 each", (long long)n,
                   n == 1 ? "" : "s");
  if (*nval < 2 || *ntrain < 2)
    return CH_FAIL(CH_ERR_INVALID, "val fraction %g of %lld tokens gives train %lld and val %lld tokens; "
                   "each split needs at least 2", f, (long long)n, (long long)*ntrain, (long long)*nval);
  return CH_OK;
}

ch_status ch_data_text_convert(const char *const *in_paths, int nin, const char *out_path,
                               const ch_text_opts *opts, ch_text_stats *stats) {
  const ch_text_opts defaults = {.val_fraction = 0.1, .tok = NULL};
  const ch_text_opts *o = opts ? opts : &defaults;
  if (!in_paths || nin < 1 || !out_path) return CH_FAIL(CH_ERR_INVALID, "text convert: no input or output path");
  for (int i = 0; i < nin; i++)
    if (!in_paths[i]) return CH_FAIL(CH_ERR_INVALID, "text convert: input path %d is null", i);
  if (!(o->val_fraction > 0 && o->val_fraction < 1))
    return CH_FAIL(CH_ERR_INVALID, "val fraction %g is not in (0, 1)", o->val_fraction);

  ch_status st = CH_OK;
  ch_tokenizer *own = NULL;
  const ch_tokenizer *tok = o->tok;
  text_buf text = {0};
  int32_t *tokens = NULL;
  int64_t n = 0, ntrain = 0, nval = 0;
  char *tmp = NULL, *source = NULL;
  double bits = 0;
  h5_quiet q;
  h5_quiet_begin(&q);
  if (!tok) {
    CH_CHECK_GOTO(ch_tokenizer_create_byte(&own), st, done);
    tok = own;
  }
  CH_CHECK_GOTO(read_inputs(in_paths, nin, &text), st, done);
  CH_CHECK_GOTO(ch_tokenizer_encode(tok, text.s, text.len, &tokens, &n), st, done);
  CH_CHECK_GOTO(split_sizes(n, o->val_fraction, &ntrain, &nval), st, done);
  CH_CHECK_GOTO(unigram_entropy(tokens, ntrain, ch_tokenizer_vocab(tok), &bits), st, done);
  tmp = malloc(strlen(out_path) + sizeof ".partial");
  source = source_names(in_paths, nin);
  if (!tmp || !source) {
    st = CH_FAIL(CH_ERR_NOMEM, "text convert");
    goto done;
  }
  strcpy(tmp, out_path);
  strcat(tmp, ".partial");
  st = write_file(tmp, tokens, ntrain, nval, tok, source, bits);
  if (st == CH_OK) st = data_commit_file(tmp, out_path);
  if (st != CH_OK) {
    ch_error_trace(__FILE__, __LINE__);
    unlink(tmp);
    goto done;
  }
  if (stats)
    *stats = (ch_text_stats){.bytes = (int64_t)text.len, .tokens = n, .train_tokens = ntrain, .val_tokens = nval,
                             .vocab = ch_tokenizer_vocab(tok), .unigram_entropy_bits = bits};
done:
  h5_quiet_end(&q);
  ch_tokenizer_destroy(own);
  free(text.s);
  free(tokens);
  free(tmp);
  free(source);
  return st;
}

/* ---- loading the stored tokenizer ---- */

/* A string attribute of the root group (fixed or variable length) into buf. */
static ch_status read_attr_str(hid_t file, const char *path, const char *name, char *buf, size_t size) {
  if (H5Aexists(file, name) <= 0) return CH_FAIL(CH_ERR_FORMAT, "%s: missing root attribute '%s'", path, name);
  hid_t a = H5Aopen(file, name, H5P_DEFAULT);
  if (a < 0) return data_h5_fail(CH_ERR_IO, path, name);
  hid_t type = H5Aget_type(a), mem = -1;
  ch_status st = CH_OK;
  if (H5Tget_class(type) != H5T_STRING) {
    st = CH_FAIL(CH_ERR_FORMAT, "%s: attribute '%s' is not a string", path, name);
  } else if (H5Tis_variable_str(type) > 0) {
    char *v = NULL;
    mem = H5Tcopy(H5T_C_S1);
    H5Tset_size(mem, H5T_VARIABLE);
    H5Tset_cset(mem, H5Tget_cset(type)); /* HDF5 converts no character sets */
    if (H5Aread(a, mem, &v) < 0) st = data_h5_fail(CH_ERR_IO, path, name);
    else snprintf(buf, size, "%s", v ? v : "");
    if (v) H5free_memory(v);
  } else {
    size_t n = H5Tget_size(type);
    char *v = calloc(n + 1, 1);
    mem = H5Tcopy(H5T_C_S1);
    H5Tset_size(mem, n + 1);
    H5Tset_cset(mem, H5Tget_cset(type));
    if (!v) st = CH_FAIL(CH_ERR_NOMEM, "%s: attribute '%s'", path, name);
    else if (H5Aread(a, mem, v) < 0) st = data_h5_fail(CH_ERR_IO, path, name);
    else snprintf(buf, size, "%s", v);
    free(v);
  }
  if (mem >= 0) H5Tclose(mem);
  H5Tclose(type);
  H5Aclose(a);
  return st;
}

/* A 1-D integer dataset of bytes, read whole (malloc'ed, NUL-terminated). */
static ch_status read_bytes(hid_t file, const char *path, const char *full, char **out, size_t *len) {
  hsize_t dims[1] = {0};
  hid_t ds = -1;
  ch_status st = data_open_checked(file, path, full, H5T_INTEGER, 1, dims, &ds);
  if (st == CH_OK) {
    *out = malloc((size_t)dims[0] + 1);
    if (!*out) st = CH_FAIL(CH_ERR_NOMEM, "%s: %s of %llu bytes", path, full, (unsigned long long)dims[0]);
    else if (dims[0] && H5Dread(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, *out) < 0)
      st = data_h5_fail(CH_ERR_IO, path, full);
    else {
      (*out)[dims[0]] = '\0';
      *len = (size_t)dims[0];
    }
  }
  if (ds >= 0) H5Dclose(ds);
  return st;
}

static ch_status load_from(hid_t file, const char *path, ch_tokenizer **out) {
  char name[64];
  int64_t vocab = 0;
  CH_CHECK(read_attr_str(file, path, "tokenizer", name, sizeof name));
  CH_CHECK(data_read_attr_i64(file, path, "vocab_size", &vocab));
  if (!strcmp(name, "byte")) {
    CH_CHECK(ch_tokenizer_create_byte(out));
  } else if (!strcmp(name, "gpt2")) {
    char *enc = NULL, *merges = NULL;
    size_t enc_len = 0, merges_len = 0;
    ch_status st = read_bytes(file, path, "/tokenizer/encoder_json", &enc, &enc_len);
    if (st == CH_OK) st = read_bytes(file, path, "/tokenizer/bpe_merges", &merges, &merges_len);
    if (st == CH_OK) st = ch_tokenizer_create_gpt2(enc, enc_len, merges, merges_len, out);
    free(enc);
    free(merges);
    CH_CHECK(st);
  } else {
    return CH_FAIL(CH_ERR_FORMAT, "%s: unknown tokenizer '%s' (expected byte or gpt2)", path, name);
  }
  if (ch_tokenizer_vocab(*out) != vocab) {
    int64_t got = ch_tokenizer_vocab(*out);
    ch_tokenizer_destroy(*out);
    *out = NULL;
    return CH_FAIL(CH_ERR_FORMAT, "%s: vocab_size is %lld but the stored %s tokenizer has %lld ids", path,
                   (long long)vocab, name, (long long)got);
  }
  return CH_OK;
}

ch_status ch_tokenizer_load(const char *h5path, ch_tokenizer **out) {
  *out = NULL;
  if (!h5path) return CH_FAIL(CH_ERR_INVALID, "ch_tokenizer_load: null path");
  if (access(h5path, R_OK) != 0) return CH_FAIL(CH_ERR_IO, "cannot open %s: %s", h5path, strerror(errno));
  h5_quiet q;
  h5_quiet_begin(&q);
  ch_status st = CH_OK;
  hid_t file = H5Fopen(h5path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file < 0) {
    char msg[256];
    h5_error(msg);
    st = H5Fis_hdf5(h5path) == 0 ? CH_FAIL(CH_ERR_FORMAT, "%s is not an HDF5 file", h5path)
                                 : CH_FAIL(CH_ERR_IO, "cannot open %s: %s", h5path, msg);
  } else {
    st = load_from(file, h5path, out);
    H5Fclose(file);
  }
  h5_quiet_end(&q);
  if (st != CH_OK) ch_error_trace(__FILE__, __LINE__);
  return st;
}
