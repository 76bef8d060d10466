/* A GPT-2 vocabulary the tokenizer tests write themselves, and random texts for it (test code,
 * used by test_tokenizer.c and test_text.c). The vocabulary: the 256 byte symbols; hand-written
 * merges, a few deliberately ranked before the merges that make their parts ("th e" before
 * "t h", "ab a" before "a b": OpenAI's loop merges every "a b" of "abab" first, giving ab|ab);
 * random merges of adjacent pieces of the text fragments; a few random rank swaps; ids in
 * random order with one hole; and the special token "<|endoftext|>". */
#pragma once
#include <stddef.h>
#include <stdint.h>

#define TV_MAX_SYMS 512
#define TV_SYM_MAX 48

typedef struct tv_sym {
  uint8_t b[TV_SYM_MAX];
  int n;
} tv_sym;

typedef struct tv_vocab {
  tv_sym s[TV_MAX_SYMS];
  int nsym;
  int merge[TV_MAX_SYMS][2]; /* symbol indices, in rank order */
  int nmerge;
  int32_t id[TV_MAX_SYMS + 1]; /* per symbol; [nsym] is the special token */
  int32_t hole, nids;
  char *enc, *mer;
  size_t enc_len, mer_len;
} tv_vocab;

extern const char *const tv_special;

/* Builds the vocabulary from `seed`, with its encoder.json and vocab.bpe texts (enc, mer). */
void tv_make(tv_vocab *v, uint64_t seed);
/* Frees the texts. */
void tv_free(tv_vocab *v);
/* Index of the symbol with bytes b[0..n), or -1. */
int tv_find_sym(const tv_vocab *v, const uint8_t *b, int n);
/* A random text of fragments (words, contractions, digits, punctuation, whitespace runs,
 * multi-byte UTF-8, invalid bytes), random code points and random bytes; caller frees. */
char *tv_random_text(uint64_t seed, uint64_t stream, size_t *len);
/* Writes len bytes to path, gzipped when gz. */
void tv_write_file(const char *path, const char *s, size_t len, int gz);
