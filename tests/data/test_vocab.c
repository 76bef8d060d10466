/* The GPT-2 test vocabulary and random texts shared by the tokenizer tests (see test_vocab.h). */
#include "test_vocab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "cohort/rng.h"
#include "data/bpe.h"
#include "testlib.h"

const char *const tv_special = "<|endoftext|>";

int tv_find_sym(const tv_vocab *v, const uint8_t *b, int n) {
  for (int i = 0; i < v->nsym; i++)
    if (v->s[i].n == n && !memcmp(v->s[i].b, b, (size_t)n)) return i;
  return -1;
}

/* Adds merge (a, b); its result becomes a symbol unless it is one already. */
static void add_merge(tv_vocab *v, int a, int b) {
  CHT_ASSERT(a >= 0 && b >= 0 && v->s[a].n + v->s[b].n <= TV_SYM_MAX && v->nsym < TV_MAX_SYMS, "merge %d %d", a, b);
  uint8_t cat[TV_SYM_MAX];
  memcpy(cat, v->s[a].b, (size_t)v->s[a].n);
  memcpy(cat + v->s[a].n, v->s[b].b, (size_t)v->s[b].n);
  int n = v->s[a].n + v->s[b].n;
  if (tv_find_sym(v, cat, n) < 0) {
    memcpy(v->s[v->nsym].b, cat, (size_t)n);
    v->s[v->nsym++].n = n;
  }
  v->merge[v->nmerge][0] = a;
  v->merge[v->nmerge++][1] = b;
}

static void add_merge_str(tv_vocab *v, const char *a, const char *b) {
  int ia = tv_find_sym(v, (const uint8_t *)a, (int)strlen(a)), ib = tv_find_sym(v, (const uint8_t *)b, (int)strlen(b));
  CHT_ASSERT(ia >= 0 && ib >= 0, "hand merge '%s' '%s': a part is not a symbol yet", a, b);
  add_merge(v, ia, ib);
}

static void swap_merges(tv_vocab *v, int a, int b) {
  for (int j = 0; j < 2; j++) {
    int t = v->merge[a][j];
    v->merge[a][j] = v->merge[b][j];
    v->merge[b][j] = t;
  }
}

/* Fragments of the random texts (and the source of the random merges). */
static const char *const fragments[] = {
    "the", "The", "and", "king", "queen", "thing", "singing", "under", "then", "there", "her", "our", "you",
    "1234", "00", "abab", "ababc", "xxx", "xxxxx", "3.14", "2024", "'s", "'t", "'re", "'ve", "'m", "'ll",
    "'d", "'S", "'x", "''", ".", ",", "!?", "--", "...", "\"", "(", ")", "_", "@#", ";", " ", "  ", "   ",
    "\t", "\n", "\n\n", "\r\n", " \n ",
    "\xc2\xa0", "\xe3\x80\x80", "caf\xc3\xa9", "na\xc3\xafve", "\xc3\xa9t\xc3\xa9", "\xe4\xb8\xad\xe6\x96\x87",
    "\xce\xa9\xce\xbc\xce\xad\xce\xb3\xce\xb1", "\xd0\x96\xd0\xb8\xd0\xb7\xd0\xbd\xd1\x8c", "\xf0\x9f\x98\x80",
    "e\xcc\x81", "\xc2\xb2", "\xd9\xa3\xd9\xa4", "\xe2\x85\xab", "\xe2\x80\x99", "don\xe2\x80\x99t",
    "\xff", "\xc3", "\xe2\x82", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xc0\xaf",
};
#define NFRAG ((int)(sizeof fragments / sizeof *fragments))

static void write_texts(tv_vocab *v);

/* The vocabulary: bytes, hand merges, random merges of adjacent pieces of the fragments, then
 * some swaps of ranks; ids a random permutation with one hole. */
void tv_make(tv_vocab *v, uint64_t seed) {
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
  swap_merges(v, n - 8, n - 7); /* t h <-> th e */
  swap_merges(v, n - 5, n - 3); /* b c <-> a bc */
  swap_merges(v, n - 6, n - 2); /* a b <-> ab a */
  for (int k = 0; k < 70; k++) {
    const char *f = fragments[ch_rng_below(seed, 1, (uint64_t)k, NFRAG)];
    int n = (int)strlen(f);
    if (n < 2 || !strncmp(f, "ab", 2) || !strncmp(f, "xx", 2)) continue; /* keep the hand cases */
    int i = (int)ch_rng_below(seed, 2, (uint64_t)k, (uint64_t)n - 1);
    /* the longest symbols (up to 4 bytes) starting at i and right after it */
    int la = 1, lb = 1;
    for (int l = 4; l > 1; l--)
      if (i + l < n && tv_find_sym(v, (const uint8_t *)f + i, l) >= 0) {
        la = l;
        break;
      }
    for (int l = 4; l > 1; l--)
      if (i + la + l <= n && tv_find_sym(v, (const uint8_t *)f + i + la, l) >= 0) {
        lb = l;
        break;
      }
    if (i + la + lb > n) continue;
    add_merge(v, tv_find_sym(v, (const uint8_t *)f + i, la), tv_find_sym(v, (const uint8_t *)f + i + la, lb));
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
  write_texts(v);
}

/* Writes byte string b in GPT-2's alphabet; as JSON (quotes escaped, code points >= 0x100
 * as \u escapes when `escape`) or raw UTF-8. */
static void put_symbols(FILE *f, const uint8_t *b, int n, int json, int escape) {
  for (int i = 0; i < n; i++) {
    uint32_t cp = bpe_byte_cp(b[i]);
    if (json && (cp == '"' || cp == '\\')) fprintf(f, "\\%c", (char)cp);
    else if (cp < 0x80) fputc((int)cp, f);
    else if (json && escape && cp >= 0x100) fprintf(f, "\\u%04x", (unsigned)cp);
    else fprintf(f, "%c%c", (char)(0xC0 | (cp >> 6)), (char)(0x80 | (cp & 0x3F)));
  }
}

static void write_texts(tv_vocab *v) {
  FILE *f = open_memstream(&v->enc, &v->enc_len);
  fprintf(f, "{");
  for (int i = 0; i < v->nsym; i++) {
    fprintf(f, "%s\n\"", i ? "," : "");
    put_symbols(f, v->s[i].b, v->s[i].n, 1, i % 2);
    fprintf(f, "\": %d", (int)v->id[i]);
  }
  fprintf(f, ",\n\"%s\": %d}\n", tv_special, (int)v->id[v->nsym]);
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
char *tv_random_text(uint64_t seed, uint64_t stream, size_t *len) {
  size_t cap = 1 << 16, n = 0;
  char *s = malloc(cap);
  int parts = (int)ch_rng_below(seed, stream, 0, 400);
  for (int k = 0; k < parts; k++) {
    uint64_t kind = ch_rng_below(seed, stream, 3 * (uint64_t)k + 1, 10);
    uint64_t r = ch_rng_u64(seed, stream, 3 * (uint64_t)k + 2);
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

void tv_write_file(const char *path, const char *s, size_t len, int gz) {
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


void tv_free(tv_vocab *v) {
  free(v->enc);
  free(v->mer);
  v->enc = v->mer = NULL;
}
