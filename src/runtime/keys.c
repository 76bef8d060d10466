/* The generic key engine (include/cohort/keys.h). A value goes text -> (parse) -> kval ->
 * (check) -> struct field; validation of a struct reads the field back into a kval and runs the
 * same check, so files, overrides, flags and structs built in code meet the same rules. */
#include "cohort/keys.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "runtime/yaml_flat.h"

typedef struct kval {
  int64_t i;     /* int, bool, enum index */
  double f;      /* float */
  const char *s; /* string (borrowed) */
} kval;

/* ---- lookup ---------------------------------------------------------------------------- */

const ch_key_row *ch_keys_find(const ch_key_table *t, const char *name) {
  for (int i = 0; i < t->nrows; i++)
    if (!strcmp(t->rows[i].name, name)) return &t->rows[i];
  return NULL;
}

static int is_section(const ch_key_table *t, const char *name) {
  size_t n = strlen(name);
  for (int i = 0; i < t->nrows; i++)
    if (!strncmp(t->rows[i].name, name, n) && t->rows[i].name[n] == '.') return 1;
  return 0;
}

/* Edit distance, for "did you mean" (keys are short; longer ones are never close). */
static int edit_distance(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > 63 || lb > 63) return 99;
  int prev[64], cur[64];
  for (size_t j = 0; j <= lb; j++) prev[j] = (int)j;
  for (size_t i = 1; i <= la; i++) {
    cur[0] = (int)i;
    for (size_t j = 1; j <= lb; j++) {
      int sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
      int del = prev[j] + 1, ins = cur[j - 1] + 1;
      cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
    }
    memcpy(prev, cur, (lb + 1) * sizeof(int));
  }
  return prev[lb];
}

static ch_status unknown_key(const ch_key_table *t, const char *name, const char *where) {
  const char *best = NULL;
  int best_d = 3; /* suggest only within 2 edits, or a bare leaf name ("lr") */
  for (int i = 0; i < t->nrows; i++) {
    const char *leaf = strrchr(t->rows[i].name, '.');
    int d = (leaf && !strcmp(leaf + 1, name)) ? 1 : edit_distance(name, t->rows[i].name);
    if (d < best_d) best_d = d, best = t->rows[i].name;
  }
  if (best)
    return CH_FAIL(CH_ERR_CONFIG, "%s: unknown key '%s' (did you mean '%s'?)", where, name, best);
  return CH_FAIL(CH_ERR_CONFIG, "%s: unknown key '%s'", where, name);
}

/* Resolves `name` to its row. A section is fine (*row = NULL) only when `section_ok`. */
static ch_status find_row(const ch_key_table *t, const char *name, int section_ok, const char *where,
                          const ch_key_row **row) {
  *row = ch_keys_find(t, name);
  if (*row) return CH_OK;
  if (!is_section(t, name)) return unknown_key(t, name, where);
  if (section_ok) return CH_OK;
  return CH_FAIL(CH_ERR_CONFIG, "%s: %s is a section, not a value", where, name);
}

/* ---- text -> kval ---------------------------------------------------------------------- */

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static ch_status parse_int(const ch_key_row *k, const char *v, const char *where, kval *out) {
  const char *p = v + (*v == '+' || *v == '-');
  int ok = is_digit(*p);
  for (; ok && *p; p++) ok = is_digit(*p);
  if (!ok) return CH_FAIL(CH_ERR_CONFIG, "%s: %s: expected an integer, got '%.80s'", where, k->name, v);
  errno = 0;
  long long x = strtoll(v, NULL, 10);
  /* Beyond int64 (or the int field): never stored, so it can never be cut to a smaller value. */
  if (errno == ERANGE || (k->size == sizeof(int) && (x < INT_MIN || x > INT_MAX)))
    return CH_FAIL(CH_ERR_CONFIG, "%s: %s: %.80s is out of range (allowed: [%" PRId64 ", %"
                   PRId64 "])", where, k->name, v, k->imin, k->imax);
  out->i = x;
  return CH_OK;
}

