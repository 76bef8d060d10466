/* Tokenizers: byte-level, and GPT-2 BPE built from encoder.json + vocab.bpe (the merge loop and
 * pre-tokeniser are in bpe.c; the HDF5 loader is with the writer in text.c).
 * The GPT-2 tables are id-based: each token's bytes (for decoding), the id of each byte's
 * symbol, and the merge table (pair of ids -> rank, merged id). The original texts are kept so
 * that a dataset can store exactly what its tokenizer was made from. */
#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/bpe.h"

enum { TOK_BYTE, TOK_GPT2 };

struct ch_tokenizer {
  int kind;
  int64_t vocab;
  /* gpt2 */
  char *encoder_json, *merges;
  size_t encoder_len, merges_len;
  uint8_t *bytes;     /* every token's bytes, concatenated */
  int64_t *tok_off;   /* [vocab] offset into bytes */
  int32_t *tok_len;   /* [vocab] length, -1 for an id without a token */
  int32_t byte_id[256];
  bpe_merges mt;
};

/* Pieces up to this many bytes are cached per encode call (words, mostly). */
#define CACHE_MAX_PIECE 64
#define CACHE_MAX_TOKENS (1 << 24)

ch_status ch_tokenizer_create_byte(ch_tokenizer **out) {
  *out = calloc(1, sizeof **out);
  if (!*out) return CH_FAIL(CH_ERR_NOMEM, "tokenizer");
  (*out)->kind = TOK_BYTE;
  (*out)->vocab = 256;
  return CH_OK;
}

void ch_tokenizer_destroy(ch_tokenizer *t) {
  if (!t) return;
  free(t->encoder_json);
  free(t->merges);
  free(t->bytes);
  free(t->tok_off);
  free(t->tok_len);
  bpe_merges_free(&t->mt);
  free(t);
}

const char *ch_tokenizer_name(const ch_tokenizer *t) { return t->kind == TOK_GPT2 ? "gpt2" : "byte"; }
int64_t ch_tokenizer_vocab(const ch_tokenizer *t) { return t->vocab; }

void tokenizer_texts(const ch_tokenizer *t, const char **encoder_json, size_t *encoder_len,
                     const char **merges, size_t *merges_len) {
  *encoder_json = t->encoder_json;
  *encoder_len = t->encoder_len;
  *merges = t->merges;
  *merges_len = t->merges_len;
}

/* Bytes of a token string in GPT-2's alphabet (UTF-8 of the code points that stand for bytes)
 * into out (room for strlen(s)); returns the length, or -1 with *bad the offending code point
 * (CH_BPE_INVALID_CP for broken UTF-8). */
static int64_t symbols_to_bytes(const char *s, size_t n, uint8_t *out, uint32_t *bad) {
  int64_t k = 0;
  for (size_t i = 0; i < n;) {
    uint32_t cp;
    i += bpe_utf8_next((const uint8_t *)s, n, i, &cp);
    int b = cp == CH_BPE_INVALID_CP ? -1 : bpe_cp_byte(cp);
    if (b < 0) {
      *bad = cp;
      return -1;
    }
    out[k++] = (uint8_t)b;
  }
  return k;
}

static int json_line(const char *text, const char *at) {
  int line = 1;
  for (const char *p = text; p < at; p++) line += *p == '\n';
  return line;
}

/* First pass over the encoder: checks every entry, fills the string -> id map (keys as bytes)
 * and the total of the token lengths; *max_id the largest id. */
static ch_status scan_encoder(const cJSON *root, bpe_strmap *ids, int64_t *max_id, size_t *total) {
  const cJSON *e;
  uint8_t buf[1024];
  *max_id = -1;
  *total = 0;
  cJSON_ArrayForEach(e, root) {
    const char *key = e->string;
    size_t klen = strlen(key);
    double v = e->valuedouble;
    if (!cJSON_IsNumber(e) || !(v >= 0 && v < INT32_MAX) || v != floor(v))
      return CH_FAIL(CH_ERR_FORMAT, "encoder.json: token \"%.60s\": the id must be an integer in [0, 2^31-1)", key);
    if (klen == 0) return CH_FAIL(CH_ERR_FORMAT, "encoder.json: empty token (id %.0f)", v);
    uint8_t *b = klen <= sizeof buf ? buf : malloc(klen);
    if (!b) return CH_FAIL(CH_ERR_NOMEM, "encoder.json token of %zu bytes", klen);
    uint32_t bad = 0;
    int64_t n = symbols_to_bytes(key, klen, b, &bad);
    int existed = 0;
    ch_status st = CH_OK;
    if (n < 0 && bad == CH_BPE_INVALID_CP)
      st = CH_FAIL(CH_ERR_FORMAT, "encoder.json: token \"%.60s\" (id %.0f) is not valid UTF-8", key, v);
    else if (n < 0)
      st = CH_FAIL(CH_ERR_FORMAT,
                   "encoder.json: token \"%.60s\" (id %.0f) has U+%04X, which is not in GPT-2's byte alphabet", key,
                   v, (unsigned)bad);
    else st = bpe_strmap_put(ids, b, (size_t)n, (int64_t)v, &existed);
    if (st == CH_OK && existed) st = CH_FAIL(CH_ERR_FORMAT, "encoder.json: token \"%.60s\" appears twice", key);
    if (b != buf) free(b);
    CH_CHECK(st);
    if ((int64_t)v > *max_id) *max_id = (int64_t)v;
    *total += (size_t)n;
  }
  if (*max_id < 0) return CH_FAIL(CH_ERR_FORMAT, "encoder.json: no tokens");
  return CH_OK;
}

