/* Datasets in HDF5 and the distributed sampler.
 * File layout (made by `cohort data csv|jsonl`): /train/x float32 [N,D], /train/y int32 [N], the
 * same under /val; root attributes num_features (D), num_classes (C), source; with string labels
 * /class_names, C variable-length UTF-8 strings (the name of each class id). */
#pragma once
#include <stdint.h>
#include "cohort/comm.h"
#include "cohort/status.h"

/* Where the training data is (the data.* keys of the training config). */
typedef struct ch_data_cfg {
  char path[CH_PATH_MAX]; /* HDF5 file made by `cohort data` */
} ch_data_cfg;

/* Whether the first row of a table names the columns (--header). AUTO decides from rows 1 and 2
 * (docs/data-format.md, "Header"). */
typedef enum ch_header_mode { CH_HEADER_AUTO = 0, CH_HEADER_YES, CH_HEADER_NO } ch_header_mode;

/* Options of the table converters (`cohort data csv|jsonl`). Zero-initialised fields are the
 * defaults except label_column (-1: the last) and val_fraction (0.2 in the CLI). */
typedef struct ch_csv_opts {
  int label_column;       /* 0-based; negative counts from the end (-1 = the last column) */
  const char *label_name; /* non-NULL: the label column by its header name (label_column unused) */
  ch_header_mode header;
  int fill;               /* 1: missing feature values become fill_value (else an error) */
  double fill_value;
  double val_fraction;    /* in [0, 1) */
  uint64_t seed;          /* for the train/val split */
} ch_csv_opts;

typedef struct ch_csv_stats {
  int64_t rows, train_rows, val_rows, features;
  int num_classes;
  int64_t filled;         /* missing feature values replaced by --fill */
  int header;             /* 1: the first row named the columns */
  int label_column;       /* the label column, 0-based */
  char label_name[128];   /* its header name, "" without a header */
  int named_classes;      /* 1: string labels, their names stored in /class_names */
  char header_note[384];  /* what was decided about the header, and why */
  char warning[512];      /* "" or a warning (a label column that looks continuous) */
} ch_csv_stats;

/* Converts a CSV (RFC 4180: quoted fields with "" escapes, commas and line ends inside quotes;
 * LF, CRLF or CR line ends; a UTF-8 byte order mark dropped; plain, or gzip detected by content)
 * into the HDF5 layout above, written atomically. Labels are integers >= 0, or strings mapped
 * to ids in byte order of their names (stored as /class_names). Missing values (empty, NA, N/A,
 * NaN, ?) are errors unless opts->fill; a missing label always is. Nothing is dropped silently:
 * every data row is written to train or val. Errors name path:line:column: CH_ERR_FORMAT for
 * the content, CH_ERR_INVALID for options that do not fit (label column out of range or not a
 * header name, val_fraction outside [0, 1)), CH_ERR_IO, CH_ERR_NOMEM. `opts` NULL means
 * {.label_column = -1, .val_fraction = 0.2}; `stats` may be NULL. Serial; the table is held in
 * memory. The split is stratified: a class of n_c >= 2 rows puts round(val_fraction * n_c) of
 * them, at least 1 and at most n_c - 1 (none when val_fraction is 0), chosen by `seed`, into
 * val; a class of one row stays in train. Rows keep their file order within each split. */
CH_API ch_status ch_data_csv_convert(const char *in_path, const char *out_path, const ch_csv_opts *opts,
                              ch_csv_stats *stats);

/* As ch_data_csv_convert for JSON Lines: one JSON object per line (its keys name the columns,
 * in the first object's order; a missing key or null is a missing value; a key the first object
 * lacks is an error) or one array per line (positional, header as for CSV). Values are numbers,
 * or strings (labels; a string holding a number reads as that number). The same table as the
 * equivalent CSV gives the same file. Errors: as ch_data_csv_convert. */
CH_API ch_status ch_data_jsonl_convert(const char *in_path, const char *out_path, const ch_csv_opts *opts,
                                ch_csv_stats *stats);