static ch_status parse_float(const ch_key_row *k, const char *v, const char *where, kval *out) {
  char *end = NULL;
  double x = isspace((unsigned char)*v) ? 0.0 : strtod(v, &end); /* strtod skips spaces */
  if (!end || end == v || *end)
    return CH_FAIL(CH_ERR_CONFIG, "%s: %s: expected a number, got '%.80s'", where, k->name, v);
  if (!isfinite(x))
    return CH_FAIL(CH_ERR_CONFIG, "%s: %s: expected a finite number, got '%.80s'", where,
                   k->name, v);
  out->f = x;
  return CH_OK;
}

static ch_status parse_bool(const ch_key_row *k, const char *v, const char *where, kval *out) {
  static const char *const yes[] = {"true", "yes", "on", "1"}, *const no[] = {"false", "no", "off", "0"};
  for (int i = 0; i < 4; i++) {
    if (!strcasecmp(v, yes[i])) return out->i = 1, CH_OK;
    if (!strcasecmp(v, no[i])) return out->i = 0, CH_OK;
  }
  return CH_FAIL(CH_ERR_CONFIG, "%s: %s: expected true or false (yes/no, on/off, 1/0), got '%.80s'",
                 where, k->name, v);
}

static ch_status parse_enum(const ch_key_row *k, const char *v, const char *where, kval *out) {
  size_t n = strlen(v);
  for (const char *a = k->aliases; a && *a;) { /* "alias=choice|..." */
    size_t len = strcspn(a, "="), end = strcspn(a, "|");
    if (len == n && !strncmp(a, v, n)) {
      char target[32];
      snprintf(target, sizeof target, "%.*s", (int)(end - len - 1), a + len + 1);
      return parse_enum(&(ch_key_row){.name = k->name, .choices = k->choices}, target, where, out);
    }
    a += end + (a[end] == '|');
  }
  int idx = 0;
  for (const char *c = k->choices;; idx++) {
    const char *bar = strchr(c, '|');
    size_t len = bar ? (size_t)(bar - c) : strlen(c);
    if (n == len && !strncmp(c, v, n)) return out->i = idx, CH_OK;
    if (!bar) break;
    c = bar + 1;
  }
  return CH_FAIL(CH_ERR_CONFIG, "%s: %s: '%.80s' is not one of %s", where, k->name, v, k->choices);
}

static ch_status parse_value(const ch_key_row *k, const char *v, int quoted, const char *where,
                             kval *out) {
  memset(out, 0, sizeof *out);
  if (yaml_is_null(v, quoted))
    return CH_FAIL(CH_ERR_CONFIG, "%s: %s: missing value", where, k->name);
  switch (k->type) {
    case CH_KEY_INT: return parse_int(k, v, where, out);
    case CH_KEY_FLOAT: return parse_float(k, v, where, out);
    case CH_KEY_BOOL: return parse_bool(k, v, where, out);
    case CH_KEY_ENUM: return parse_enum(k, v, where, out);
    case CH_KEY_STRING: out->s = v; return CH_OK;
  }
  return CH_FAIL(CH_ERR_INTERNAL, "%s: bad key type", k->name);
}

/* ---- kval <-> struct, checks ----------------------------------------------------------- */

/* Writes the name of an enum's choice i into buf; 0 when i is out of range (buf unchanged). */
static int choice_name(const ch_key_row *k, int64_t i, char *buf, size_t n) {
  const char *c = k->choices;
  for (int64_t j = 0; j < i && c; j++) c = strchr(c, '|'), c = c ? c + 1 : NULL;
  if (!c || i < 0) return 0;
  snprintf(buf, n, "%.*s", (int)strcspn(c, "|"), c);
  return 1;
}

static int n_choices(const char *choices) {
  int n = 1;
  for (; *choices; choices++) n += *choices == '|';
  return n;
}