/* Parses the encoder into the id tables of t. */
static ch_status load_encoder(ch_tokenizer *t, bpe_strmap *ids) {
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(t->encoder_json, t->encoder_len, &end, 0);
  if (!root) {
    if (!end || end < t->encoder_json || end > t->encoder_json + t->encoder_len) end = t->encoder_json;
    return CH_FAIL(CH_ERR_FORMAT, "encoder.json line %d: not valid JSON (near \"%.20s\")",
                   json_line(t->encoder_json, end), end);
  }
  ch_status st = CH_OK;
  size_t total = 0;
  int64_t max_id = -1;
  while (end < t->encoder_json + t->encoder_len && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r')) end++;
  if (end < t->encoder_json + t->encoder_len && *end) {
    st = CH_FAIL(CH_ERR_FORMAT, "encoder.json line %d: unexpected text after the JSON value (\"%.20s\")",
                 json_line(t->encoder_json, end), end);
    goto done;
  }
  if (!cJSON_IsObject(root)) {
    st = CH_FAIL(CH_ERR_FORMAT, "encoder.json: expected a JSON object of token -> id");
    goto done;
  }
  CH_CHECK_GOTO(scan_encoder(root, ids, &max_id, &total), st, done);
  if (max_id >= 16 * ids->nent + 1024) { /* a typo'd id would otherwise cost gigabytes */
    st = CH_FAIL(CH_ERR_FORMAT, "encoder.json: id %lld is implausibly large for %lld tokens", (long long)max_id,
                 (long long)ids->nent);
    goto done;
  }
  t->vocab = max_id + 1;
  t->bytes = malloc(total ? total : 1);
  t->tok_off = malloc((size_t)t->vocab * sizeof *t->tok_off);
  t->tok_len = malloc((size_t)t->vocab * sizeof *t->tok_len);
  if (!t->bytes || !t->tok_off || !t->tok_len) {
    st = CH_FAIL(CH_ERR_NOMEM, "tokenizer of %lld ids", (long long)t->vocab);
    goto done;
  }
  for (int64_t i = 0; i < t->vocab; i++) t->tok_len[i] = -1;
  size_t off = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, root) {
    int32_t id = (int32_t)e->valuedouble;
    uint32_t bad;
    int64_t n = symbols_to_bytes(e->string, strlen(e->string), t->bytes + off, &bad);
    if (t->tok_len[id] >= 0) {
      st = CH_FAIL(CH_ERR_FORMAT, "encoder.json: id %d is given to two tokens (the second: \"%.60s\")", id, e->string);
      goto done;
    }
    t->tok_off[id] = (int64_t)off;
    t->tok_len[id] = (int32_t)n;
    off += (size_t)n;
  }
  for (int b = 0; b < 256; b++) {
    uint8_t c = (uint8_t)b;
    int64_t id;
    if (!bpe_strmap_get(ids, &c, 1, &id)) {
      st = CH_FAIL(CH_ERR_FORMAT, "encoder.json: no token for byte 0x%02x (the symbol U+%04X)", b,
                   (unsigned)bpe_byte_cp(c));
      goto done;
    }
    t->byte_id[b] = (int32_t)id;
  }
done:
  cJSON_Delete(root);
  return st;
}

