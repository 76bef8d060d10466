/* The table builder shared by the row converters (`cohort data csv|jsonl`); not installed.
 * A parser hands it rows of text fields; the builder is the one place that decides the header,
 * the label column, missing values and --fill, string or integer labels, and checks every value,
 * so the same table gives the same dataset from any format (table.c). table_write.c splits and
 * writes it. docs/data-format.md describes the rules. */
#pragma once
#include <stdint.h>
#include "cohort/data.h"

/* One field of a row: `s` (NUL-terminated, borrowed for the call), or absent (`null`: JSON null
 * or a missing key), which counts as a missing value. */
typedef struct tab_field {
  const char *s;
  int null;
} tab_field;

/* A row kept (copied) while the header is undecided. */
typedef struct tab_row {
  char **f;
  int n;
  int64_t line;
} tab_row;

typedef struct table {
  const char *path;
  ch_csv_opts o;
  /* columns */
  int ncols;            /* 0 until fixed (header decided and the column count known) */
  int label_col;
  int has_header;
  char **names;         /* ncols header names when has_header */
  int64_t header_line;
  struct tab_row *pend; /* AUTO: row 1 and the rows after it, kept until they decide */
  int npend, cap_pend;
  /* rows */
  float *x;             /* rows x (ncols - 1) */
  int32_t *y;           /* while reading: label slot; after table_finish: class id */
  int64_t rows, cap, filled;
  /* distinct labels in first-seen order (slots) */
  char **labels;
  int64_t *label_line;  /* where each was first seen */
  int nlabels, labels_cap;
  int32_t *hash;        /* open addressing over the slots, -1 empty */
  int hash_cap;
  /* results of table_finish */
  int num_classes;
  char **class_names;   /* num_classes names (string labels) or NULL */
  char header_note[384], warning[512];
} table;

/* An empty table for `path` (messages) with options `o` (copied; o->label_name borrowed). */
void table_init(table *t, const char *path, const ch_csv_opts *o);
/* Column names known from the format (JSON objects' keys): the header, decided. Copies them.
 * Errors: CH_ERR_INVALID (an explicit --header, the label name not among them), CH_ERR_FORMAT. */
ch_status table_set_names(table *t, const char *const *names, int n, int64_t line, const char *how);
/* One row of n fields that starts on `line`. Errors: CH_ERR_FORMAT naming path:line:column,
 * CH_ERR_INVALID (the label column does not fit), CH_ERR_NOMEM. */
ch_status table_add_row(table *t, const tab_field *f, int n, int64_t line);
/* After the last row: settles a pending header decision, turns labels into class ids (integers
 * as they are; strings by byte order, with class_names) and notes a label column that looks
 * continuous. Errors: CH_ERR_FORMAT (no data rows, a bad label), CH_ERR_NOMEM. */
ch_status table_finish(table *t);
void table_free(table *t);

/* Whether a field is a missing value: absent, blank, or NA, N/A, NaN, ? (any case, blanks
 * around). */
int table_is_missing(const tab_field *f);

/* Splits t (finished) into train and val and writes out_path atomically; fills stats (may be
 * NULL). Errors: CH_ERR_IO, CH_ERR_NOMEM. */
ch_status table_write(const table *t, const char *in_path, const char *out_path, ch_csv_stats *stats);

/* A converter's front: checks the options, runs parse(path, t) then table_finish and
 * table_write; fills stats (the notes also on failure). */
ch_status table_convert(const char *in_path, const char *out_path, const ch_csv_opts *opts,
                        ch_csv_stats *stats, ch_status (*parse)(const char *path, table *t));