typedef struct ch_dataset ch_dataset;

/* Opens split `split` ("train" or "val") of `path` with parallel HDF5 over `g` (collective).
 * Nothing is read yet. Errors: CH_ERR_IO, CH_ERR_FORMAT. Close with ch_dataset_close. */
CH_API ch_status ch_dataset_open(const ch_group *g, const char *path, const char *split, ch_dataset **out);
/* Closes the file (collective over the group) and frees `ds`. NULL is a no-op. */
CH_API void ch_dataset_close(ch_dataset *ds);

/* Rows of the split, features per row (num_features), classes (num_classes). */
CH_API int64_t ch_dataset_rows(const ch_dataset *ds);
CH_API int64_t ch_dataset_features(const ch_dataset *ds);
CH_API int ch_dataset_classes(const ch_dataset *ds);
/* The name of each class id (num_classes strings, borrowed until close) when the file has
 * /class_names (string labels), else NULL. */
CH_API const char *const *ch_dataset_class_names(const ch_dataset *ds);

/* Reads rows `rows[0..n)` (any order, repeats allowed) into x [n,D] and y [n], in that order.
 * Collective over the group: every rank calls it, with its own rows (n may be 0; then rows, x
 * and y may be NULL). Only the selected rows are read (hyperslab selection), never the whole
 * dataset. A row outside [0, rows) on any rank fails the call on every rank (CH_ERR_INVALID),
 * so no rank is left waiting; CH_ERR_FORMAT for a label outside [0, classes); CH_ERR_IO. */
CH_API ch_status ch_dataset_read(ch_dataset *ds, const int64_t *rows, int64_t n, float *x, int32_t *y);

/* Distributed sampler over a stream of epochs. Global position p (0, 1, 2, ...) maps to sample
 * perm_e[p % N] with e = p / N and perm_e a seeded permutation of [0, N) for epoch e. A global
 * batch of B positions starting at p is split over n ranks with ch_part_offset/count, so the
 * ranks' parts are disjoint and every sample is seen exactly once per epoch. Remainder policy:
 * nothing is dropped; a batch that crosses an epoch end continues with the next epoch's
 * permutation. All state is the global position, so it resumes on any number of ranks. */
typedef struct ch_sampler {
  int64_t n;
  uint64_t seed;
  int64_t epoch;   /* epoch whose permutation is cached in perm, -1 if none */
  int64_t *perm;
} ch_sampler;

/* A sampler over n >= 1 samples. Errors: CH_ERR_INVALID (n < 1), CH_ERR_NOMEM. The permutation
 * of epoch e is Fisher-Yates from the top, swapping i with ch_rng_below(seed, e, i, i + 1). */
CH_API ch_status ch_sampler_create(int64_t n, uint64_t seed, ch_sampler *out);
CH_API void ch_sampler_destroy(ch_sampler *s);

/* Sample index at global position `pos` (-1 if pos < 0). Recomputes the cached permutation
 * (O(n)) when pos is in another epoch than the last call. */
CH_API int64_t ch_sampler_at(ch_sampler *s, int64_t pos);

/* This rank's rows of the global batch [pos, pos + batch): writes
 * ch_part_count(batch, nranks, rank) indices to `rows` and returns that count (-1 for a bad
 * argument: pos < 0, batch < 0, rank outside [0, nranks)). */
CH_API int64_t ch_sampler_batch(ch_sampler *s, int64_t pos, int64_t batch, int nranks, int rank,
                         int64_t *rows);

/* ---- Text data for language models (`cohort data text`) ----
 * File layout: /train/tokens and /val/tokens int32 1-D; root attributes vocab_size (int64),
 * tokenizer ("byte" | "gpt2"), source (the input names), unigram_entropy (float64, nats per
 * token of the train split); for gpt2 the tokenizer's texts as
 * uint8 datasets /tokenizer/encoder_json and /tokenizer/bpe_merges (docs/data-format.md). */
#include "cohort/tokenizer.h"

