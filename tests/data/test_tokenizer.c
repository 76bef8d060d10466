/* Tokenizers: the byte tokenizer on random bytes; GPT-2 BPE with a small vocabulary this test
 * writes itself (the 256 byte symbols, hand-written and random merges in a partly shuffled rank
 * order, ids in random order with a hole, a special token): pre-tokenised pieces of hand-made
 * cases, encode/decode round trips of varied random text, rejection of broken encoder.json and
 * vocab.bpe files; the text converter with both tokenizers and ch_tokenizer_load.
 *
 *   test_tokenizer              runs the checks
 *   test_tokenizer --dump DIR   writes the vocabulary, random texts with this code's ids and
 *                               the class of every code point for tests/data/bpe_ref.py */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "cohort/data.h"
#include "cohort/rng.h"
#include "cohort/tokenizer.h"
#include "data/bpe.h"
#include "testlib.h"

#define SEED 20240611u
#define MAX_SYMS 512
#define SYM_MAX 48

/* ---- a test vocabulary ---- */

typedef struct sym {
  uint8_t b[SYM_MAX];
  int n;
} sym;

typedef struct vocab {
  sym s[MAX_SYMS];
  int nsym;
  int merge[MAX_SYMS][2]; /* symbol indices, in rank order */
  int nmerge;
  int32_t id[MAX_SYMS + 1]; /* per symbol; [nsym] is the special token */
  int32_t hole, nids;
  char *enc, *mer;
  size_t enc_len, mer_len;
} vocab;

static const char *const special = "<|endoftext|>";

static int find_sym(const vocab *v, const uint8_t *b, int n) {
  for (int i = 0; i < v->nsym; i++)
    if (v->s[i].n == n && !memcmp(v->s[i].b, b, (size_t)n)) return i;
  return -1;
}

/* Adds merge (a, b); its result becomes a symbol unless it is one already. */
static void add_merge(vocab *v, int a, int b) {
  CHT_ASSERT(a >= 0 && b >= 0 && v->s[a].n + v->s[b].n <= SYM_MAX && v->nsym < MAX_SYMS, "merge %d %d", a, b);
  uint8_t cat[SYM_MAX];
  memcpy(cat, v->s[a].b, (size_t)v->s[a].n);
  memcpy(cat + v->s[a].n, v->s[b].b, (size_t)v->s[b].n);
  int n = v->s[a].n + v->s[b].n;
  if (find_sym(v, cat, n) < 0) {
    memcpy(v->s[v->nsym].b, cat, (size_t)n);
    v->s[v->nsym++].n = n;
  }
  v->merge[v->nmerge][0] = a;
  v->merge[v->nmerge++][1] = b;
}

static void add_merge_str(vocab *v, const char *a, const char *b) {
  int ia = find_sym(v, (const uint8_t *)a, (int)strlen(a)), ib = find_sym(v, (const uint8_t *)b, (int)strlen(b));
  CHT_ASSERT(ia >= 0 && ib >= 0, "hand merge '%s' '%s': a part is not a symbol yet", a, b);
  add_merge(v, ia, ib);
}

static void swap_merges(vocab *v, int a, int b) {
  for (int j = 0; j < 2; j++) {
    int t = v->merge[a][j];
    v->merge[a][j] = v->merge[b][j];
    v->merge[b][j] = t;
  }
}

/* Fragments of the random texts (and the source of the random merges). */
static const char *const fragments[] = {
    "the", "The", "and", "king", "queen", "thing", "singing", "under", "then", "there", "her", "our", "you",
    "1234", "00", "abab", "ababc", "xxx", "xxxxx", "3.14", "2024", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'x", "''", ".", ",",
    "!?", "--", "...", "\"", "(", ")", "_", "@#", ";", " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n ",
    "\xc2\xa0", "\xe3\x80\x80", "caf\xc3\xa9", "na\xc3\xafve", "\xc3\xa9t\xc3\xa9", "\xe4\xb8\xad\xe6\x96\x87",
    "\xce\xa9\xce\xbc\xce\xad\xce\xb3\xce\xb1", "\xd0\x96\xd0\xb8\xd0\xb7\xd0\xbd\xd1\x8c", "\xf0\x9f\x98\x80",
    "e\xcc\x81", "\xc2\xb2", "\xd9\xa3\xd9\xa4", "\xe2\x85\xab", "\xe2\x80\x99", "don\xe2\x80\x99t",
    "\xff", "\xc3", "\xe2\x82", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xc0\xaf",
};
#define NFRAG ((int)(sizeof fragments / sizeof *fragments))

