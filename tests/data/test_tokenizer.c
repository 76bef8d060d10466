/* Tokenizers: the byte tokenizer on random bytes; GPT-2 BPE with the small vocabulary of
 * test_vocab.h (written by the test itself): pre-tokenised pieces of hand-made cases, character
 * classes and strict UTF-8, the byte alphabet, encode/decode round trips of varied random text,
 * the out-of-order merges, rejection of broken encoder.json and vocab.bpe files.
 *
 *   test_tokenizer              runs the checks
 *   test_tokenizer --dump DIR   writes the vocabulary, random texts with this code's ids and
 *                               the class of every code point for tests/data/bpe_ref.py */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/rng.h"
#include "cohort/tokenizer.h"
#include "data/bpe.h"
#include "test_vocab.h"
#include "testlib.h"

#define SEED 20240611u

static ch_tokenizer *make_gpt2(const tv_vocab *v) {
  ch_tokenizer *t = NULL;
  CHT_OK(ch_tokenizer_create_gpt2(v->enc, v->enc_len, v->mer, v->mer_len, &t));
  return t;
}

static void round_trip(const ch_tokenizer *t, const char *text, size_t len, const char *what) {
  int32_t *ids;
  int64_t n;
  char *back;
  size_t blen;
  CHT_OK(ch_tokenizer_encode(t, text, len, &ids, &n));
  CHT_ASSERT(n >= (len > 0) && n <= (int64_t)len, "%s: %lld tokens for %zu bytes", what, (long long)n, len);
  for (int64_t i = 0; i < n; i++)
    CHT_ASSERT(ids[i] >= 0 && ids[i] < ch_tokenizer_vocab(t), "%s: id %d", what, (int)ids[i]);
  CHT_OK(ch_tokenizer_decode(t, ids, n, &back, &blen));
  CHT_ASSERT(blen == len && !memcmp(back, text, len) && back[blen] == '\0', "%s: round trip of %zu bytes gives %zu",
             what, len, blen);
  free(ids);
  free(back);
}

/* ---- checks ---- */

static void check_byte(void) {
  ch_tokenizer *t;
  CHT_OK(ch_tokenizer_create_byte(&t));
  CHT_ASSERT(!strcmp(ch_tokenizer_name(t), "byte") && ch_tokenizer_vocab(t) == 256, "byte tokenizer identity");
  for (int k = 0; k < 20; k++) {
    size_t len = k == 0 ? 0 : (size_t)ch_rng_below(SEED, 10, (uint64_t)k, 5000);
    char *s = malloc(len + 1);
    for (size_t i = 0; i < len; i++) s[i] = (char)ch_rng_below(SEED, 11 + (uint64_t)k, i, 256);
    int32_t *ids;
    int64_t n;
    CHT_OK(ch_tokenizer_encode(t, s, len, &ids, &n));
    CHT_ASSERT(n == (int64_t)len, "byte: %lld tokens for %zu bytes", (long long)n, len);
    for (size_t i = 0; i < len; i++) CHT_ASSERT(ids[i] == (uint8_t)s[i], "byte: token %zu = %d", i, (int)ids[i]);
    free(ids);
    round_trip(t, s, len, "byte");
    free(s);
  }
  int32_t bad[3] = {65, 256, 66};
  char *out;
  size_t len;
  ch_status st = ch_tokenizer_decode(t, bad, 3, &out, &len);
  CHT_ASSERT(st == CH_ERR_INVALID && strstr(ch_error_message(), "256") && strstr(ch_error_message(), "position 1"),
             "byte decode of 256: %s: %s", ch_status_str(st), ch_error_message());
  bad[1] = -1;
  CHT_ASSERT(ch_tokenizer_decode(t, bad, 3, &out, &len) == CH_ERR_INVALID, "byte decode of -1");
  ch_error_clear();
  ch_tokenizer_destroy(t);
}

/* Pieces of the pre-tokeniser, separated by '|' in `want`. */
static void check_pieces(const char *text, const char *want) {
  char got[512];
  size_t n = strlen(text), k = 0;
  for (size_t i = 0; i < n;) {
    size_t e = bpe_next_piece((const uint8_t *)text, n, i);
    CHT_ASSERT(e > i && e <= n, "pieces of '%s': no progress at %zu", text, i);
    k += (size_t)snprintf(got + k, sizeof got - k, "%s%.*s", i ? "|" : "", (int)(e - i), text + i);
    i = e;
  }
  CHT_ASSERT(!strcmp(got, want), "pieces of '%s': got '%s', expected '%s'", text, got, want);
}

