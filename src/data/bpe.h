/* GPT-2 byte-pair encoding internals shared by src/data/tokenizer.c and the tokenizer tests
 * (not installed). The algorithm is OpenAI's GPT-2 encoder: text bytes -> pre-tokenised pieces
 * (the GPT-2 regex, by hand over UTF-8 code points) -> per piece, greedy lowest-rank merges of
 * adjacent symbols. Here symbols are token ids rather than strings: the encoder maps token
 * strings to ids one to one, so merging ids is merging strings. */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "cohort/status.h"
#include "cohort/tokenizer.h"

/* ---- bytes <-> GPT-2's printable code points (bytes_to_unicode) ---- */

/* Code point that stands for byte b in encoder.json and vocab.bpe: printable Latin-1 bytes
 * stand for themselves, the other 68 bytes for U+0100.. in byte order. */
uint32_t bpe_byte_cp(uint8_t b);
/* The byte a code point stands for, or -1 if it stands for none. */
int bpe_cp_byte(uint32_t cp);

/* ---- UTF-8 and character classes ---- */

/* Decodes the code point at s[i] (i < n) strictly (no overlongs, surrogates or values above
 * U+10FFFF) into *cp and returns its length; an invalid byte gives CH_BPE_INVALID_CP, length 1. */
#define CH_BPE_INVALID_CP 0xFFFFFFFFu
size_t bpe_utf8_next(const uint8_t *s, size_t n, size_t i, uint32_t *cp);

/* Classes of the pre-tokeniser: \s (Unicode White_Space), \p{L}, \p{N}, and everything else
 * (punctuation, symbols, marks, controls, unassigned, invalid bytes). */
typedef enum bpe_class {
  CH_BPE_SPACE = 'S',
  CH_BPE_LETTER = 'L',
  CH_BPE_NUMBER = 'N',
  CH_BPE_OTHER = 'O'
} bpe_class;
bpe_class bpe_classify(uint32_t cp);

/* End of the pre-tokenised piece that starts at s[i] (i < n): the leftmost-alternative match of
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+   at i. */
size_t bpe_next_piece(const uint8_t *s, size_t n, size_t i);

/* ---- hash maps ---- */

/* Byte string -> int64 (open addressing; keys copied into an arena). */
typedef struct bpe_strmap {
  char *arena;
  size_t arena_len, arena_cap;
  struct bpe_strent *ent;
  int64_t nent, ent_cap;
  int64_t *slot; /* index into ent, -1 empty */
  int64_t nslot; /* power of two */
} bpe_strmap;

/* Inserts key -> value; when the key is present, keeps the old value and sets *existed (may be
 * NULL). Errors: CH_ERR_NOMEM. Free with bpe_strmap_free (zero-initialise before first use). */
ch_status bpe_strmap_put(bpe_strmap *m, const void *key, size_t len, int64_t value, int *existed);
/* 1 and *value when key is present, else 0. */
int bpe_strmap_get(const bpe_strmap *m, const void *key, size_t len, int64_t *value);
void bpe_strmap_free(bpe_strmap *m);

/* Merge table: pair of token ids (a, b) -> its rank and the id of the merged token. */
typedef struct bpe_merges {
  uint64_t *key;   /* (a << 32 | b), UINT64_MAX empty */
  int32_t *rank, *merged;
  int64_t n, cap;  /* cap: power of two */
} bpe_merges;

/* Sets the pair's rank and result (a later line for the same pair wins, as in OpenAI's
 * dict(zip(merges, range(n)))). Errors: CH_ERR_NOMEM. */
ch_status bpe_merges_put(bpe_merges *m, int32_t a, int32_t b, int32_t rank, int32_t merged);
/* 1 with *rank and *merged when (a, b) is a merge, else 0. */
int bpe_merges_get(const bpe_merges *m, int32_t a, int32_t b, int32_t *rank, int32_t *merged);
void bpe_merges_free(bpe_merges *m);

/* ---- merging one piece ---- */

/* Scratch space of bpe_merge_piece, grown on demand (zero-initialise; free with
 * bpe_scratch_free). */
typedef struct bpe_scratch {
  struct bpe_sym *sym;
  struct bpe_cand *heap, *round;
  int64_t sym_cap, heap_cap, round_cap;
} bpe_scratch;
void bpe_scratch_free(bpe_scratch *s);

/* BPE of one piece of `len` >= 1 bytes: starts from the ids byte_id[byte] and repeatedly merges
 * every occurrence (left to right, non-overlapping) of the adjacent pair of lowest rank, until
 * no adjacent pair is a merge. Writes the ids to out (room for len ids) and their number to
 * *nout. O(len log len) with a heap. Errors: CH_ERR_NOMEM, CH_ERR_INVALID (len >= 2^31). */
ch_status bpe_merge_piece(const bpe_merges *m, const int32_t byte_id[256], const uint8_t *piece,
                          size_t len, bpe_scratch *s, int32_t *out, int64_t *nout);

/* The texts a GPT-2 tokenizer was made from (NULL and 0 for the byte tokenizer), to store
 * them with a dataset. Valid while the tokenizer lives. */
void tokenizer_texts(const ch_tokenizer *t, const char **encoder_json, size_t *encoder_len,
                     const char **merges, size_t *merges_len);