/* One side of a merge line as token bytes -> its id. */
static ch_status merge_part(const bpe_strmap *ids, const char *s, size_t n, int64_t line,
                            uint8_t *buf, int64_t *blen, int64_t *id) {
  uint32_t bad = 0;
  *blen = symbols_to_bytes(s, n, buf, &bad);
  if (*blen < 0 && bad == CH_BPE_INVALID_CP)
    return CH_FAIL(CH_ERR_FORMAT, "vocab.bpe line %lld: \"%.*s\" is not valid UTF-8", (long long)line, (int)n, s);
  if (*blen < 0)
    return CH_FAIL(CH_ERR_FORMAT, "vocab.bpe line %lld: \"%.*s\" has U+%04X, which is not in GPT-2's byte alphabet",
                   (long long)line, (int)n, s, (unsigned)bad);
  if (!bpe_strmap_get(ids, buf, (size_t)*blen, id))
    return CH_FAIL(CH_ERR_FORMAT, "vocab.bpe line %lld: \"%.*s\" is not a token of encoder.json", (long long)line,
                   (int)n, s);
  return CH_OK;
}

/* Parses the merges: line by line, rank = index among the merge lines. */
static ch_status load_merges(ch_tokenizer *t, const bpe_strmap *ids) {
  const char *s = t->merges, *end = s + t->merges_len;
  uint8_t *buf = malloc(t->merges_len + 1);
  if (!buf) return CH_FAIL(CH_ERR_NOMEM, "vocab.bpe of %zu bytes", t->merges_len);
  ch_status st = CH_OK;
  int32_t rank = 0;
  for (int64_t line = 1; s < end; line++) {
    const char *nl = memchr(s, '\n', (size_t)(end - s)), *e = nl ? nl : end;
    const char *next = nl ? nl + 1 : end;
    if (e > s && e[-1] == '\r') e--;
    if (e == s || (line == 1 && e - s >= 8 && !memcmp(s, "#version", 8))) {
      s = next;
      continue;
    }
    const char *sp = memchr(s, ' ', (size_t)(e - s));
    if (!sp || sp == s || sp + 1 == e || memchr(sp + 1, ' ', (size_t)(e - sp - 1))) {
      st = CH_FAIL(CH_ERR_FORMAT, "vocab.bpe line %lld: expected two tokens separated by one space, got \"%.60s\"",
                   (long long)line, s);
      break;
    }
    if (rank == INT32_MAX) {
      st = CH_FAIL(CH_ERR_FORMAT, "vocab.bpe line %lld: too many merges", (long long)line);
      break;
    }
    int64_t la, lb, a, b, merged;
    CH_CHECK_GOTO(merge_part(ids, s, (size_t)(sp - s), line, buf, &la, &a), st, done);
    CH_CHECK_GOTO(merge_part(ids, sp + 1, (size_t)(e - sp - 1), line, buf + la, &lb, &b), st, done);
    if (!bpe_strmap_get(ids, buf, (size_t)(la + lb), &merged)) {
      st = CH_FAIL(CH_ERR_FORMAT, "vocab.bpe line %lld: the merge result \"%.*s%.*s\" is not a token of encoder.json",
                   (long long)line, (int)(sp - s), s, (int)(e - sp - 1), sp + 1);
      break;
    }
    CH_CHECK_GOTO(bpe_merges_put(&t->mt, (int32_t)a, (int32_t)b, rank++, (int32_t)merged), st, done);
    s = next;
  }
done:
  free(buf);
  return st;
}

ch_status ch_tokenizer_create_gpt2(const char *encoder_json, size_t encoder_len, const char *merges,
                                   size_t merges_len, ch_tokenizer **out) {
  *out = NULL;
  if (!encoder_json || !merges) return CH_FAIL(CH_ERR_INVALID, "ch_tokenizer_create_gpt2: null text");
  ch_tokenizer *t = calloc(1, sizeof *t);
  if (!t) return CH_FAIL(CH_ERR_NOMEM, "tokenizer");
  t->kind = TOK_GPT2;
  t->encoder_json = malloc(encoder_len + 1);
  t->merges = malloc(merges_len + 1);
  bpe_strmap ids = {0};
  ch_status st = CH_OK;
  if (!t->encoder_json || !t->merges) {
    st = CH_FAIL(CH_ERR_NOMEM, "tokenizer texts of %zu + %zu bytes", encoder_len, merges_len);
    goto done;
  }
  memcpy(t->encoder_json, encoder_json, encoder_len);
  memcpy(t->merges, merges, merges_len);
  t->encoder_json[encoder_len] = t->merges[merges_len] = '\0'; /* for messages that print them */
  t->encoder_len = encoder_len;
  t->merges_len = merges_len;
  CH_CHECK_GOTO(load_encoder(t, &ids), st, done);
  CH_CHECK_GOTO(load_merges(t, &ids), st, done);
done:
  bpe_strmap_free(&ids);
  if (st == CH_OK) *out = t;
  else ch_tokenizer_destroy(t);
  return st;
}

/* Encoding with a per-call cache of piece -> ids (kept per call so that a tokenizer stays
 * immutable and thread-safe). */