static void check_pretokenizer(void) {
  check_pieces("I'm here, don't they'll we've you're he'd it's",
               "I|'m| here|,| don|'t| they|'ll| we|'ve| you|'re| he|'d| it|'s");
  check_pieces("'S 'sup ''s 'x", "'|S| '|sup| ''|s| '|x");
  check_pieces("a  b", "a| | b");
  check_pieces("x \n y", "x| \n| y");
  check_pieces("end   ", "end|   ");
  check_pieces("\t\tx", "\t|\t|x");
  check_pieces("12ab 3.5 ?\?! ?x", "12|ab| 3|.|5| ?\?!| ?|x");
  check_pieces("caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87\xd9\xa3\xd9\xa4", /* letters, then Arabic-Indic digits */
               "caf\xc3\xa9| \xe4\xb8\xad\xe6\x96\x87|\xd9\xa3\xd9\xa4");
  check_pieces("e\xcc\x81t\xe2\x80\x99s \xf0\x9f\x98\x80!", "e|\xcc\x81|t|\xe2\x80\x99|s| \xf0\x9f\x98\x80!");
  check_pieces("a\xc2\xa0\xc2\xa0 b\xe3\x80\x80", "a|\xc2\xa0\xc2\xa0| b|\xe3\x80\x80");
  check_pieces("ab\xff\xfe cd\xe2\x82x", "ab|\xff\xfe| cd|\xe2\x82|x");
  check_pieces("x\xc2\xb2\xe2\x85\xab_y", "x|\xc2\xb2\xe2\x85\xab|_|y");
  /* classes of a few code points, and strict UTF-8 */
  CHT_ASSERT(bpe_classify('a') == CH_BPE_LETTER && bpe_classify('7') == CH_BPE_NUMBER &&
                 bpe_classify('_') == CH_BPE_OTHER && bpe_classify(0x1C) == CH_BPE_OTHER &&
                 bpe_classify(0x85) == CH_BPE_SPACE && bpe_classify(0x4E2D) == CH_BPE_LETTER &&
                 bpe_classify(0x2167) == CH_BPE_NUMBER && bpe_classify(0x2019) == CH_BPE_OTHER &&
                 bpe_classify(0x10FFFF) == CH_BPE_OTHER && bpe_classify(CH_BPE_INVALID_CP) == CH_BPE_OTHER,
             "character classes");
  static const char *const invalid[] = {"\xc0\x80", "\xe0\x9f\xbf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xf5\x80",
                                        "\x80", "\xe2\x82"};
  for (size_t i = 0; i < sizeof invalid / sizeof *invalid; i++) {
    uint32_t cp;
    size_t l = bpe_utf8_next((const uint8_t *)invalid[i], strlen(invalid[i]), 0, &cp);
    CHT_ASSERT(l == 1 && cp == CH_BPE_INVALID_CP, "invalid UTF-8 %zu accepted", i);
  }
  uint32_t cp;
  CHT_ASSERT(bpe_utf8_next((const uint8_t *)"\xf4\x8f\xbf\xbf", 4, 0, &cp) == 4 && cp == 0x10FFFF, "U+10FFFF");
  for (int b = 0; b < 256; b++)
    CHT_ASSERT(bpe_cp_byte(bpe_byte_cp((uint8_t)b)) == b, "byte alphabet at %d", b);
  CHT_ASSERT(bpe_byte_cp(' ') == 0x120 && bpe_byte_cp('\n') == 0x10A && bpe_byte_cp('a') == 'a' &&
                 bpe_byte_cp(0xAD) == 0x143 && bpe_cp_byte(0x144) == -1 && bpe_cp_byte(0x20) == -1,
             "GPT-2 byte alphabet");
}

static int32_t token_id(const ch_tokenizer *t, const char *s) {
  int32_t *ids;
  int64_t n;
  CHT_OK(ch_tokenizer_encode(t, s, strlen(s), &ids, &n));
  int32_t id = n == 1 ? ids[0] : -1;
  free(ids);
  return id;
}