/* The vocabulary: bytes, hand merges (monotone), random merges of adjacent pieces of the
 * fragments, then some swaps of ranks; ids a random permutation with one hole. */
static void make_vocab(vocab *v, uint64_t seed) {
  memset(v, 0, sizeof *v);
  for (int b = 0; b < 256; b++) {
    v->s[b].b[0] = (uint8_t)b;
    v->s[b].n = 1;
  }
  v->nsym = 256;
  static const char *const hand[][2] = {
      {" ", "t"}, {"h", "e"}, {" t", "he"}, {"i", "n"}, {"in", "g"}, {" ", "a"}, {"n", "d"}, {" a", "nd"},
      {"e", "r"}, {"o", "u"}, {" ", "k"}, {" k", "in"}, {" kin", "g"}, {"T", "he"}, {"'", "s"}, {"l", "l"},
      {"'", "ll"}, {" ", " "}, {"  ", " "}, {"\n", "\n"}, {"\r", "\n"}, {"1", "2"}, {"12", "3"}, {"0", "0"},
      {"\xc3", "\xa9"}, {"c", "a"}, {"ca", "f"}, {"caf", "\xc3\xa9"}, {"\xe4", "\xb8"}, {"\xe4\xb8", "\xad"},
      {" ", "\xe4\xb8\xad"}, {"\xf0", "\x9f"}, {"\xf0\x9f", "\x98"}, {".", "."}, {".", ".."}, {"\xe2", "\x80"},
      {"\xe2\x80", "\x99"}, {"q", "u"}, {"e", "n"}, {"qu", "e"}, {"que", "en"}, {"s", "in"}, {"t", "h"},
      {"th", "e"}, {"a", "b"}, {"b", "c"}, {"ab", "c"}, {"a", "bc"}, {"ab", "a"}, {"x", "x"},
  };
  for (size_t i = 0; i < sizeof hand / sizeof *hand; i++) add_merge_str(v, hand[i][0], hand[i][1]);
  /* Out of order on purpose: "th e", "a bc" and "ab a" rank before the merges that make their
   * parts. "abab": OpenAI's loop merges both "a b" before it looks at "ab a" (ab|ab, not aba|b);
   * "xxx": occurrences of a pair merge left to right (xx|x, not x|xx). */
  int n = v->nmerge;
  swap_merges(v, n - 8, n - 7);
  swap_merges(v, n - 5, n - 3);
  swap_merges(v, n - 6, n - 2);
  for (int k = 0; k < 70; k++) {
    const char *f = fragments[ch_rng_below(seed, 1, (uint64_t)k, NFRAG)];
    int n = (int)strlen(f);
    if (n < 2) continue;
    int i = (int)ch_rng_below(seed, 2, (uint64_t)k, (uint64_t)n - 1);
    /* the longest symbols (up to 4 bytes) starting at i and right after it */
    int la = 1, lb = 1;
    for (int l = 4; l > 1; l--)
      if (i + l < n && find_sym(v, (const uint8_t *)f + i, l) >= 0) {
        la = l;
        break;
      }
    for (int l = 4; l > 1; l--)
      if (i + la + l <= n && find_sym(v, (const uint8_t *)f + i + la, l) >= 0) {
        lb = l;
        break;
      }
    if (i + la + lb > n) continue;
    add_merge(v, find_sym(v, (const uint8_t *)f + i, la), find_sym(v, (const uint8_t *)f + i + la, lb));
  }
  for (int k = 0; k < 12; k++) /* a few random rank swaps; the first merge stays */
    swap_merges(v, 1 + (int)ch_rng_below(seed, 3, (uint64_t)k, (uint64_t)v->nmerge - 1),
                1 + (int)ch_rng_below(seed, 4, (uint64_t)k, (uint64_t)v->nmerge - 1));
  /* ids: a permutation of [0, nsym + 2) without the hole (never the last id) */
  v->nids = v->nsym + 2;
  v->hole = (int32_t)ch_rng_below(seed, 5, 0, (uint64_t)v->nids - 1);
  int32_t *perm = malloc(sizeof *perm * (size_t)v->nids);
  for (int i = 0; i < v->nids; i++) perm[i] = i;
  for (int i = v->nids - 1; i > 0; i--) {
    int j = (int)ch_rng_below(seed, 6, (uint64_t)i, (uint64_t)i + 1);
    int32_t t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
  for (int i = 0, k = 0; i <= v->nsym; i++, k++) {
    if (perm[k] == v->hole) k++;
    v->id[i] = perm[k];
  }
  free(perm);
}

/* Writes byte string b in GPT-2's alphabet; as JSON (quotes escaped, code points >= 0x100
 * as \u escapes when `escape`) or raw UTF-8. */
static void put_symbols(FILE *f, const uint8_t *b, int n, int json, int escape) {
  for (int i = 0; i < n; i++) {
    uint32_t cp = ch_bpe_byte_cp(b[i]);
    if (json && (cp == '"' || cp == '\\')) fprintf(f, "\\%c", (char)cp);
    else if (cp < 0x80) fputc((int)cp, f);
    else if (json && escape && cp >= 0x100) fprintf(f, "\\u%04x", (unsigned)cp);
    else fprintf(f, "%c%c", (char)(0xC0 | (cp >> 6)), (char)(0x80 | (cp & 0x3F)));
  }
}

static void write_vocab_texts(vocab *v) {
  FILE *f = open_memstream(&v->enc, &v->enc_len);
  fprintf(f, "{");
  for (int i = 0; i < v->nsym; i++) {
    fprintf(f, "%s\n\"", i ? "," : "");
    put_symbols(f, v->s[i].b, v->s[i].n, 1, i % 2);
    fprintf(f, "\": %d", (int)v->id[i]);
  }
  fprintf(f, ",\n\"%s\": %d}\n", special, (int)v->id[v->nsym]);
  fclose(f);
  f = open_memstream(&v->mer, &v->mer_len);
  fprintf(f, "#version: 0.2\n");
  for (int k = 0; k < v->nmerge; k++) {
    put_symbols(f, v->s[v->merge[k][0]].b, v->s[v->merge[k][0]].n, 0, 0);
    fputc(' ', f);
    put_symbols(f, v->s[v->merge[k][1]].b, v->s[v->merge[k][1]].n, 0, 0);
    fprintf(f, k == 7 ? "\r\n" : k == 20 ? "\n\n" : "\n");
  }
  fclose(f);
}

/* A random text of fragments, random code points, random bytes (caller frees). */
static char *random_text(uint64_t seed, uint64_t stream, size_t *len) {
  size_t cap = 1 << 16, n = 0;
  char *s = malloc(cap);
  int parts = (int)ch_rng_below(seed, stream, 0, 400);
  for (int k = 0; k < parts; k++) {
    uint64_t kind = ch_rng_below(seed, stream, 3 * (uint64_t)k + 1, 10), r = ch_rng_u64(seed, stream, 3 * (uint64_t)k + 2);
    if (kind < 7) {
      const char *f = fragments[r % NFRAG];
      memcpy(s + n, f, strlen(f));
      n += strlen(f);
    } else if (kind < 9) { /* a random code point, UTF-8 (surrogates give invalid bytes) */
      uint32_t cp = r % 5 == 0 ? (uint32_t)(r >> 8) % 0x110000 : (uint32_t)(r >> 8) % 0x3000;
      if (cp < 0x80) s[n++] = (char)cp;
      else if (cp < 0x800) n += (size_t)sprintf(s + n, "%c%c", 0xC0 | (cp >> 6), 0x80 | (cp & 0x3F));
      else if (cp < 0x10000)
        n += (size_t)sprintf(s + n, "%c%c%c", 0xE0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3F), 0x80 | (cp & 0x3F));
      else
        n += (size_t)sprintf(s + n, "%c%c%c%c", 0xF0 | (cp >> 18), 0x80 | ((cp >> 12) & 0x3F),
                             0x80 | ((cp >> 6) & 0x3F), 0x80 | (cp & 0x3F));
    } else {
      s[n++] = (char)(r & 0xFF);
    }
  }
  *len = n;
  return s;
}

