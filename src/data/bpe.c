/* GPT-2 byte-pair encoding: byte alphabet, UTF-8, the pre-tokeniser, hash maps and the merge
 * loop of one piece (see bpe.h). Written from the algorithm's description in OpenAI's GPT-2
 * encoder (encoder.py); the regex is matched by hand.
 *
 * Character classes are exact Unicode general categories (\p{L} = L*, \p{N} = N*) and the
 * White_Space property for \s, from a table generated out of Python's unicodedata
 * (unicode_classes.inc), so the pieces match the regex on any text, not only ASCII, and do not
 * depend on the C library's locale. An invalid UTF-8 byte counts as one code point of class
 * "other" (the regex never sees one: OpenAI's encoder takes decoded text). */
#include "data/bpe.h"

#include <stdlib.h>
#include <string.h>

#include "data/unicode_classes.inc"

/* ---- byte alphabet ---- */

/* Printable Latin-1 bytes ('!'..'~', 0xA1..0xAC, 0xAE..0xFF) are their own code point; the 68
 * others, in byte order (0x00..0x20, 0x7F..0xA0, 0xAD), get U+0100..U+0143. */
uint32_t bpe_byte_cp(uint8_t b) {
  if (b <= 0x20) return 0x100 + b;
  if (b >= 0x7F && b <= 0xA0) return 0x100 + 33 + (b - 0x7Fu);
  if (b == 0xAD) return 0x100 + 67;
  return b;
}

int bpe_cp_byte(uint32_t cp) {
  if (cp < 0x100) return (cp > 0x20 && cp < 0x7F) || (cp > 0xA0 && cp != 0xAD) ? (int)cp : -1;
  if (cp < 0x100 + 33) return (int)(cp - 0x100);
  if (cp < 0x100 + 67) return (int)(cp - 0x100 - 33 + 0x7F);
  return cp == 0x100 + 67 ? 0xAD : -1;
}

/* ---- UTF-8 and classes ---- */

size_t bpe_utf8_next(const uint8_t *s, size_t n, size_t i, uint32_t *cp) {
  uint8_t b = s[i];
  *cp = CH_BPE_INVALID_CP;
  if (b < 0x80) {
    *cp = b;
    return 1;
  }
  /* Lead byte -> length, and the allowed range of the second byte (Unicode Table 3-7), which
   * rules out overlong forms, surrogates and code points above U+10FFFF. */
  size_t len;
  uint8_t lo = 0x80, hi = 0xBF;
  if (b >= 0xC2 && b <= 0xDF) len = 2;
  else if (b >= 0xE0 && b <= 0xEF) len = 3, lo = b == 0xE0 ? 0xA0 : 0x80, hi = b == 0xED ? 0x9F : 0xBF;
  else if (b >= 0xF0 && b <= 0xF4) len = 4, lo = b == 0xF0 ? 0x90 : 0x80, hi = b == 0xF4 ? 0x8F : 0xBF;
  else return 1;
  if (n - i < len || s[i + 1] < lo || s[i + 1] > hi) return 1;
  uint32_t v = b & (0x7F >> len);
  for (size_t k = 1; k < len; k++) {
    if ((s[i + k] & 0xC0) != 0x80) return 1;
    v = v << 6 | (s[i + k] & 0x3F);
  }
  *cp = v;
  return len;
}

bpe_class bpe_classify(uint32_t cp) {
  static const bpe_class code[4] = {CH_BPE_OTHER, CH_BPE_LETTER, CH_BPE_NUMBER, CH_BPE_SPACE};
  if (cp > 0x10FFFF) return CH_BPE_OTHER;
  /* Last run that starts at or before cp. */
  size_t a = 0, b = CH_UNICODE_RUNS;
  while (b - a > 1) {
    size_t mid = (a + b) / 2;
    if ((unicode_runs[mid] >> 2) <= cp) a = mid;
    else b = mid;
  }
  return code[unicode_runs[a] & 3];
}

static bpe_class class_at(const uint8_t *s, size_t n, size_t i, size_t *len) {
  uint32_t cp;
  *len = bpe_utf8_next(s, n, i, &cp);
  return bpe_classify(cp);
}

/* End of the run of class c that starts at i. */
static size_t run_end(const uint8_t *s, size_t n, size_t i, bpe_class c) {
  size_t len;
  while (i < n && class_at(s, n, i, &len) == c) i += len;
  return i;
}