static ch_status check_value(const ch_key_row *k, const kval *v, const char *where) {
  switch (k->type) {
    case CH_KEY_INT: {
      /* A range the field cannot hold is a bug in the table, never a silent clamp. */
      if (k->imin > k->imax ||
          (k->size == sizeof(int) && (k->imin < INT_MIN || k->imax > INT_MAX)))
        return CH_FAIL(CH_ERR_INTERNAL, "key table: %s: range [%" PRId64 ", %" PRId64 "] does "
                       "not fit its %zu-byte field", k->name, k->imin, k->imax, k->size);
      if (v->i < k->imin || v->i > k->imax)
        return CH_FAIL(CH_ERR_CONFIG, "%s: %s: must be %s %" PRId64 ", got %" PRId64
                       " (allowed: [%" PRId64 ", %" PRId64 "])", where, k->name,
                       v->i < k->imin ? ">=" : "<=", v->i < k->imin ? k->imin : k->imax, v->i,
                       k->imin, k->imax);
      return CH_OK;
    }
    case CH_KEY_FLOAT: {
      double x = v->f;
      int lo_bad = (k->open & CH_KEY_LO_OPEN) ? !(x > k->fmin) : !(x >= k->fmin);
      int hi_bad = (k->open & CH_KEY_HI_OPEN) ? !(x < k->fmax) : !(x <= k->fmax);
      if (!isfinite(x) || lo_bad || hi_bad) {
        if (isinf(k->fmax))
          return CH_FAIL(CH_ERR_CONFIG, "%s: %s: must be %s %g, got %g", where, k->name,
                         (k->open & CH_KEY_LO_OPEN) ? ">" : ">=", k->fmin, x);
        return CH_FAIL(CH_ERR_CONFIG, "%s: %s: must be in %c%g, %g%c, got %g", where, k->name,
                       (k->open & CH_KEY_LO_OPEN) ? '(' : '[', k->fmin, k->fmax,
                       (k->open & CH_KEY_HI_OPEN) ? ')' : ']', x);
      }
      return CH_OK;
    }
    case CH_KEY_BOOL:
    case CH_KEY_ENUM: {
      int64_t n = k->type == CH_KEY_BOOL ? 2 : n_choices(k->choices);
      if (v->i < 0 || v->i >= n)
        return CH_FAIL(CH_ERR_CONFIG, "%s: %s: invalid value %" PRId64, where, k->name, v->i);
      return CH_OK;
    }
    case CH_KEY_STRING:
      /* Empty means "derived from another key" for string keys whose default is empty. */
      if (!v->s[0] && k->dflt[0])
        return CH_FAIL(CH_ERR_CONFIG, "%s: %s: must not be empty", where, k->name);
      if (strlen(v->s) >= k->size)
        return CH_FAIL(CH_ERR_CONFIG, "%s: %s: longer than %zu characters", where, k->name,
                       k->size - 1);
      return CH_OK;
  }
  return CH_FAIL(CH_ERR_INTERNAL, "%s: bad key type", k->name);
}

static void store(void *base, const ch_key_row *k, const kval *v) {
  char *p = (char *)base + k->offset;
  switch (k->type) {
    case CH_KEY_FLOAT: *(double *)p = v->f; break;
    case CH_KEY_STRING:
      memset(p, 0, k->size); /* whole buffer, so equal configs compare equal with memcmp */
      memcpy(p, v->s, strlen(v->s));
      break;
    default:
      if (k->size == sizeof(int64_t)) *(int64_t *)p = v->i;
      else *(int *)p = (int)v->i;
  }
}

/* Reads a field back. A string without a terminator inside its buffer reads as "". */
static kval fetch(const void *base, const ch_key_row *k) {
  const char *p = (const char *)base + k->offset;
  kval v = {0, 0, ""};
  switch (k->type) {
    case CH_KEY_FLOAT: v.f = *(const double *)p; break;
    case CH_KEY_STRING: if (memchr(p, '\0', k->size)) v.s = p; break;
    default: v.i = k->size == sizeof(int64_t) ? *(const int64_t *)p : *(const int *)p;
  }
  return v;
}

static ch_status set_text(void *base, const ch_key_row *k, const char *text, int quoted,
                          const char *where) {
  kval v;
  CH_CHECK(parse_value(k, text, quoted, where, &v));
  CH_CHECK(check_value(k, &v, where));
  store(base, k, &v);
  return CH_OK;
}

/* Index of the first broken cross-key rule, or -1. */
static int broken_rule(const ch_key_table *t, const void *base) {
  for (int r = 0; r < t->nrules; r++) {
    const ch_key_row *a = ch_keys_find(t, t->rules[r].lo), *b = ch_keys_find(t, t->rules[r].hi);
    kval va = fetch(base, a), vb = fetch(base, b);
    int bad = (a->type == CH_KEY_INT && b->type == CH_KEY_INT)
                  ? va.i > vb.i
                  : (a->type == CH_KEY_INT ? (double)va.i : va.f) > (b->type == CH_KEY_INT ? (double)vb.i : vb.f);
    if (bad) return r;
  }
  return -1;
}

