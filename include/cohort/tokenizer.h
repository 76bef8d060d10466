/* Tokenizers of the text data path: byte-level (token = byte value) and GPT-2 byte-pair
 * encoding (OpenAI's algorithm; see src/data/bpe.c for the pre-tokeniser's character classes).
 * A tokenizer is immutable after creation: encode and decode may run on several threads at
 * once. Token ids are int32. */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "cohort/status.h"

typedef struct ch_tokenizer ch_tokenizer;

/* Byte-level tokenizer: token = byte value, vocab 256. Errors: CH_ERR_NOMEM. */
CH_API ch_status ch_tokenizer_create_byte(ch_tokenizer **out);

/* GPT-2 byte-pair encoding from the texts (not NUL-terminated; copied) of encoder.json (a JSON
 * object: token string in GPT-2's byte alphabet -> id >= 0) and vocab.bpe (an optional first line
 * "#version...", then one merge "a b" per line, rank = order; blank lines are skipped). Every
 * byte's symbol, both parts of each merge and its result must be tokens of the encoder. Errors:
 * CH_ERR_FORMAT naming "encoder.json" (and the token) or "vocab.bpe line N"; CH_ERR_NOMEM. */
CH_API ch_status ch_tokenizer_create_gpt2(const char *encoder_json, size_t encoder_len, const char *merges,
                                   size_t merges_len, ch_tokenizer **out);

/* Reads the tokenizer stored in a token dataset file made by `cohort data text` (serial HDF5,
 * read-only; the file may be open elsewhere read-only, e.g. by ch_tokens_open). Errors:
 * CH_ERR_IO (cannot open/read), CH_ERR_FORMAT (not such a file, unknown tokenizer, vocab_size
 * that disagrees with the stored tokenizer). */
CH_API ch_status ch_tokenizer_load(const char *h5path, ch_tokenizer **out);

/* Frees the tokenizer. NULL is a no-op. */
CH_API void ch_tokenizer_destroy(ch_tokenizer *t);

/* "byte" or "gpt2" (static string). */
CH_API const char *ch_tokenizer_name(const ch_tokenizer *t);

/* Vocabulary size: 256, or the encoder's max id + 1 (ids without a token are holes). */
CH_API int64_t ch_tokenizer_vocab(const ch_tokenizer *t);

/* Encodes len bytes of text (any bytes; invalid UTF-8 is encoded byte by byte); *tokens
 * malloc'ed (caller frees; NULL when *n is 0), *n tokens. Errors: CH_ERR_NOMEM. */
CH_API ch_status ch_tokenizer_encode(const ch_tokenizer *t, const char *text, size_t len, int32_t **tokens,
                              int64_t *n);

/* Decodes n tokens to bytes (malloc'ed, NUL-terminated, *len excludes the NUL; caller frees).
 * An id outside the vocab (or a hole of it): CH_ERR_INVALID naming the id and its position;
 * CH_ERR_NOMEM. Decoding the encoding of a text gives the text back. */
CH_API ch_status ch_tokenizer_decode(const ch_tokenizer *t, const int32_t *tokens, int64_t n, char **text,
                              size_t *len);