static ch_tokenizer *make_gpt2(const vocab *v) {
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
    size_t e = ch_bpe_next_piece((const uint8_t *)text, n, i);
    CHT_ASSERT(e > i && e <= n, "pieces of '%s': no progress at %zu", text, i);
    k += (size_t)snprintf(got + k, sizeof got - k, "%s%.*s", i ? "|" : "", (int)(e - i), text + i);
    i = e;
  }
  CHT_ASSERT(!strcmp(got, want), "pieces of '%s': got '%s', expected '%s'", text, got, want);
}

static void check_pretokenizer(void) {
  check_pieces("I'm here, don't they'll we've you're he'd it's", "I|'m| here|,| don|'t| they|'ll| we|'ve| you|'re| he|'d| it|'s");
  check_pieces("'S 'sup ''s 'x", "'|S| '|sup| ''|s| '|x");
  check_pieces("a  b", "a| | b");
  check_pieces("x \n y", "x| \n| y");
  check_pieces("end   ", "end|   ");
  check_pieces("\t\tx", "\t|\t|x");
  check_pieces("12ab 3.5 ?\?! ?x", "12|ab| 3|.|5| ?\?!| ?|x");
  check_pieces("caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87\xd9\xa3\xd9\xa4", "caf\xc3\xa9| \xe4\xb8\xad\xe6\x96\x87|\xd9\xa3\xd9\xa4");
  check_pieces("e\xcc\x81t\xe2\x80\x99s \xf0\x9f\x98\x80!", "e|\xcc\x81|t|\xe2\x80\x99|s| \xf0\x9f\x98\x80!");
  check_pieces("a\xc2\xa0\xc2\xa0 b\xe3\x80\x80", "a|\xc2\xa0\xc2\xa0| b|\xe3\x80\x80");
  check_pieces("ab\xff\xfe cd\xe2\x82x", "ab|\xff\xfe| cd|\xe2\x82|x");
  check_pieces("x\xc2\xb2\xe2\x85\xab_y", "x|\xc2\xb2\xe2\x85\xab|_|y");
  /* classes of a few code points, and strict UTF-8 */
  CHT_ASSERT(ch_bpe_classify('a') == CH_BPE_LETTER && ch_bpe_classify('7') == CH_BPE_NUMBER &&
                 ch_bpe_classify('_') == CH_BPE_OTHER && ch_bpe_classify(0x1C) == CH_BPE_OTHER &&
                 ch_bpe_classify(0x85) == CH_BPE_SPACE && ch_bpe_classify(0x4E2D) == CH_BPE_LETTER &&
                 ch_bpe_classify(0x2167) == CH_BPE_NUMBER && ch_bpe_classify(0x2019) == CH_BPE_OTHER &&
                 ch_bpe_classify(0x10FFFF) == CH_BPE_OTHER && ch_bpe_classify(CH_BPE_INVALID_CP) == CH_BPE_OTHER,
             "character classes");
  static const char *const invalid[] = {"\xc0\x80", "\xe0\x9f\xbf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xf5\x80",
                                        "\x80", "\xe2\x82"};
  for (size_t i = 0; i < sizeof invalid / sizeof *invalid; i++) {
    uint32_t cp;
    size_t l = ch_bpe_utf8_next((const uint8_t *)invalid[i], strlen(invalid[i]), 0, &cp);
    CHT_ASSERT(l == 1 && cp == CH_BPE_INVALID_CP, "invalid UTF-8 %zu accepted", i);
  }
  uint32_t cp;
  CHT_ASSERT(ch_bpe_utf8_next((const uint8_t *)"\xf4\x8f\xbf\xbf", 4, 0, &cp) == 4 && cp == 0x10FFFF, "U+10FFFF");
  for (int b = 0; b < 256; b++)
    CHT_ASSERT(ch_bpe_cp_byte(ch_bpe_byte_cp((uint8_t)b)) == b, "byte alphabet at %d", b);
  CHT_ASSERT(ch_bpe_byte_cp(' ') == 0x120 && ch_bpe_byte_cp('\n') == 0x10A && ch_bpe_byte_cp('a') == 'a' &&
                 ch_bpe_byte_cp(0xAD) == 0x143 && ch_bpe_cp_byte(0x144) == -1 && ch_bpe_cp_byte(0x20) == -1,
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

static void check_gpt2(const vocab *v) {
  ch_tokenizer *t = make_gpt2(v);
  CHT_ASSERT(!strcmp(ch_tokenizer_name(t), "gpt2") && ch_tokenizer_vocab(t) == v->nids, "gpt2: name %s vocab %lld (want %d)",
             ch_tokenizer_name(t), (long long)ch_tokenizer_vocab(t), (int)v->nids);
  /* merged words become their own token (when no rank swap broke them) */
  int i_the = find_sym(v, (const uint8_t *)" the", 4);
  int32_t got = token_id(t, " the");
  CHT_ASSERT(got == v->id[i_the] || got == -1, "' the' -> %d, its id is %d", (int)got, (int)v->id[i_the]);
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
    char *s = random_text(SEED, 100 + (uint64_t)k, &len);
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
  CHT_ASSERT(st == CH_ERR_FORMAT && t == NULL && strstr(ch_error_message(), want), "expected a format error with '%s', got %s: %s",
             want, ch_status_str(st), ch_error_message());
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

static void check_bad_files(const vocab *v) {
  char *enc = strndup(v->enc, v->enc_len), *mer = strndup(v->mer, v->mer_len), *e, *m;
  expect_bad("{\"a\": 1,\n\"b\": }", mer, "encoder.json line 2");
  expect_bad("[1, 2]", mer, "JSON object");
  char key[64];
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

/* ---- the converter and the stored tokenizer ---- */

static int32_t *read_tokens(const char *path, const char *split, int64_t *n) {
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  char name[64];
  snprintf(name, sizeof name, "/%s/tokens", split);
  hid_t d = H5Dopen2(f, name, H5P_DEFAULT), s = H5Dget_space(d), ty = H5Dget_type(d);
  CHT_ASSERT(f >= 0 && d >= 0 && H5Tequal(ty, H5T_STD_I32LE) > 0, "%s: %s", path, name);
  hsize_t dims[1];
  H5Sget_simple_extent_dims(s, dims, NULL);
  int32_t *t = malloc(sizeof *t * (dims[0] + 1));
  CHT_ASSERT(dims[0] == 0 || H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, t) >= 0, "read %s", name);
  *n = (int64_t)dims[0];
  H5Tclose(ty);
  H5Sclose(s);
  H5Dclose(d);
  H5Fclose(f);
  return t;
}

static void write_file(const char *path, const char *s, size_t len, int gz) {
  if (gz) {
    gzFile f = gzopen(path, "wb");
    CHT_ASSERT(f && gzwrite(f, s, (unsigned)len) == (int)len, "gzwrite %s", path);
    gzclose(f);
  } else {
    FILE *f = fopen(path, "wb");
    CHT_ASSERT(f && fwrite(s, 1, len, f) == len, "write %s", path);
    fclose(f);
  }
}

static void check_convert(const vocab *v, const char *dir) {
  char a[256], b[256], out[256], partial[300];
  snprintf(a, sizeof a, "%s/a.txt.gz", dir);
  snprintf(b, sizeof b, "%s/b.txt", dir);
  snprintf(out, sizeof out, "%s/text.h5", dir);
  snprintf(partial, sizeof partial, "%s.partial", out);
  size_t la, lb;
  char *ta = random_text(SEED, 500, &la), *tb = random_text(SEED, 501, &lb);
  while (la && ta[la - 1] == '\n') la--; /* a does not end with '\n': one is added */
  CHT_ASSERT(la > 0 && lb > 0, "empty random texts");
  write_file(a, ta, la, 1);
  write_file(b, tb, lb, 0);
  char *all = malloc(la + lb + 2);
  memcpy(all, ta, la);
  all[la] = '\n';
  memcpy(all + la + 1, tb, lb);
  size_t lall = la + 1 + lb;
  const char *const in[2] = {a, b};
  ch_tokenizer *toks[2];
  CHT_OK(ch_tokenizer_create_byte(&toks[0]));
  toks[1] = make_gpt2(v);
  for (int k = 0; k < 2; k++) {
    double f = k ? 0.3 : 0.1;
    ch_text_opts o = {.val_fraction = f, .tok = toks[k]};
    ch_text_stats st;
    CHT_OK(ch_data_text_convert(in, 2, out, &o, &st));
    CHT_ASSERT(access(partial, F_OK) != 0, "%s left behind", partial);
    int32_t *want;
    int64_t n, ntr, nva;
    CHT_OK(ch_tokenizer_encode(toks[k], all, lall, &want, &n));
    int64_t wval = (int64_t)(f * (double)n + 0.5);
    CHT_ASSERT(st.bytes == (int64_t)lall && st.tokens == n && st.val_tokens == wval && st.train_tokens == n - wval &&
                   st.vocab == ch_tokenizer_vocab(toks[k]),
               "%s: stats bytes %lld tokens %lld train %lld val %lld vocab %lld", ch_tokenizer_name(toks[k]),
               (long long)st.bytes, (long long)st.tokens, (long long)st.train_tokens, (long long)st.val_tokens,
               (long long)st.vocab);
    int32_t *tr = read_tokens(out, "train", &ntr), *va = read_tokens(out, "val", &nva);
    CHT_ASSERT(ntr == n - wval && nva == wval, "split sizes %lld + %lld", (long long)ntr, (long long)nva);
    CHT_ASSERT(!memcmp(tr, want, sizeof *tr * (size_t)ntr) && !memcmp(va, want + ntr, sizeof *va * (size_t)nva),
               "%s: stored tokens differ from the encoding", ch_tokenizer_name(toks[k]));
    /* entropy of the train tokens */
    int64_t *cnt = calloc((size_t)st.vocab, sizeof *cnt);
    for (int64_t i = 0; i < ntr; i++) cnt[tr[i]]++;
    double h = 0;
    for (int64_t i = 0; i < st.vocab; i++)
      if (cnt[i]) h -= (double)cnt[i] / (double)ntr * log2((double)cnt[i] / (double)ntr);
    CHT_ASSERT(fabs(h - st.unigram_entropy_bits) < 1e-9 && h > 1, "entropy %.12g, expected %.12g", st.unigram_entropy_bits, h);
    free(cnt);
    /* the stored tokenizer is the same tokenizer */
    ch_tokenizer *l;
    CHT_OK(ch_tokenizer_load(out, &l));
    CHT_ASSERT(!strcmp(ch_tokenizer_name(l), ch_tokenizer_name(toks[k])) && ch_tokenizer_vocab(l) == st.vocab,
               "loaded %s, vocab %lld", ch_tokenizer_name(l), (long long)ch_tokenizer_vocab(l));
    int32_t *again;
    int64_t n2;
    CHT_OK(ch_tokenizer_encode(l, all, lall, &again, &n2));
    CHT_ASSERT(n2 == n && !memcmp(again, want, sizeof *want * (size_t)n), "loaded tokenizer encodes differently");
    ch_tokenizer_destroy(l);
    free(again);
    free(want);
    free(tr);
    free(va);
  }
  /* errors */
  ch_text_opts o = {.val_fraction = 0.5, .tok = toks[0]};
  const char *const missing[2] = {a, "/nonexistent-cohort/x.txt"};
  ch_status st = ch_data_text_convert(missing, 2, out, &o, NULL);
  CHT_ASSERT(st == CH_ERR_IO && strstr(ch_error_message(), "/nonexistent-cohort/x.txt"), "missing input: %s: %s",
             ch_status_str(st), ch_error_message());
  o.val_fraction = 1;
  CHT_ASSERT(ch_data_text_convert(in, 2, out, &o, NULL) == CH_ERR_INVALID, "val fraction 1");
  o.val_fraction = 0;
  CHT_ASSERT(ch_data_text_convert(in, 2, out, &o, NULL) == CH_ERR_INVALID, "val fraction 0");
  write_file(a, "abc", 3, 0);
  o.val_fraction = 0.5;
  st = ch_data_text_convert(in, 1, out, &o, NULL);
  CHT_ASSERT(st == CH_ERR_FORMAT && strstr(ch_error_message(), "3 tokens"), "3 tokens: %s: %s", ch_status_str(st),
             ch_error_message());
  write_file(a, "abcdefghij", 10, 0);
  o.val_fraction = 0.1; /* val 1 token */
  st = ch_data_text_convert(in, 1, out, &o, NULL);
  CHT_ASSERT(st == CH_ERR_INVALID && strstr(ch_error_message(), "val 1"), "val of 1 token: %s: %s", ch_status_str(st),
             ch_error_message());
  o.val_fraction = 0.2;
  CHT_OK(ch_data_text_convert(in, 1, out, &o, NULL));
  ch_error_clear();
  ch_tokenizer_destroy(toks[0]);
  ch_tokenizer_destroy(toks[1]);
  free(ta);
  free(tb);
  free(all);
  unlink(a);
  unlink(b);
  unlink(out);
}

/* ---- the dump for bpe_ref.py ---- */

static void dump(const vocab *v, const char *dir) {
  char path[512];
  snprintf(path, sizeof path, "%s/encoder.json", dir);
  write_file(path, v->enc, v->enc_len, 0);
  snprintf(path, sizeof path, "%s/vocab.bpe", dir);
  write_file(path, v->mer, v->mer_len, 0);
  char *cls = malloc(0x110000);
  for (uint32_t cp = 0; cp < 0x110000; cp++) cls[cp] = (char)ch_bpe_classify(cp);
  snprintf(path, sizeof path, "%s/classes.bin", dir);
  write_file(path, cls, 0x110000, 0);
  free(cls);
  ch_tokenizer *t = make_gpt2(v);
  for (int k = 0; k < 80; k++) {
    size_t len;
    char *s = random_text(SEED, 1000 + (uint64_t)k, &len);
    if (k % 10 == 9) /* pure random bytes */
      for (size_t i = 0; i < len; i++) s[i] = (char)ch_rng_below(SEED, 2000 + (uint64_t)k, i, 256);
    snprintf(path, sizeof path, "%s/text_%02d.bin", dir, k);
    write_file(path, s, len, 0);
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
  vocab *v = malloc(sizeof *v);
  make_vocab(v, SEED);
  write_vocab_texts(v);
  if (argc == 3 && !strcmp(argv[1], "--dump")) {
    dump(v, argv[2]);
  } else {
    char dir[64] = "/tmp/cohort_test_tokenizer_XXXXXX";
    CHT_ASSERT(mkdtemp(dir), "mkdtemp");
    check_byte();
    check_pretokenizer();
    check_gpt2(v);
    check_bad_files(v);
    check_convert(v, dir);
    rmdir(dir);
    printf("test_tokenizer: ok (%d symbols, %d merges, vocab %d)\n", v->nsym, v->nmerge, (int)v->nids);
  }
  free(v->enc);
  free(v->mer);
  free(v);
  return 0;
}