static ch_status rule_error(const ch_key_table *t, const void *base, int r, const char *where) {
  const ch_key_row *a = ch_keys_find(t, t->rules[r].lo), *b = ch_keys_find(t, t->rules[r].hi);
  kval va = fetch(base, a), vb = fetch(base, b);
  return CH_FAIL(CH_ERR_CONFIG, "%s: %s (%g) must be <= %s (%g)", where, a->name,
                 a->type == CH_KEY_INT ? (double)va.i : va.f, b->name,
                 b->type == CH_KEY_INT ? (double)vb.i : vb.f);
}
static ch_status read_file(const char *path, char **text, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return CH_FAIL(CH_ERR_IO, "cannot open config file '%s': %s", path, strerror(errno));
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  ch_status st = CH_OK;
  while (buf) {
    n += fread(buf + n, 1, cap - n, f);
    if (n < cap) break;
    char *bigger = realloc(buf, cap *= 2);
    if (!bigger) free(buf);
    buf = bigger;
  }
  if (!buf) st = CH_FAIL(CH_ERR_NOMEM, "out of memory reading '%s'", path);
  else if (ferror(f)) st = CH_FAIL(CH_ERR_IO, "cannot read config file '%s': %s", path, strerror(errno));
  fclose(f);
  if (st != CH_OK) {
    free(buf);
    return st;
  }
  *text = buf;
  *len = n;
  return CH_OK;
}

/* Where each key got its value, so that a broken cross-key rule names the later setting. */
typedef struct origin { int line, override; } origin; /* override -1: none; line 0: none */

static int origin_rank(origin o) { return o.override >= 0 ? INT_MAX / 2 + o.override : o.line; }

static void origin_text(origin o, const char *path, const char *const *ovr, char *buf, size_t n) {
  if (o.override >= 0) snprintf(buf, n, "override '%.280s'", ovr[o.override]);
  else if (o.line > 0) snprintf(buf, n, "%s:%d", path, o.line);
  else snprintf(buf, n, "defaults");
}

static ch_status apply_text(const ch_key_table *t, void *base, const char *text, size_t len,
                            const char *path, origin *origins, int *nkeys) {
  char where[CH_PATH_MAX + 32];
  yaml_flat flat = {0};
  ch_status st;
  CH_CHECK_GOTO(yaml_flatten(text, len, path, &flat), st, done);
  *nkeys = (int)flat.n;
  for (size_t i = 0; i < flat.n; i++) {
    const yaml_entry *e = &flat.entries[i];
    const ch_key_row *k;
    snprintf(where, sizeof where, "%s:%d", path, e->line);
    int section_ok = !e->value || yaml_is_null(e->value, e->quoted);
    CH_CHECK_GOTO(find_row(t, e->key, section_ok, where, &k), st, done);
    if (!k) continue;
    if (!e->value) {
      st = CH_FAIL(CH_ERR_CONFIG, "%s: %s: expected a value, got a mapping", where, e->key);
      goto done;
    }
    CH_CHECK_GOTO(set_text(base, k, e->value, e->quoted, where), st, done);
    origins[k - t->rows].line = e->line;
  }
done:
  yaml_flat_free(&flat);
  return st;
}

/* ---- warnings ---------------------------------------------------------------------------- */

/* Warns about each key that was set (origin) to other than its default while its scope's enum
 * key has another choice: a value that changes nothing is almost always a mistake (a GPT config
 * with model.hidden). A key at its default changes nothing either way, so a dumped config,
 * which lists every key, draws no warning. */
static void warn_scopes(const ch_key_table *t, const void *base, const origin *origins,
                        const char *path, const char *const *ovr, ch_key_warn_fn warn, void *ctx) {
  char where[CH_PATH_MAX + 320], msg[CH_PATH_MAX + 640];
  for (int i = 0; i < t->nscopes; i++) {
    const ch_key_scope *sc = &t->scopes[i];
    const ch_key_row *k = ch_keys_find(t, sc->key), *on = ch_keys_find(t, sc->on);
    kval want, dflt;
    if (!k || !on || parse_enum(on, sc->value, "scope", &want) != CH_OK ||
        fetch(base, on).i == want.i)
      continue;
    kval v = fetch(base, k);
    origin o = origins[k - t->rows];
    if ((o.line == 0 && o.override < 0) || parse_value(k, k->dflt, 0, "default", &dflt) != CH_OK)
      continue;
    int same = k->type == CH_KEY_FLOAT ? v.f == dflt.f
               : k->type == CH_KEY_STRING ? !strcmp(v.s, dflt.s) : v.i == dflt.i;
    if (same) continue;
    char current[64] = "?";
    choice_name(on, fetch(base, on).i, current, sizeof current);
    origin_text(o, path, ovr, where, sizeof where);
    snprintf(msg, sizeof msg, "%s: %s has no effect: it is a key of %s %s, and %s is %s",
             where, k->name, on->name, sc->value, on->name, current);
    warn(ctx, msg);
  }
}