size_t bpe_next_piece(const uint8_t *s, size_t n, size_t i) {
  /* 's 't 're 've 'm 'll 'd (case-sensitive, ASCII apostrophe only). */
  if (s[i] == '\'' && n - i >= 2) {
    uint8_t c = s[i + 1];
    if (c == 's' || c == 't' || c == 'm' || c == 'd') return i + 2;
    if (n - i >= 3 && ((c == 'r' && s[i + 2] == 'e') || (c == 'v' && s[i + 2] == 'e') || (c == 'l' && s[i + 2] == 'l')))
      return i + 3;
  }
  size_t len;
  bpe_class c = class_at(s, n, i, &len);
  /* ` ?X+` for X = letters, numbers, other: a space joins the run that follows it. */
  if (s[i] == ' ' && n - i >= 2) {
    size_t len1;
    bpe_class c1 = class_at(s, n, i + 1, &len1);
    if (c1 != CH_BPE_SPACE) return run_end(s, n, i + 1, c1);
  }
  if (c != CH_BPE_SPACE) return run_end(s, n, i, c);
  /* \s+(?!\S): the whitespace run, less its last code point when a non-space follows (the
   * lookahead fails at the run's end and backtracks one); a run of one before a non-space
   * falls through to \s+ and is taken whole. */
  size_t end = i, last = i;
  while (end < n) {
    size_t l;
    if (class_at(s, n, end, &l) != CH_BPE_SPACE) break;
    last = end;
    end += l;
  }
  if (end == n || last == i) return end;
  return last;
}

/* ---- byte string -> int64 map ---- */

typedef struct bpe_strent {
  size_t off, len;
  uint64_t hash;
  int64_t value;
} bpe_strent;

static uint64_t hash_bytes(const void *p, size_t len) {
  const uint8_t *s = p;
  uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
  for (size_t i = 0; i < len; i++) h = (h ^ s[i]) * 0x100000001b3ULL;
  return h ^ (h >> 29);
}

static int64_t strmap_find(const bpe_strmap *m, const void *key, size_t len, uint64_t h) {
  if (!m->nslot) return -1;
  for (int64_t i = (int64_t)(h & (uint64_t)(m->nslot - 1));; i = (i + 1) & (m->nslot - 1)) {
    int64_t e = m->slot[i];
    if (e < 0) return -1 - i; /* free slot i */
    const bpe_strent *x = &m->ent[e];
    if (x->hash == h && x->len == len && !memcmp(m->arena + x->off, key, len)) return e;
  }
}

static ch_status strmap_rehash(bpe_strmap *m, int64_t nslot) {
  int64_t *slot = malloc((size_t)nslot * sizeof *slot);
  if (!slot) return CH_FAIL(CH_ERR_NOMEM, "hash table of %lld slots", (long long)nslot);
  memset(slot, 0xff, (size_t)nslot * sizeof *slot);
  for (int64_t e = 0; e < m->nent; e++) {
    int64_t i = (int64_t)(m->ent[e].hash & (uint64_t)(nslot - 1));
    while (slot[i] >= 0) i = (i + 1) & (nslot - 1);
    slot[i] = e;
  }
  free(m->slot);
  m->slot = slot;
  m->nslot = nslot;
  return CH_OK;
}

ch_status bpe_strmap_put(bpe_strmap *m, const void *key, size_t len, int64_t value, int *existed) {
  uint64_t h = hash_bytes(key, len);
  if (existed) *existed = 0;
  int64_t f = strmap_find(m, key, len, h);
  if (f >= 0) {
    if (existed) *existed = 1;
    return CH_OK;
  }
  if ((m->nent + 1) * 2 > m->nslot) { /* load factor at most 1/2 */
    CH_CHECK(strmap_rehash(m, m->nslot ? m->nslot * 2 : 64));
    f = strmap_find(m, key, len, h);
  }
  if (m->nent == m->ent_cap) {
    int64_t cap = m->ent_cap ? m->ent_cap * 2 : 32;
    bpe_strent *e = realloc(m->ent, (size_t)cap * sizeof *e);
    if (!e) return CH_FAIL(CH_ERR_NOMEM, "hash table of %lld entries", (long long)cap);
    m->ent = e;
    m->ent_cap = cap;
  }
  if (m->arena_cap - m->arena_len < len) {
    size_t cap = m->arena_cap ? m->arena_cap : 4096;
    while (cap - m->arena_len < len) cap *= 2;
    char *a = realloc(m->arena, cap);
    if (!a) return CH_FAIL(CH_ERR_NOMEM, "hash table keys of %zu bytes", cap);
    m->arena = a;
    m->arena_cap = cap;
  }
  if (len) memcpy(m->arena + m->arena_len, key, len);
  m->ent[m->nent] = (bpe_strent){m->arena_len, len, h, value};
  m->arena_len += len;
  m->slot[-1 - f] = m->nent++;
  return CH_OK;
}