static void check_gpt2(const tv_vocab *v) {
  ch_tokenizer *t = make_gpt2(v);
  CHT_ASSERT(!strcmp(ch_tokenizer_name(t), "gpt2") && ch_tokenizer_vocab(t) == v->nids,
             "gpt2: name %s vocab %lld (want %d)", ch_tokenizer_name(t), (long long)ch_tokenizer_vocab(t), (int)v->nids);
  /* merged words become their own token (when no rank swap broke them) */
  int i_the = tv_find_sym(v, (const uint8_t *)" the", 4);
  int32_t got = token_id(t, " the");
  CHT_ASSERT(got == v->id[i_the] || got == -1, "' the' -> %d, its id is %d", (int)got, (int)v->id[i_the]);
  /* the out-of-order merges: "abab" -> ab|ab, "xxx" -> xx|x */
  int32_t *got2;
  int64_t n2;
  CHT_OK(ch_tokenizer_encode(t, "abab xxx", 8, &got2, &n2));
  int i_ab = tv_find_sym(v, (const uint8_t *)"ab", 2), i_xx = tv_find_sym(v, (const uint8_t *)"xx", 2);
  CHT_ASSERT(n2 == 5 && got2[0] == v->id[i_ab] && got2[1] == v->id[i_ab] && got2[2] == v->id[' '] &&
                 got2[3] == v->id[i_xx] && got2[4] == v->id['x'],
             "'abab xxx': %lld tokens [%d %d %d %d ...]", (long long)n2, (int)got2[0], (int)got2[1], (int)got2[2],
             (int)got2[3]);
  free(got2);
  for (int b = 0; b < 256; b++) {
    char c = (char)b;
    int32_t *ids;
    int64_t n;
    CHT_OK(ch_tokenizer_encode(t, &c, 1, &ids, &n));
    CHT_ASSERT(n == 1 && ids[0] == v->id[b], "byte %d -> %d, expected %d", b, (int)ids[0], (int)v->id[b]);
    free(ids);
  }
  size_t total_bytes = 0;
  int64_t total_tokens = 0;
  for (int k = 0; k < 60; k++) {
    size_t len;
    char *s = tv_random_text(SEED, 100 + (uint64_t)k, &len);
    round_trip(t, s, len, "gpt2");
    int32_t *ids;
    int64_t n;
    CHT_OK(ch_tokenizer_encode(t, s, len, &ids, &n));
    for (int64_t i = 0; i < n; i++) CHT_ASSERT(ids[i] != v->hole, "gpt2: the hole id %d was produced", (int)v->hole);
    total_bytes += len;
    total_tokens += n;
    free(ids);
    free(s);
  }
  CHT_ASSERT((double)total_tokens < 0.9 * (double)total_bytes, "gpt2: %lld tokens for %zu bytes: merges do not apply",
             (long long)total_tokens, total_bytes);
  /* the special token decodes to its text; the hole and ids past the end do not decode */
  int32_t ids[3] = {v->id['x'], v->id[v->nsym], v->id['y']};
  char *out;
  size_t len;
  CHT_OK(ch_tokenizer_decode(t, ids, 3, &out, &len));
  CHT_ASSERT(len == 15 && !strcmp(out, "x<|endoftext|>y"), "special token decodes to '%s'", out);
  free(out);
  ids[1] = v->hole;
  ch_status st = ch_tokenizer_decode(t, ids, 3, &out, &len);
  CHT_ASSERT(st == CH_ERR_INVALID && strstr(ch_error_message(), "no token"), "hole: %s: %s", ch_status_str(st),
             ch_error_message());
  ids[1] = v->nids;
  CHT_ASSERT(ch_tokenizer_decode(t, ids, 3, &out, &len) == CH_ERR_INVALID, "id past the vocabulary");
  ch_error_clear();
  ch_tokenizer_destroy(t);
}

/* create_gpt2 on modified texts fails with CH_ERR_FORMAT and a message containing `want`. */
static void expect_bad(const char *enc, const char *mer, const char *want) {
  ch_tokenizer *t = (ch_tokenizer *)1;
  ch_status st = ch_tokenizer_create_gpt2(enc, strlen(enc), mer, strlen(mer), &t);
  CHT_ASSERT(st == CH_ERR_FORMAT && t == NULL && strstr(ch_error_message(), want),
             "expected a format error with '%s', got %s: %s", want, ch_status_str(st), ch_error_message());
  ch_error_clear();
}

/* Replaces the first occurrence of `from` in s by `to` (caller frees). */
static char *replace(const char *s, const char *from, const char *to) {
  const char *p = strstr(s, from);
  CHT_ASSERT(p, "'%s' not found", from);
  char *r = malloc(strlen(s) + strlen(to) + 1);
  sprintf(r, "%.*s%s%s", (int)(p - s), s, to, p + strlen(from));
  return r;
}