/* ---- YAML dump ----------------------------------------------------------------------- */

/* Opens the sections of `key` that `prev` (the previous key) did not already have open and
 * returns the leaf's depth. Keys share a section when they match up to and past a '.'. */
static int open_sections(FILE *out, const char *prev, const char *key) {
  int shared = 0, depth = 0;
  for (size_t i = 0; prev && prev[i] && prev[i] == key[i]; i++) shared += key[i] == '.';
  if (prev && shared == 0) fputc('\n', out); /* blank line between top-level sections */
  const char *c = key;
  for (const char *dot; (dot = strchr(c, '.')); c = dot + 1, depth++)
    if (depth >= shared) fprintf(out, "%*s%.*s:\n", 2 * depth, "", (int)(dot - c), c);
  return depth;
}

static void write_value(FILE *out, const ch_key_row *k, const kval *v) {
  char buf[64];
  switch (k->type) {
    case CH_KEY_INT: fprintf(out, "%" PRId64, v->i); break;
    case CH_KEY_FLOAT: yaml_format_double(v->f, buf, sizeof buf); fputs(buf, out); break;
    case CH_KEY_BOOL: fputs(v->i ? "true" : "false", out); break;
    case CH_KEY_STRING: yaml_write_string(out, v->s); break;
    case CH_KEY_ENUM:
      if (choice_name(k, v->i, buf, sizeof buf)) fputs(buf, out);
      else fprintf(out, "%" PRId64, v->i); /* out of range: reloading reports it */
      break;
  }
}


/* ---- public ---------------------------------------------------------------------------- */

void ch_keys_defaults(const ch_key_table *t, void *base) {
  /* The table's defaults are checked by tests/config; a bad one would leave the field as is. */
  for (int i = 0; i < t->nrows; i++) {
    kval v;
    if (parse_value(&t->rows[i], t->rows[i].dflt, 0, "default", &v) == CH_OK)
      store(base, &t->rows[i], &v);
  }
}

ch_status ch_keys_set(const ch_key_table *t, void *base, const char *assignment, const char *origin,
                      const ch_key_row **row) {
  char where[320], key[128], name[480];
  const ch_key_row *k = NULL;
  if (row) *row = NULL;
  if (origin) snprintf(where, sizeof where, "%s", origin);
  else snprintf(where, sizeof where, "override '%.280s'", assignment);
  const char *eq = strchr(assignment, '=');
  const char *kb = assignment, *ke = eq ? eq : assignment;
  while (kb < ke && (*kb == ' ' || *kb == '\t')) kb++;
  while (ke > kb && (ke[-1] == ' ' || ke[-1] == '\t')) ke--;
  if (!eq || ke == kb)
    return CH_FAIL(CH_ERR_CONFIG, "%s: expected key.sub=value", where);
  if ((size_t)(ke - kb) >= sizeof key)
    return CH_FAIL(CH_ERR_CONFIG, "%s: key too long", where);
  memcpy(key, kb, (size_t)(ke - kb));
  key[ke - kb] = '\0';
  CH_CHECK(find_row(t, key, 0, where, &k));
  snprintf(name, sizeof name, "%s: %s", where, key);
  char *value = NULL;
  int quoted = 0;
  CH_CHECK(yaml_scalar(eq + 1, name, &value, &quoted));
  ch_status st = set_text(base, k, value, quoted, where);
  free(value);
  if (st != CH_OK) ch_error_trace(__FILE__, __LINE__);
  else if (row) *row = k;
  return st;
}

