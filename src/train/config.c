/* Run configuration. k_keys below is the single source of truth: defaults, parsing of YAML
 * files and `key.sub=value` overrides, validation and the YAML dump all walk that table.
 * A value goes text -> (parse) -> kval -> (check) -> struct field; validation of a struct
 * reads the field back into a kval and runs the same check. */
#include "cohort/config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cohort/fs.h"
#include "runtime/yaml_flat.h"

typedef enum key_type { KT_INT, KT_FLOAT, KT_BOOL, KT_ENUM, KT_STRING } key_type;
enum { LO_OPEN = 1, HI_OPEN = 2 }; /* float range ends that exclude their bound */

typedef struct key_spec {
  const char *name;    /* dotted key */
  key_type type;
  size_t offset, size; /* field in ch_config; ints are int or int64_t, strings char[size] */
  const char *dflt;    /* default, written as in a YAML file */
  const char *choices; /* enum: "a|b|c"; the stored value is the index */
  int64_t imin, imax;  /* int: inclusive range (further clamped to the field's width) */
  double fmin, fmax;   /* float: range, ends excluded per `open` */
  int open;
  const char *help;
  const char *aliases; /* enum: "alias=choice|..." accepted on input, stored as the choice */
} key_spec;

#define FIELD(f) offsetof(ch_config, f), sizeof(((ch_config *)0)->f)
#define K_INT(k, f, d, lo, h) {k, KT_INT, FIELD(f), d, NULL, lo, INT64_MAX, 0, 0, 0, h, NULL}
#define K_FLOAT(k, f, d, lo, hi, op, h) {k, KT_FLOAT, FIELD(f), d, NULL, 0, 0, lo, hi, op, h, NULL}
#define K_BOOL(k, f, d, h) {k, KT_BOOL, FIELD(f), d, NULL, 0, 0, 0, 0, 0, h, NULL}
#define K_ENUM(k, f, d, c, h) {k, KT_ENUM, FIELD(f), d, c, 0, 0, 0, 0, 0, h, NULL}
#define K_ENUM_ALIAS(k, f, d, c, a, h) {k, KT_ENUM, FIELD(f), d, c, 0, 0, 0, 0, 0, h, a}
#define K_STR(k, f, d, h) {k, KT_STRING, FIELD(f), d, NULL, 0, 0, 0, 0, 0, h, NULL}