static void check_bad_files(const tv_vocab *v) {
  char *enc = strndup(v->enc, v->enc_len), *mer = strndup(v->mer, v->mer_len), *e, *m;
  expect_bad("{\"a\": 1,\n\"b\": }", mer, "encoder.json line 2");
  expect_bad("[1, 2]", mer, "JSON object");
  e = replace(enc, "}\n", "}\n\n  x"); /* text after the object, two lines below its end */
  char line[64];
  int nl = 1;
  for (const char *p = e; *p != 'x' || p[-1] != ' '; p++) nl += *p == '\n';
  snprintf(line, sizeof line, "encoder.json line %d: unexpected text", nl);
  expect_bad(e, mer, line);
  free(e);
  char key[64];
  snprintf(key, sizeof key, "\"%s\": %d", tv_special, (int)v->id[v->nsym]);
  expect_bad(e = replace(enc, key, "\"<|endoftext|>\": 2000000000"), mer, "implausibly large");
  free(e);
  snprintf(key, sizeof key, "\"%c\": %d", 'Q', (int)v->id['Q']);
  expect_bad(e = replace(enc, key, "\"Q\": -3"), mer, "\"Q\"");
  free(e);
  expect_bad(e = replace(enc, key, "\"Q\": 1.5"), mer, "integer");
  free(e);
  snprintf(key, sizeof key, "\"%c\": %d", 'Q', (int)v->id['Q']);
  char other[64];
  snprintf(other, sizeof other, "\"Q\": %d", (int)v->id['R']);
  expect_bad(e = replace(enc, key, other), mer, "two tokens");
  free(e);
  expect_bad(e = replace(enc, key, "\"\xe2\x82\xac\": 5000"), mer, "U+20AC");
  free(e);
  expect_bad(e = replace(enc, key, "\"QQ\": 5000"), mer, "byte 0x51");
  free(e);
  /* vocab.bpe: line 2 is the first merge (" t" -> "\u0120 t") */
  expect_bad(enc, m = replace(mer, "\xc4\xa0 t\n", "\xc4\xa0 t x\n"), "vocab.bpe line 2: expected two tokens");
  free(m);
  expect_bad(enc, m = replace(mer, "\xc4\xa0 t\n", "\xc4\xa0t\n"), "vocab.bpe line 2");
  free(m);
  expect_bad(enc, m = replace(mer, "\xc4\xa0 t\n", "\xc4\xa0 zzzz\n"), "vocab.bpe line 2: \"zzzz\" is not a token");
  free(m);
  expect_bad(enc, m = replace(mer, "\xc4\xa0 t\n", "\xc4\xa0 \xe2\x82\xac\n"), "U+20AC");
  free(m);
  expect_bad(enc, m = replace(mer, "\xc4\xa0 t\n", "x y\n"), "vocab.bpe line 2: the merge result \"xy\"");
  free(m);
  /* blank lines and a missing #version line are fine */
  ch_tokenizer *t;
  CHT_OK(ch_tokenizer_create_gpt2(enc, strlen(enc), mer + 14, strlen(mer + 14), &t));
  ch_tokenizer_destroy(t);
  CHT_OK(ch_tokenizer_create_gpt2(enc, strlen(enc), "", 0, &t));
  round_trip(t, "no merges at all", 16, "no merges");
  ch_tokenizer_destroy(t);
  free(enc);
  free(mer);
}

/* ---- the dump for bpe_ref.py ---- */

static void dump(const tv_vocab *v, const char *dir) {
  char path[512];
  snprintf(path, sizeof path, "%s/encoder.json", dir);
  tv_write_file(path, v->enc, v->enc_len, 0);
  snprintf(path, sizeof path, "%s/vocab.bpe", dir);
  tv_write_file(path, v->mer, v->mer_len, 0);
  char *cls = malloc(0x110000);
  for (uint32_t cp = 0; cp < 0x110000; cp++) cls[cp] = (char)bpe_classify(cp);
  snprintf(path, sizeof path, "%s/classes.bin", dir);
  tv_write_file(path, cls, 0x110000, 0);
  free(cls);
  ch_tokenizer *t = make_gpt2(v);
  for (int k = 0; k < 80; k++) {
    size_t len;
    char *s = tv_random_text(SEED, 1000 + (uint64_t)k, &len);
    if (k % 10 == 9) /* pure random bytes */
      for (size_t i = 0; i < len; i++) s[i] = (char)ch_rng_below(SEED, 2000 + (uint64_t)k, i, 256);
    snprintf(path, sizeof path, "%s/text_%02d.bin", dir, k);
    tv_write_file(path, s, len, 0);
    int32_t *ids;
    int64_t n;
    CHT_OK(ch_tokenizer_encode(t, s, len, &ids, &n));
    snprintf(path, sizeof path, "%s/ids_%02d.txt", dir, k);
    FILE *f = fopen(path, "w");
    CHT_ASSERT(f, "write %s", path);
    for (int64_t i = 0; i < n; i++) fprintf(f, "%d\n", (int)ids[i]);
    fclose(f);
    free(ids);
    free(s);
  }
  ch_tokenizer_destroy(t);
}

int main(int argc, char **argv) {
  tv_vocab *v = malloc(sizeof *v);
  tv_make(v, SEED);
  if (argc == 3 && !strcmp(argv[1], "--dump")) {
    dump(v, argv[2]);
  } else {
    check_byte();
    check_pretokenizer();
    check_gpt2(v);
    check_bad_files(v);
    printf("test_tokenizer: ok (%d symbols, %d merges, vocab %d)\n", v->nsym, v->nmerge, (int)v->nids);
  }
  tv_free(v);
  free(v);
  return 0;
}
