/* Flattens a YAML document made of nested mappings of scalars into a list of (dotted key,
 * value, line) entries, with libyaml's event parser. Knows nothing about which keys exist:
 * the key engine (src/runtime/keys.c) checks them against a table. Internal to the library. */
#pragma once
#include <stddef.h>
#include <stdio.h>
#include "cohort/status.h"

typedef struct yaml_entry {
  char *key;   /* dotted path, e.g. "optim.lr" */
  char *value; /* scalar text; NULL when the key's value is a mapping (a section) */
  int line;    /* 1-based line of the key */
  int quoted;  /* the scalar was written quoted or as a block ('...', "...", |, >) */
} yaml_entry;

typedef struct yaml_flat {
  yaml_entry *entries; /* in document order */
  size_t n, cap;
} yaml_flat;

/* Parses `len` bytes of YAML `text` into `out` (which must be zeroed; free it with
 * yaml_flat_free even on error). `name` (e.g. the file path) prefixes every message as
 * "name:line: ...". An empty document or one holding only a null is valid and gives no entries.
 * Errors: CH_ERR_CONFIG for a syntax error, a sequence, an alias, a non-scalar key, a duplicate
 * key, more than one document or a top level that is not a mapping; CH_ERR_NOMEM. */
ch_status yaml_flatten(const char *text, size_t len, const char *name, yaml_flat *out);

/* Frees the entries of `f` and zeroes it. Accepts a zeroed or partly filled `f`. */
void yaml_flat_free(yaml_flat *f);

/* Parses `text` as one YAML scalar (quotes removed, escapes resolved, comments dropped) into a
 * malloc'ed `*value` (caller frees) and sets `*quoted` as in yaml_entry. Empty text gives "".
 * `name` prefixes messages. Errors: CH_ERR_CONFIG for a syntax error or a value that is not a
 * single scalar (a sequence, a mapping); CH_ERR_NOMEM. */
ch_status yaml_scalar(const char *text, const char *name, char **value, int *quoted);

/* Whether a scalar is YAML's null: plain and empty, "~" or "null" (any case). */
int yaml_is_null(const char *value, int quoted);

/* Formats `x` (finite) into `buf` (>= 32 bytes) with the fewest of 15..17 significant digits
 * that read back bit-identical, always with a '.' so YAML 1.1 readers (PyYAML) also see a
 * float: 0.001, 25.0, 1.0e-08. */
void yaml_format_double(double x, char *buf, size_t n);

/* Writes `s` to `out` as a YAML scalar that reads back as the same string: plain when that is
 * unambiguous (runs/default), else double-quoted with escapes. */
void yaml_write_string(FILE *out, const char *s);
