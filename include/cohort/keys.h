/* The generic key engine: a table of typed rows {name, type, offset in a struct, default, range,
 * help, enum choices} drives defaults, YAML files (with file:line), `key.sub=value` overrides,
 * range checks, did-you-mean suggestions, cross-key rules and the YAML dump of any struct.
 * It knows no key: a layer that has settings owns its table (src/train/config.c holds the
 * training config's). */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "cohort/status.h"

typedef enum ch_key_type {
  CH_KEY_INT, CH_KEY_FLOAT, CH_KEY_BOOL, CH_KEY_ENUM, CH_KEY_STRING
} ch_key_type;
enum { CH_KEY_LO_OPEN = 1, CH_KEY_HI_OPEN = 2 }; /* float range ends that exclude their bound */

typedef struct ch_key_row {
  const char *name;    /* dotted key */
  ch_key_type type;
  size_t offset, size; /* field in the struct; ints are int or int64_t, strings char[size] */
  const char *dflt;    /* default, written as in a YAML file */
  const char *choices; /* enum: "a|b|c"; the stored value is the index */
  int64_t imin, imax;  /* int: inclusive range; must fit the field (a table that does not is an
                        * internal error, reported by every check of the row) */
  double fmin, fmax;   /* float: range, ends excluded per `open` */
  int open;
  const char *help;
  const char *aliases; /* enum: "alias=choice|..." accepted on input, stored as the choice */
} ch_key_row;

/* Cross-key rule: value(lo) <= value(hi). */
typedef struct ch_key_rule {
  const char *lo, *hi;
} ch_key_rule;

/* A key that has an effect only while the enum key `on` has the choice `value` (a model
 * family's keys: model.hidden only with model.type mlp). */
typedef struct ch_key_scope {
  const char *key, *on, *value;
} ch_key_scope;

/* Keys of one section must be contiguous in `rows`: the YAML dump opens each section once. */
typedef struct ch_key_table {
  const ch_key_row *rows;
  int nrows;
  const ch_key_rule *rules;
  int nrules;
  size_t struct_size;  /* sizeof the struct the offsets point into */
  const char *title;   /* first line of the YAML dump, after "# " */
  const ch_key_scope *scopes;
  int nscopes;
} ch_key_table;

/* Receives each warning of a successful load, one message at a time (no trailing newline). */
typedef void (*ch_key_warn_fn)(void *ctx, const char *message);

/* The row named `name`, or NULL. */
CH_API const ch_key_row *ch_keys_find(const ch_key_table *t, const char *name);

/* Writes every row's default into `base` (other bytes untouched). */
CH_API void ch_keys_defaults(const ch_key_table *t, void *base);

/* Applies one "key.sub=value" assignment (value parsed as a YAML scalar). `origin` prefixes
 * messages; NULL means "override '<assignment>'". Checks the row's range, not the rules.
 * *row (may be NULL) gets the row set. `base` is unchanged on error (CH_ERR_CONFIG). */
CH_API ch_status ch_keys_set(const ch_key_table *t, void *base, const char *assignment, const char *origin,
                   const ch_key_row **row);

/* Sets `key` from the plain text `value` (not YAML: taken as written, e.g. a command-line flag's
 * argument) with the row's parsing, range and messages, prefixed by `origin`. */
CH_API ch_status ch_keys_set_text(const ch_key_table *t, void *base, const char *key, const char *value,
                        const char *origin);

/* Checks every field of `base` against its row and the rules; messages start with "config". */
CH_API ch_status ch_keys_validate(const ch_key_table *t, const void *base);

/* Loads YAML `text` (`name` stands for the file in messages; NULL text: none) over what `base`
 * holds, then `noverrides` assignments in order, then checks the rules (naming the later of the
 * two settings). `base` is written only on success. Then `warn` (may be NULL) gets a warning
 * for a text that sets no key, and for each key set (in the text or an override) to other than
 * its default while a scope of the table makes it ineffective, naming the key, where it was
 * set and the scope. Errors: CH_ERR_CONFIG, CH_ERR_NOMEM. */
CH_API ch_status ch_keys_load_text(const ch_key_table *t, void *base, const char *text, size_t len,
                         const char *name, const char *const *overrides, int noverrides,
                         ch_key_warn_fn warn, void *ctx);

/* As ch_keys_load_text with the file at `path` (NULL: no file). Errors: also CH_ERR_IO. */
CH_API ch_status ch_keys_load_file(const ch_key_table *t, void *base, const char *path,
                         const char *const *overrides, int noverrides, ch_key_warn_fn warn,
                         void *ctx);

/* `base` as YAML text (every key, nested, with its help), malloc'ed; NULL on allocation failure. */
CH_API char *ch_keys_to_yaml(const ch_key_table *t, const void *base);