/* Keys of one section must be contiguous: the YAML dump opens each section once. */
static const key_spec k_keys[] = {
  K_ENUM("model.type", model.type, "mlp", "mlp|gpt", "model family"),
  K_INT("model.depth", model.depth, "2", 0, "hidden layers (MLP)"),
  K_INT("model.hidden", model.hidden, "128", 1, "hidden width (MLP)"),
  K_ENUM("model.activation", model.activation, "relu", "relu|gelu", "hidden activation (MLP)"),
  K_INT("model.n_layer", model.n_layer, "4", 1, "transformer blocks (GPT)"),
  K_INT("model.n_head", model.n_head, "4", 1, "attention heads, dividing model.n_embd (GPT)"),
  K_INT("model.n_embd", model.n_embd, "128", 1, "width (GPT)"),
  K_INT("model.context", model.context, "64", 1, "context length in tokens (GPT)"),
  K_INT("model.vocab_size", model.vocab_size, "0", 0,
        "vocabulary (GPT); 0 = the dataset's, else >= the dataset's"),
  K_STR("data.path", data.path, "examples/digits/digits.h5", "HDF5 file made by `cohort data`"),
  K_ENUM("optim.type", optim.type, "adamw", "sgd|adamw", "optimizer"),
  K_FLOAT("optim.lr", optim.lr, "1e-3", 0, INFINITY, LO_OPEN, "peak learning rate"),
  K_FLOAT("optim.weight_decay", optim.weight_decay, "0.0", 0, INFINITY, 0, "weight decay"),
  K_FLOAT("optim.momentum", optim.momentum, "0.9", 0, 1, HI_OPEN, "SGD momentum"),
  K_FLOAT("optim.beta1", optim.beta1, "0.9", 0, 1, HI_OPEN, "AdamW first-moment decay"),
  K_FLOAT("optim.beta2", optim.beta2, "0.999", 0, 1, HI_OPEN, "AdamW second-moment decay"),
  K_FLOAT("optim.eps", optim.eps, "1e-8", 0, INFINITY, LO_OPEN, "AdamW denominator epsilon"),
  K_FLOAT("optim.grad_clip", optim.grad_clip, "0", 0, INFINITY, 0,
          "max global gradient L2 norm; 0 = off"),
  K_ENUM("optim.schedule", optim.schedule, "constant", "constant|cosine",
         "learning-rate schedule after warmup"),
  K_INT("optim.warmup_steps", optim.warmup_steps, "0", 0, "linear warmup steps (<= train.steps)"),
  K_FLOAT("optim.min_lr", optim.min_lr, "0", 0, INFINITY, 0, "cosine floor (<= optim.lr)"),
  K_INT("train.steps", train.steps, "100", 1, "optimizer steps"),
  K_INT("train.batch_size", train.batch_size, "64", 1, "global samples per optimizer step"),
  K_INT("train.micro_batch_size", train.micro_batch_size, "0", 0,
        "samples per rank per micro-step; 0 = no accumulation"),
  K_INT("train.seed", train.seed, "1234", 0, "seed of initialisation and sampling"),
  K_INT("train.log_every", train.log_every, "10", 1, "log every N steps"),
  K_INT("train.eval_every", train.eval_every, "0", 0, "evaluate every N steps; 0 = at the end"),
  K_ENUM_ALIAS("parallel.strategy", parallel.strategy, "ddp", "ddp|zero1|zero2|zero3", "fsdp=zero3",
               "data-parallel strategy: replicated (ddp) or ZeRO stage 1/2/3 sharded (fsdp = zero3)"),
  K_FLOAT("parallel.bucket_mb", parallel.bucket_mb, "25", 0, INFINITY, LO_OPEN,
          "DDP gradient bucket size, MiB"),
  K_FLOAT("parallel.first_bucket_mb", parallel.first_bucket_mb, "1", 0, INFINITY, LO_OPEN,
          "first bucket size, MiB (small: communication starts early)"),
  K_BOOL("parallel.overlap", parallel.overlap, "true", "allreduce buckets during backward"),
  K_BOOL("parallel.reshard_after_forward", parallel.reshard_after_forward, "true",
         "zero3: drop a unit's gathered parameters after its forward (gather again for backward)"),
  K_INT("parallel.prefetch", parallel.prefetch, "1", 0,
        "zero3: gather the next unit while the current one computes (0 = off)"),
  K_STR("run.dir", run.dir, "runs/default", "run directory: logs, checkpoints"),
  K_STR("run.resume", run.resume, "none",
        "none | auto (newest valid checkpoint, else start fresh) | PATH of a checkpoint file"),
  K_FLOAT("run.watchdog_timeout", run.watchdog_timeout, "300", 0, INFINITY, 0,
          "seconds a rank may wait in one collective before the job is aborted; 0 = off"),
  K_INT("run.checkpoint.every", run.checkpoint.every, "0", 0,
        "write a checkpoint every N steps (and at the end); 0 = only on preemption"),
  K_INT("run.checkpoint.keep_last", run.checkpoint.keep_last, "3", 1,
        "keep the newest N checkpoints"),
  K_INT("run.checkpoint.keep_every", run.checkpoint.keep_every, "0", 0,
        "also keep every checkpoint whose step is a multiple of N; 0 = none"),
  K_STR("run.checkpoint.dir", run.checkpoint.dir, "",
        "checkpoint directory; empty = <run.dir>/checkpoints"),
  K_BOOL("serve.after", serve.after, "false",
         "when training ends, serve the trained weights from the same ranks (cohort serve)"),
  K_STR("serve.host", serve.host, "127.0.0.1", "bind address"),
  K_INT("serve.port", serve.port, "8000", 0, "port; 0 = any free port"),
  K_STR("serve.model_name", serve.model_name, "", "name in the URLs; empty = the model type"),
  K_STR("serve.api_key", serve.api_key, "", "require Authorization: Bearer KEY; empty = open"),
  K_INT("serve.max_batch_size", serve.max_batch_size, "8", 1,
        "V2 rows per batch, sequences generated at once"),
  K_INT("serve.max_queue_delay_us", serve.max_queue_delay_us, "2000", 0,
        "how long a V2 batch may wait to fill, microseconds"),
  K_INT("serve.max_queue_size", serve.max_queue_size, "256", 1, "waiting requests before 503"),
  K_FLOAT("serve.timeout", serve.timeout, "60", 0, INFINITY, LO_OPEN,
          "seconds a request may take before 504"),
};
#define NKEYS ((int)(sizeof k_keys / sizeof k_keys[0]))