int bpe_strmap_get(const bpe_strmap *m, const void *key, size_t len, int64_t *value) {
  int64_t e = strmap_find(m, key, len, hash_bytes(key, len));
  if (e < 0) return 0;
  *value = m->ent[e].value;
  return 1;
}

void bpe_strmap_free(bpe_strmap *m) {
  free(m->arena);
  free(m->ent);
  free(m->slot);
  memset(m, 0, sizeof *m);
}

/* ---- merge table ---- */

static uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t)(uint32_t)a << 32 | (uint32_t)b; }
static uint64_t pair_hash(uint64_t k) {
  k ^= k >> 31;
  k *= 0x9e3779b97f4a7c15ULL;
  return k ^ (k >> 29);
}

static int64_t merges_slot(const bpe_merges *m, uint64_t k) {
  int64_t i = (int64_t)(pair_hash(k) & (uint64_t)(m->cap - 1));
  while (m->key[i] != UINT64_MAX && m->key[i] != k) i = (i + 1) & (m->cap - 1);
  return i;
}

static ch_status merges_grow(bpe_merges *m) {
  int64_t cap = m->cap ? m->cap * 2 : 1024;
  bpe_merges g = {malloc((size_t)cap * sizeof *g.key), malloc((size_t)cap * sizeof *g.rank),
                     malloc((size_t)cap * sizeof *g.merged), m->n, cap};
  if (!g.key || !g.rank || !g.merged) {
    bpe_merges_free(&g);
    return CH_FAIL(CH_ERR_NOMEM, "merge table of %lld slots", (long long)cap);
  }
  memset(g.key, 0xff, (size_t)cap * sizeof *g.key);
  for (int64_t i = 0; i < m->cap; i++) {
    if (m->key[i] == UINT64_MAX) continue;
    int64_t j = merges_slot(&g, m->key[i]);
    g.key[j] = m->key[i];
    g.rank[j] = m->rank[i];
    g.merged[j] = m->merged[i];
  }
  bpe_merges_free(m);
  *m = g;
  return CH_OK;
}

ch_status bpe_merges_put(bpe_merges *m, int32_t a, int32_t b, int32_t rank, int32_t merged) {
  if ((m->n + 1) * 2 > m->cap) CH_CHECK(merges_grow(m));
  uint64_t k = pair_key(a, b);
  int64_t i = merges_slot(m, k);
  if (m->key[i] == UINT64_MAX) m->n++;
  m->key[i] = k;
  m->rank[i] = rank;
  m->merged[i] = merged;
  return CH_OK;
}

int bpe_merges_get(const bpe_merges *m, int32_t a, int32_t b, int32_t *rank, int32_t *merged) {
  if (!m->cap) return 0;
  int64_t i = merges_slot(m, pair_key(a, b));
  if (m->key[i] == UINT64_MAX) return 0;
  *rank = m->rank[i];
  *merged = m->merged[i];
  return 1;
}

void bpe_merges_free(bpe_merges *m) {
  free(m->key);
  free(m->rank);
  free(m->merged);
  memset(m, 0, sizeof *m);
}

/* ---- the merge loop ---- */

/* A symbol of the piece, at the byte offset where it starts; merged symbols keep the left
 * one's offset, and prev/next link the live ones (-1 at the ends). id -1: merged away. */
typedef struct bpe_sym {
  int32_t id, prev, next;
} bpe_sym;

/* A candidate merge of the symbol at pos with its right neighbour, valid while both still
 * have the ids it was made for. */
typedef struct bpe_cand {
  int32_t rank, pos, left, right, merged;
} bpe_cand;