typedef struct encode_ctx {
  bpe_strmap cache;  /* piece -> (offset in pool) << 7 | count */
  int32_t *pool;
  int64_t pool_len, pool_cap;
  bpe_scratch scratch;
} encode_ctx;

static ch_status encode_piece(const ch_tokenizer *t, encode_ctx *c, const uint8_t *p, size_t len, int32_t *out,
                              int64_t *n) {
  int64_t v;
  if (len <= CACHE_MAX_PIECE && bpe_strmap_get(&c->cache, p, len, &v)) {
    *n = v & 127;
    memcpy(out, c->pool + (v >> 7), (size_t)*n * sizeof *out);
    return CH_OK;
  }
  CH_CHECK(bpe_merge_piece(&t->mt, t->byte_id, p, len, &c->scratch, out, n));
  if (len > CACHE_MAX_PIECE || c->pool_len + *n > CACHE_MAX_TOKENS) return CH_OK;
  if (c->pool_len + *n > c->pool_cap) {
    int64_t cap = c->pool_cap ? c->pool_cap * 2 : 4096;
    int32_t *pool = realloc(c->pool, (size_t)cap * sizeof *pool);
    if (!pool) return CH_OK; /* the cache is an optimisation only */
    c->pool = pool;
    c->pool_cap = cap;
  }
  memcpy(c->pool + c->pool_len, out, (size_t)*n * sizeof *out);
  if (bpe_strmap_put(&c->cache, p, len, c->pool_len << 7 | *n, NULL) == CH_OK) c->pool_len += *n;
  else ch_error_clear();
  return CH_OK;
}

ch_status ch_tokenizer_encode(const ch_tokenizer *t, const char *text, size_t len, int32_t **tokens, int64_t *n) {
  *tokens = NULL;
  *n = 0;
  if (len == 0) return CH_OK;
  if (!text) return CH_FAIL(CH_ERR_INVALID, "ch_tokenizer_encode: null text");
  int32_t *ids = malloc(len * sizeof *ids); /* never more tokens than bytes */
  if (!ids) return CH_FAIL(CH_ERR_NOMEM, "tokens of %zu bytes of text", len);
  const uint8_t *s = (const uint8_t *)text;
  ch_status st = CH_OK;
  int64_t k = 0;
  if (t->kind == TOK_BYTE) {
    for (size_t i = 0; i < len; i++) ids[i] = s[i];
    k = (int64_t)len;
  } else {
    encode_ctx c = {0};
    for (size_t i = 0; i < len && st == CH_OK;) {
      size_t e = bpe_next_piece(s, len, i);
      int64_t m = 0;
      st = encode_piece(t, &c, s + i, e - i, ids + k, &m);
      k += m;
      i = e;
    }
    bpe_strmap_free(&c.cache);
    bpe_scratch_free(&c.scratch);
    free(c.pool);
  }
  if (st != CH_OK) {
    free(ids);
    return st;
  }
  int32_t *shrunk = realloc(ids, (size_t)k * sizeof *ids);
  *tokens = shrunk ? shrunk : ids;
  *n = k;
  return CH_OK;
}

ch_status ch_tokenizer_decode(const ch_tokenizer *t, const int32_t *tokens, int64_t n, char **text, size_t *len) {
  *text = NULL;
  *len = 0;
  if (n < 0 || (n > 0 && !tokens))
    return CH_FAIL(CH_ERR_INVALID, "ch_tokenizer_decode: bad arguments (n = %lld)", (long long)n);
  size_t total = 0;
  for (int64_t i = 0; i < n; i++) {
    int32_t id = tokens[i];
    if (id < 0 || id >= t->vocab || (t->kind == TOK_GPT2 && t->tok_len[id] < 0))
      return CH_FAIL(CH_ERR_INVALID, "token %d at position %lld is not in the %s vocabulary (%lld ids%s)", (int)id,
                     (long long)i, ch_tokenizer_name(t), (long long)t->vocab,
                     id >= 0 && id < t->vocab ? "; this one has no token" : "");
    total += t->kind == TOK_GPT2 ? (size_t)t->tok_len[id] : 1;
  }
  char *s = malloc(total + 1);
  if (!s) return CH_FAIL(CH_ERR_NOMEM, "decoded text of %zu bytes", total);
  size_t k = 0;
  for (int64_t i = 0; i < n; i++) {
    if (t->kind == TOK_BYTE) {
      s[k++] = (char)(uint8_t)tokens[i];
    } else {
      memcpy(s + k, t->bytes + t->tok_off[tokens[i]], (size_t)t->tok_len[tokens[i]]);
      k += (size_t)t->tok_len[tokens[i]];
    }
  }
  s[k] = '\0';
  *text = s;
  *len = k;
  return CH_OK;
}