/* Cross-key rules, checked after all overrides: value(lo) <= value(hi). */
static const struct { const char *lo, *hi; } k_rules[] = {
  {"optim.min_lr", "optim.lr"},
  {"optim.warmup_steps", "train.steps"},
};

typedef struct kval {
  int64_t i;     /* int, bool, enum index */
  double f;      /* float */
  const char *s; /* string (borrowed) */
} kval;

/* ---- lookup ---------------------------------------------------------------------------- */

static const key_spec *find_key(const char *name) {
  for (int i = 0; i < NKEYS; i++)
    if (!strcmp(k_keys[i].name, name)) return &k_keys[i];
  return NULL;
}

static int is_section(const char *name) {
  size_t n = strlen(name);
  for (int i = 0; i < NKEYS; i++)
    if (!strncmp(k_keys[i].name, name, n) && k_keys[i].name[n] == '.') return 1;
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

static ch_status unknown_key(const char *name, const char *where) {
  const char *best = NULL;
  int best_d = 3; /* suggest only within 2 edits, or a bare leaf name ("lr") */
  for (int i = 0; i < NKEYS; i++) {
    const char *leaf = strrchr(k_keys[i].name, '.');
    int d = (leaf && !strcmp(leaf + 1, name)) ? 1 : edit_distance(name, k_keys[i].name);
    if (d < best_d) best_d = d, best = k_keys[i].name;
  }
  if (best)
    return CH_FAIL(CH_ERR_CONFIG, "%s: unknown key '%s' (did you mean '%s'?)", where, name, best);
  return CH_FAIL(CH_ERR_CONFIG, "%s: unknown key '%s'", where, name);
}

/* Resolves `name` to its row. A section is fine (*row = NULL) only when `section_ok`. */
static ch_status find_row(const char *name, int section_ok, const char *where,
                          const key_spec **row) {
  *row = find_key(name);
  if (*row) return CH_OK;
  if (!is_section(name)) return unknown_key(name, where);
  if (section_ok) return CH_OK;
  return CH_FAIL(CH_ERR_CONFIG, "%s: %s is a section, not a value", where, name);
}

/* ---- text -> kval ---------------------------------------------------------------------- */

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static ch_status parse_int(const key_spec *k, const char *v, const char *where, kval *out) {
  const char *p = v + (*v == '+' || *v == '-');
  int ok = is_digit(*p);
  for (; ok && *p; p++) ok = is_digit(*p);
  if (!ok) return CH_FAIL(CH_ERR_CONFIG, "%s: %s: expected an integer, got '%.80s'", where, k->name, v);
  errno = 0;
  long long x = strtoll(v, NULL, 10);
  if (errno == ERANGE || (k->size == sizeof(int) && (x < INT_MIN || x > INT_MAX)))
    return CH_FAIL(CH_ERR_CONFIG, "%s: %s: %.80s is out of range (max %lld)", where, k->name, v,
                   k->size == sizeof(int) ? (long long)INT_MAX : (long long)INT64_MAX);
  out->i = x;
  return CH_OK;
}

static ch_status parse_float(const key_spec *k, const char *v, const char *where, kval *out) {
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

static ch_status parse_bool(const key_spec *k, const char *v, const char *where, kval *out) {
  static const char *const yes[] = {"true", "yes", "on", "1"}, *const no[] = {"false", "no", "off", "0"};
  for (int i = 0; i < 4; i++) {
    if (!strcasecmp(v, yes[i])) return out->i = 1, CH_OK;
    if (!strcasecmp(v, no[i])) return out->i = 0, CH_OK;
  }
  return CH_FAIL(CH_ERR_CONFIG, "%s: %s: expected true or false (yes/no, on/off, 1/0), got '%.80s'",
                 where, k->name, v);
}

static ch_status parse_enum(const key_spec *k, const char *v, const char *where, kval *out) {
  size_t n = strlen(v);
  for (const char *a = k->aliases; a && *a;) { /* "alias=choice|..." */
    size_t len = strcspn(a, "="), end = strcspn(a, "|");
    if (len == n && !strncmp(a, v, n)) {
      char target[32];
      snprintf(target, sizeof target, "%.*s", (int)(end - len - 1), a + len + 1);
      return parse_enum(&(key_spec){.name = k->name, .choices = k->choices}, target, where, out);
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

static ch_status parse_value(const key_spec *k, const char *v, int quoted, const char *where,
                             kval *out) {
  memset(out, 0, sizeof *out);
  if (ch_yaml_is_null(v, quoted))
    return CH_FAIL(CH_ERR_CONFIG, "%s: %s: missing value", where, k->name);
  switch (k->type) {
    case KT_INT: return parse_int(k, v, where, out);
    case KT_FLOAT: return parse_float(k, v, where, out);
    case KT_BOOL: return parse_bool(k, v, where, out);
    case KT_ENUM: return parse_enum(k, v, where, out);
    case KT_STRING: out->s = v; return CH_OK;
  }
  return CH_FAIL(CH_ERR_INTERNAL, "%s: bad key type", k->name);
}

/* ---- kval <-> struct, checks ----------------------------------------------------------- */

static int n_choices(const char *choices) {
  int n = 1;
  for (; *choices; choices++) n += *choices == '|';
  return n;
}

static ch_status check_value(const key_spec *k, const kval *v, const char *where) {
  switch (k->type) {
    case KT_INT: {
      int64_t hi = k->size == sizeof(int) && k->imax > INT_MAX ? INT_MAX : k->imax;
      if (v->i < k->imin)
        return CH_FAIL(CH_ERR_CONFIG, "%s: %s: must be >= %" PRId64 ", got %" PRId64, where,
                       k->name, k->imin, v->i);
      if (v->i > hi)
        return CH_FAIL(CH_ERR_CONFIG, "%s: %s: must be <= %" PRId64 ", got %" PRId64, where,
                       k->name, hi, v->i);
      return CH_OK;
    }
    case KT_FLOAT: {
      double x = v->f;
      int lo_bad = (k->open & LO_OPEN) ? !(x > k->fmin) : !(x >= k->fmin);
      int hi_bad = (k->open & HI_OPEN) ? !(x < k->fmax) : !(x <= k->fmax);
      if (!isfinite(x) || lo_bad || hi_bad) {
        if (isinf(k->fmax))
          return CH_FAIL(CH_ERR_CONFIG, "%s: %s: must be %s %g, got %g", where, k->name,
                         (k->open & LO_OPEN) ? ">" : ">=", k->fmin, x);
        return CH_FAIL(CH_ERR_CONFIG, "%s: %s: must be in %c%g, %g%c, got %g", where, k->name,
                       (k->open & LO_OPEN) ? '(' : '[', k->fmin, k->fmax,
                       (k->open & HI_OPEN) ? ')' : ']', x);
      }
      return CH_OK;
    }
    case KT_BOOL:
    case KT_ENUM: {
      int64_t n = k->type == KT_BOOL ? 2 : n_choices(k->choices);
      if (v->i < 0 || v->i >= n)
        return CH_FAIL(CH_ERR_CONFIG, "%s: %s: invalid value %" PRId64, where, k->name, v->i);
      return CH_OK;
    }
    case KT_STRING:
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

static void store(ch_config *cfg, const key_spec *k, const kval *v) {
  char *p = (char *)cfg + k->offset;
  switch (k->type) {
    case KT_FLOAT: *(double *)p = v->f; break;
    case KT_STRING:
      memset(p, 0, k->size); /* whole buffer, so equal configs compare equal with memcmp */
      memcpy(p, v->s, strlen(v->s));
      break;
    default:
      if (k->size == sizeof(int64_t)) *(int64_t *)p = v->i;
      else *(int *)p = (int)v->i;
  }
}

/* Reads a field back. A string without a terminator inside its buffer reads as "". */
static kval fetch(const ch_config *cfg, const key_spec *k) {
  const char *p = (const char *)cfg + k->offset;
  kval v = {0, 0, ""};
  switch (k->type) {
    case KT_FLOAT: v.f = *(const double *)p; break;
    case KT_STRING: if (memchr(p, '\0', k->size)) v.s = p; break;
    default: v.i = k->size == sizeof(int64_t) ? *(const int64_t *)p : *(const int *)p;
  }
  return v;
}

static ch_status set_text(ch_config *cfg, const key_spec *k, const char *text, int quoted,
                          const char *where) {
  kval v;
  CH_CHECK(parse_value(k, text, quoted, where, &v));
  CH_CHECK(check_value(k, &v, where));
  store(cfg, k, &v);
  return CH_OK;
}

/* Index of the first broken cross-key rule, or -1. */
static int broken_rule(const ch_config *cfg) {
  for (int r = 0; r < (int)(sizeof k_rules / sizeof k_rules[0]); r++) {
    const key_spec *a = find_key(k_rules[r].lo), *b = find_key(k_rules[r].hi);
    kval va = fetch(cfg, a), vb = fetch(cfg, b);
    int bad = (a->type == KT_INT && b->type == KT_INT)
                  ? va.i > vb.i
                  : (a->type == KT_INT ? (double)va.i : va.f) > (b->type == KT_INT ? (double)vb.i : vb.f);
    if (bad) return r;
  }
  return -1;
}

static ch_status rule_error(const ch_config *cfg, int r, const char *where) {
  const key_spec *a = find_key(k_rules[r].lo), *b = find_key(k_rules[r].hi);
  kval va = fetch(cfg, a), vb = fetch(cfg, b);
  return CH_FAIL(CH_ERR_CONFIG, "%s: %s (%g) must be <= %s (%g)", where, a->name,
                 a->type == KT_INT ? (double)va.i : va.f, b->name,
                 b->type == KT_INT ? (double)vb.i : vb.f);
}

/* ---- public: defaults, set, load, validate --------------------------------------------- */

void ch_config_defaults(ch_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  /* The table's defaults are checked by tests/config; a bad one would leave the field zero. */
  for (int i = 0; i < NKEYS; i++) {
    kval v;
    if (parse_value(&k_keys[i], k_keys[i].dflt, 0, "default", &v) == CH_OK)
      store(cfg, &k_keys[i], &v);
  }
}

/* ch_config_set with the row it set reported (NULL when none). */
static ch_status set_assignment(ch_config *cfg, const char *assignment, const char *origin,
                                const key_spec **row) {
  char where[320], key[128], name[480];
  *row = NULL;
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
  CH_CHECK(find_row(key, 0, where, row));
  snprintf(name, sizeof name, "%s: %s", where, key);
  char *value = NULL;
  int quoted = 0;
  CH_CHECK(ch_yaml_scalar(eq + 1, name, &value, &quoted));
  ch_status st = set_text(cfg, *row, value, quoted, where);
  free(value);
  if (st != CH_OK) ch_error_trace(__FILE__, __LINE__);
  return st;
}

ch_status ch_config_set(ch_config *cfg, const char *assignment, const char *origin) {
  const key_spec *row;
  CH_CHECK(set_assignment(cfg, assignment, origin, &row));
  return CH_OK;
}

ch_status ch_config_validate(const ch_config *cfg) {
  for (int i = 0; i < NKEYS; i++) {
    kval v = fetch(cfg, &k_keys[i]);
    CH_CHECK(check_value(&k_keys[i], &v, "config"));
  }
  int r = broken_rule(cfg);
  if (r >= 0) return rule_error(cfg, r, "config");
  return CH_OK;
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

static ch_status apply_text(ch_config *cfg, const char *text, size_t len, const char *path,
                            origin *origins) {
  char where[CH_PATH_MAX + 32];
  ch_yaml_flat flat = {0};
  ch_status st;
  CH_CHECK_GOTO(ch_yaml_flatten(text, len, path, &flat), st, done);
  for (size_t i = 0; i < flat.n; i++) {
    const ch_yaml_entry *e = &flat.entries[i];
    const key_spec *k;
    snprintf(where, sizeof where, "%s:%d", path, e->line);
    int section_ok = !e->value || ch_yaml_is_null(e->value, e->quoted);
    CH_CHECK_GOTO(find_row(e->key, section_ok, where, &k), st, done);
    if (!k) continue;
    if (!e->value) {
      st = CH_FAIL(CH_ERR_CONFIG, "%s: %s: expected a value, got a mapping", where, e->key);
      goto done;
    }
    CH_CHECK_GOTO(set_text(cfg, k, e->value, e->quoted, where), st, done);
    origins[k - k_keys].line = e->line;
  }
done:
  ch_yaml_flat_free(&flat);
  return st;
}

static ch_status apply_file(ch_config *cfg, const char *path, origin *origins) {
  char *text = NULL;
  size_t len = 0;
  CH_CHECK(read_file(path, &text, &len));
  ch_status st = apply_text(cfg, text, len, path, origins);
  free(text);
  return st;
}

ch_status ch_config_load_text(const char *text, const char *name, ch_config *cfg) {
  ch_config tmp;
  origin origins[NKEYS];
  ch_config_defaults(&tmp);
  for (int i = 0; i < NKEYS; i++) origins[i] = (origin){0, -1};
  CH_CHECK(apply_text(&tmp, text, strlen(text), name, origins));
  CH_CHECK(ch_config_validate(&tmp));
  *cfg = tmp;
  return CH_OK;
}

ch_status ch_config_load(const char *path, const char *const *overrides, int noverrides,
                         ch_config *cfg) {
  ch_config tmp;
  origin origins[NKEYS];
  ch_config_defaults(&tmp);
  for (int i = 0; i < NKEYS; i++) origins[i] = (origin){0, -1};
  if (noverrides < 0 || (noverrides > 0 && !overrides))
    return CH_FAIL(CH_ERR_INVALID, "ch_config_load: bad override list");
  if (path) CH_CHECK(apply_file(&tmp, path, origins));
  for (int i = 0; i < noverrides; i++) {
    const key_spec *k;
    CH_CHECK(set_assignment(&tmp, overrides[i], NULL, &k));
    origins[k - k_keys].override = i;
  }
  int r = broken_rule(&tmp);
  if (r >= 0) {
    origin a = origins[find_key(k_rules[r].lo) - k_keys];
    origin b = origins[find_key(k_rules[r].hi) - k_keys];
    char where[CH_PATH_MAX + 32];
    origin_text(origin_rank(a) >= origin_rank(b) ? a : b, path, overrides, where, sizeof where);
    return rule_error(&tmp, r, where);
  }
  *cfg = tmp;
  return CH_OK;
}

/* ---- YAML dump, atomic write ----------------------------------------------------------- */

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

static void write_value(FILE *out, const key_spec *k, const kval *v) {
  char buf[64];
  switch (k->type) {
    case KT_INT: fprintf(out, "%" PRId64, v->i); break;
    case KT_FLOAT: ch_yaml_format_double(v->f, buf, sizeof buf); fputs(buf, out); break;
    case KT_BOOL: fputs(v->i ? "true" : "false", out); break;
    case KT_STRING: ch_yaml_write_string(out, v->s); break;
    case KT_ENUM: {
      const char *c = k->choices;
      for (int64_t i = 0; i < v->i && c; i++) c = strchr(c, '|'), c = c ? c + 1 : NULL;
      if (c && v->i >= 0) fprintf(out, "%.*s", (int)strcspn(c, "|"), c);
      else fprintf(out, "%" PRId64, v->i); /* out of range: reloading reports it */
      break;
    }
  }
}

char *ch_config_to_yaml(const ch_config *cfg) {
  char *text = NULL;
  size_t len = 0;
  FILE *out = open_memstream(&text, &len);
  if (!out) return NULL;
  fputs("# cohort run configuration\n", out);
  for (int i = 0; i < NKEYS; i++) {
    const key_spec *k = &k_keys[i];
    int depth = open_sections(out, i ? k_keys[i - 1].name : NULL, k->name);
    long start = ftell(out);
    fprintf(out, "%*s%s: ", 2 * depth, "", strrchr(k->name, '.') + 1);
    kval v = fetch(cfg, k);
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

ch_status ch_config_write(const ch_config *cfg, const char *path) {
  char *text = ch_config_to_yaml(cfg);
  if (!text) return CH_FAIL(CH_ERR_NOMEM, "out of memory writing '%s'", path);
  ch_status st = ch_write_file_atomic(path, text, strlen(text));
  free(text);
  return st;
}

const char *ch_strategy_name(int strategy) {
  static const char *names[] = {"ddp", "zero1", "zero2", "zero3"};
  return strategy >= 0 && strategy < 4 ? names[strategy] : "?";
}