static int cand_less(const bpe_cand *a, const bpe_cand *b) {
  return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(bpe_cand *h, int64_t *n, bpe_cand c) {
  int64_t i = (*n)++;
  while (i > 0 && cand_less(&c, &h[(i - 1) / 2])) {
    h[i] = h[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  h[i] = c;
}

static bpe_cand heap_pop(bpe_cand *h, int64_t *n) {
  bpe_cand top = h[0], last = h[--*n];
  int64_t i = 0;
  for (;;) {
    int64_t c = 2 * i + 1;
    if (c >= *n) break;
    if (c + 1 < *n && cand_less(&h[c + 1], &h[c])) c++;
    if (!cand_less(&h[c], &last)) break;
    h[i] = h[c];
    i = c;
  }
  if (*n) h[i] = last;
  return top;
}

static void push_pair(const bpe_merges *m, const bpe_sym *sym, int32_t pos, bpe_cand *h,
                      int64_t *n) {
  int32_t r = sym[pos].next, rank, merged;
  if (r >= 0 && bpe_merges_get(m, sym[pos].id, sym[r].id, &rank, &merged))
    heap_push(h, n, (bpe_cand){rank, pos, sym[pos].id, sym[r].id, merged});
}

static ch_status scratch_reserve(bpe_scratch *s, int64_t len) {
  /* Candidates pushed: len - 1 at the start, at most 2 per merge after. */
  if (s->sym_cap < len) {
    bpe_sym *p = realloc(s->sym, (size_t)len * sizeof *p);
    if (!p) return CH_FAIL(CH_ERR_NOMEM, "bpe scratch for a piece of %lld bytes", (long long)len);
    s->sym = p;
    s->sym_cap = len;
  }
  if (s->heap_cap < 3 * len) {
    bpe_cand *h = realloc(s->heap, (size_t)(3 * len) * sizeof *h);
    if (!h) return CH_FAIL(CH_ERR_NOMEM, "bpe scratch for a piece of %lld bytes", (long long)len);
    s->heap = h;
    s->heap_cap = 3 * len;
  }
  if (s->round_cap < 3 * len) {
    bpe_cand *r = realloc(s->round, (size_t)(3 * len) * sizeof *r);
    if (!r) return CH_FAIL(CH_ERR_NOMEM, "bpe scratch for a piece of %lld bytes", (long long)len);
    s->round = r;
    s->round_cap = 3 * len;
  }
  return CH_OK;
}

void bpe_scratch_free(bpe_scratch *s) {
  free(s->sym);
  free(s->heap);
  free(s->round);
  memset(s, 0, sizeof *s);
}

/* OpenAI's loop finds the lowest-ranked pair present, rewrites the word merging each of its
 * occurrences left to right, and starts over. The heap gives the lowest rank in O(log n); all
 * its candidates (one pair, since a rank names one pair) are taken out first and applied in
 * position order, skipping ones an earlier merge of the round destroyed. New candidates wait
 * for a later round even when they rank lower: OpenAI's rewrite would not see them either. */
ch_status bpe_merge_piece(const bpe_merges *m, const int32_t byte_id[256], const uint8_t *piece,
                          size_t len, bpe_scratch *s, int32_t *out, int64_t *nout) {
  *nout = 0;
  if (len == 0) return CH_OK;
  if (len >= INT32_MAX / 4) return CH_FAIL(CH_ERR_INVALID, "a piece of %zu bytes is too long for BPE", len);
  int32_t n = (int32_t)len;
  CH_CHECK(scratch_reserve(s, n));
  bpe_sym *sym = s->sym;
  for (int32_t i = 0; i < n; i++)
    sym[i] = (bpe_sym){byte_id[piece[i]], i - 1, i + 1 < n ? i + 1 : -1};
  int64_t nh = 0;
  for (int32_t i = 0; i + 1 < n; i++) push_pair(m, sym, i, s->heap, &nh);
  while (nh > 0) {
    int64_t nr = 0;
    int32_t rank = s->heap[0].rank;
    while (nh > 0 && s->heap[0].rank == rank) s->round[nr++] = heap_pop(s->heap, &nh);
    for (int64_t k = 0; k < nr; k++) {
      const bpe_cand *c = &s->round[k];
      int32_t l = c->pos, r = sym[l].next;
      if (sym[l].id != c->left || r < 0 || sym[r].id != c->right) continue; /* stale */
      sym[l].id = c->merged;
      sym[l].next = sym[r].next;
      if (sym[r].next >= 0) sym[sym[r].next].prev = l;
      sym[r].id = -1;
      if (sym[l].prev >= 0) push_pair(m, sym, sym[l].prev, s->heap, &nh);
      push_pair(m, sym, l, s->heap, &nh);
    }
  }
  for (int32_t i = 0; i >= 0; i = sym[i].next) out[(*nout)++] = sym[i].id;
  return CH_OK;
}