typedef struct ch_text_opts {
  double val_fraction;      /* in (0, 1): val = the last round(F * tokens) tokens */
  const ch_tokenizer *tok;  /* NULL: byte tokenizer */
} ch_text_opts;

typedef struct ch_text_stats {
  int64_t bytes, tokens, train_tokens, val_tokens, vocab;
  double unigram_entropy_bits; /* of the train tokens, bits per token */
} ch_text_stats;

/* Concatenates the nin >= 1 files (plain or gzip) in order, with a '\n' added after a non-empty
 * file that does not end with one when another file follows; tokenizes the text with opts->tok;
 * puts the last round(val_fraction * tokens) tokens in val and the rest in train (each must get
 * at least 2), and writes the layout above atomically (out_path.partial, fsync, rename).
 * `opts` NULL means {0.1, byte}; `stats` may be NULL. Serial; the text is held in memory.
 * Errors: CH_ERR_IO (cannot read or write a file, naming it), CH_ERR_INVALID (val_fraction
 * outside (0, 1), or a split of fewer than 2 tokens), CH_ERR_FORMAT (a text of fewer than 4
 * tokens), CH_ERR_NOMEM. */
CH_API ch_status ch_data_text_convert(const char *const *in_paths, int nin, const char *out_path,
                               const ch_text_opts *opts, ch_text_stats *stats);

typedef struct ch_tokens ch_tokens;

/* Opens split ("train"|"val") of a text dataset with parallel HDF5 over g (collective); windows
 * of context+1 tokens start every `context` tokens: window i = tokens [i*context,
 * i*context+context+1). Errors: CH_ERR_FORMAT (no /split/tokens, not integers or not 1-D, no
 * vocab_size, fewer than context+1 tokens -> the message says how many tokens and what
 * context), CH_ERR_IO, CH_ERR_INVALID (context < 1, bad split name). Close with ch_tokens_close. */
CH_API ch_status ch_tokens_open(const ch_group *g, const char *path, const char *split, int context, ch_tokens **out);
/* Closes the file and frees t (collective); NULL is a no-op. */
CH_API void ch_tokens_close(ch_tokens *t);
/* Tokens in the split. */
CH_API int64_t ch_tokens_count(const ch_tokens *t);
/* Windows: (count - 1) / context. */
CH_API int64_t ch_tokens_windows(const ch_tokens *t);
/* The file's vocab_size. */
CH_API int64_t ch_tokens_vocab(const ch_tokens *t);
/* Entropy of the train split's unigram distribution in nats per token (attribute
 * unigram_entropy): the loss of a model that ignores context. NaN when the file lacks it. */
CH_API double ch_tokens_unigram_entropy(const ch_tokens *t);

/* Reads windows[0..n) (any order, repeats allowed) into out [n, context+1]. Collective (every
 * rank calls, n may be 0, then windows and out may be NULL); independent transfer of only the
 * selected token ranges, as ch_dataset_read. A window outside [0, windows) on any rank fails on
 * every rank (CH_ERR_INVALID). A token outside [0, vocab): CH_ERR_FORMAT (this rank). CH_ERR_IO. */
CH_API ch_status ch_tokens_read(ch_tokens *t, const int64_t *windows, int64_t n, int32_t *out);

/* Writes a classifier's predictions of N rows (`cohort infer`): /logits float32 [N, C] and
 * /label int32 [N], with root attribute source; with class_names (C names, or NULL) also
 * /label_name [N] (the name of each row's label) and /class_names [C], fixed-length UTF-8
 * strings. This rank supplies rows [first, first + n). Collective (parallel HDF5, collective
 * transfers); written to out.partial, then renamed by rank 0, so `out` appears whole or not at
 * all. Every rank returns the same outcome. Errors: CH_ERR_IO naming the file, CH_ERR_MPI. */
CH_API ch_status ch_data_write_predictions(const ch_group *g, const char *out, int64_t N, int64_t C,
                                    int64_t first, int64_t n, const float *logits,
                                    const int32_t *labels, const char *const *class_names,
                                    const char *source);