ch_status ch_keys_set_text(const ch_key_table *t, void *base, const char *key, const char *value,
                           const char *origin) {
  const ch_key_row *k;
  CH_CHECK(find_row(t, key, 0, origin, &k));
  /* quoted: a flag's argument is a string as written ("null" is a name, not YAML's null) */
  CH_CHECK(set_text(base, k, value, 1, origin));
  return CH_OK;
}

ch_status ch_keys_validate(const ch_key_table *t, const void *base) {
  for (int i = 0; i < t->nrows; i++) {
    kval v = fetch(base, &t->rows[i]);
    CH_CHECK(check_value(&t->rows[i], &v, "config"));
  }
  int r = broken_rule(t, base);
  if (r >= 0) return rule_error(t, base, r, "config");
  return CH_OK;
}

ch_status ch_keys_load_text(const ch_key_table *t, void *base, const char *text, size_t len,
                            const char *name, const char *const *overrides, int noverrides,
                            ch_key_warn_fn warn, void *ctx) {
  if (noverrides < 0 || (noverrides > 0 && !overrides))
    return CH_FAIL(CH_ERR_INVALID, "ch_keys_load_text: bad override list");
  void *tmp = malloc(t->struct_size);
  origin *origins = malloc(sizeof(origin) * (size_t)t->nrows);
  ch_status st = CH_OK;
  if (!tmp || !origins) {
    st = CH_FAIL(CH_ERR_NOMEM, "loading %s", name ? name : "a config");
    goto done;
  }
  memcpy(tmp, base, t->struct_size);
  for (int i = 0; i < t->nrows; i++) origins[i] = (origin){0, -1};
  int nkeys = 0;
  if (text) CH_CHECK_GOTO(apply_text(t, tmp, text, len, name, origins, &nkeys), st, done);
  for (int i = 0; i < noverrides; i++) {
    const ch_key_row *k;
    CH_CHECK_GOTO(ch_keys_set(t, tmp, overrides[i], NULL, &k), st, done);
    origins[k - t->rows].override = i;
  }
  int r = broken_rule(t, tmp);
  if (r >= 0) {
    origin a = origins[ch_keys_find(t, t->rules[r].lo) - t->rows];
    origin b = origins[ch_keys_find(t, t->rules[r].hi) - t->rows];
    char where[CH_PATH_MAX + 32];
    origin_text(origin_rank(a) >= origin_rank(b) ? a : b, name, overrides, where, sizeof where);
    st = rule_error(t, tmp, r, where);
    goto done;
  }
  memcpy(base, tmp, t->struct_size);
  if (warn && text && nkeys == 0) {
    char msg[CH_PATH_MAX + 96];
    snprintf(msg, sizeof msg, "%s sets no key (empty or only comments): every key not given as "
             "an override has its default", name);
    warn(ctx, msg);
  }
  if (warn) warn_scopes(t, tmp, origins, name, overrides, warn, ctx);
done:
  free(tmp);
  free(origins);
  return st;
}

ch_status ch_keys_load_file(const ch_key_table *t, void *base, const char *path,
                            const char *const *overrides, int noverrides, ch_key_warn_fn warn,
                            void *ctx) {
  char *text = NULL;
  size_t len = 0;
  if (path) CH_CHECK(read_file(path, &text, &len));
  ch_status st = ch_keys_load_text(t, base, text, len, path, overrides, noverrides, warn, ctx);
  free(text);
  return st;
}

char *ch_keys_to_yaml(const ch_key_table *t, const void *base) {
  char *text = NULL;
  size_t len = 0;
  FILE *out = open_memstream(&text, &len);
  if (!out) return NULL;
  fprintf(out, "# %s\n", t->title);
  for (int i = 0; i < t->nrows; i++) {
    const ch_key_row *k = &t->rows[i];
    int depth = open_sections(out, i ? t->rows[i - 1].name : NULL, k->name);
    long start = ftell(out);
    const char *leaf = strrchr(k->name, '.');
    fprintf(out, "%*s%s: ", 2 * depth, "", leaf ? leaf + 1 : k->name); /* top-level: no dot */
    kval v = fetch(base, k);
    write_value(out, k, &v);
    int width = (int)(ftell(out) - start);
    fprintf(out, "%*s# %s\n", width < 34 ? 36 - width : 2, "", k->help);
  }
  if (fclose(out) != 0) {
    free(text);
    return NULL;
  }
  return text;
}
