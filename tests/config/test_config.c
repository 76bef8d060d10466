/* Config: defaults, a file with every key, overrides and their precedence, every error case
 * (status and a message naming the key and file:line), and the YAML dump round trip.
 * Usage: test_config <dir of tests/config/files>. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cohort/config.h"
#include "cohort/status.h"
#include "testlib.h"

static const char *g_files; /* tests/config/files */
static char g_tmp[256];     /* scratch directory, removed at the end */

static const char *file(const char *name) {
  static char buf[1024];
  snprintf(buf, sizeof buf, "%s/%s", g_files, name);
  return buf;
}

/* Asserts `got` == `want` and that the current error message contains `needle`. */
static void expect_error(ch_status got, ch_status want, const char *needle, const char *what) {
  CHT_ASSERT(got == want, "%s: expected '%s', got '%s' (%s)", what, ch_status_str(want),
             ch_status_str(got), ch_error_message());
  CHT_ASSERT(strstr(ch_error_message(), needle), "%s: message\n  %s\nlacks\n  %s", what,
             ch_error_message(), needle);
}

static void test_defaults(void) {
  ch_config c;
  memset(&c, 0x5a, sizeof c);
  ch_config_defaults(&c);
  CHT_ASSERT(c.model.type == CH_MODEL_MLP && c.model.depth == 2 && c.model.hidden == 128 &&
                 c.model.activation == CH_ACT_RELU, "model defaults");
  CHT_ASSERT(!strcmp(c.data.path, "examples/digits/digits.h5"), "data.path default");
  CHT_ASSERT(c.optim.type == CH_OPTIM_ADAMW && c.optim.lr == 1e-3 && c.optim.weight_decay == 0.0 &&
                 c.optim.momentum == 0.9 && c.optim.beta1 == 0.9 && c.optim.beta2 == 0.999 &&
                 c.optim.eps == 1e-8 && c.optim.grad_clip == 0.0 &&
                 c.optim.schedule == CH_SCHED_CONSTANT && c.optim.warmup_steps == 0 &&
                 c.optim.min_lr == 0.0, "optim defaults");
  CHT_ASSERT(c.train.steps == 100 && c.train.batch_size == 64 && c.train.micro_batch_size == 0 &&
                 c.train.seed == 1234 && c.train.log_every == 10 && c.train.eval_every == 0 &&
                 c.train.max_nonfinite_steps == 5,
             "train defaults");
  CHT_ASSERT(c.parallel.strategy == CH_STRATEGY_DDP && c.parallel.bucket_mb == 25.0 &&
                 c.parallel.first_bucket_mb == 1.0 && c.parallel.overlap == 1 &&
                 c.parallel.eval_keep_mb == 1024.0, "parallel defaults");
  CHT_ASSERT(!strcmp(c.run.dir, "runs/default"), "run.dir default");
  CHT_OK(ch_config_validate(&c));

  /* No file, an empty file, a comments-only file: all defaults. */
  ch_config d;
  const char *names[] = {NULL, "empty.yaml", "comments.yaml"};
  for (int i = 0; i < 3; i++) {
    memset(&d, 0x33, sizeof d);
    CHT_OK(ch_config_load(names[i] ? file(names[i]) : NULL, NULL, 0, &d));
    CHT_ASSERT(!memcmp(&c, &d, sizeof c), "load(%s) differs from the defaults", names[i]);
  }
}

static void check_good(const ch_config *c) {
  CHT_ASSERT(c->model.type == CH_MODEL_GPT && c->model.depth == 4 && c->model.hidden == 256 &&
                 c->model.activation == CH_ACT_GELU, "model from good.yaml");
  CHT_ASSERT(!strcmp(c->data.path, "data/my set.h5"), "data.path: '%s'", c->data.path);
  CHT_ASSERT(c->optim.type == CH_OPTIM_SGD && c->optim.lr == 0.05 && c->optim.weight_decay == 1e-4 &&
                 c->optim.momentum == 0.8 && c->optim.beta1 == 0.85 && c->optim.beta2 == 0.99 &&
                 c->optim.eps == 1e-6 && c->optim.grad_clip == 1.5 &&
                 c->optim.schedule == CH_SCHED_COSINE && c->optim.warmup_steps == 10 &&
                 c->optim.min_lr == 0.001, "optim from good.yaml");
  CHT_ASSERT(c->train.batch_size == 128 && c->train.micro_batch_size == 16 &&
                 c->train.seed == 42 && c->train.log_every == 5 && c->train.eval_every == 50,
             "train from good.yaml");
  CHT_ASSERT(c->parallel.bucket_mb == 12.5 && c->parallel.first_bucket_mb == 0.5 &&
                 c->parallel.overlap == 0, "parallel from good.yaml");
  CHT_ASSERT(!strcmp(c->run.dir, "runs/exp 1"), "run.dir: '%s'", c->run.dir);
}

static void test_files(void) {
  ch_config c;
  CHT_OK(ch_config_load(file("good.yaml"), NULL, 0, &c));
  check_good(&c);
  CHT_ASSERT(c.train.steps == 500, "train.steps %lld", (long long)c.train.steps);

  CHT_OK(ch_config_load(file("style.yaml"), NULL, 0, &c));
  CHT_ASSERT(c.model.type == CH_MODEL_GPT && c.model.depth == 3 && c.model.hidden == 128,
             "flow mapping");
  CHT_ASSERT(c.optim.lr == 0.01 && c.train.steps == 200 && c.parallel.overlap == 1,
             "dotted key / quoted number / Yes");
  CHT_ASSERT(!strcmp(c.run.dir, "runs/default"), "empty section keeps defaults");
}

static void test_overrides(void) {
  ch_config c;
  /* Overrides beat the file; a later override beats an earlier one. */
  const char *ov[] = {"train.steps=70", "optim.lr = 0.5", "train.steps=90", "run.dir='a b'",
                      "model.type=\"mlp\"", "parallel.overlap=on"};
  CHT_OK(ch_config_load(file("good.yaml"), ov, 6, &c));
  CHT_ASSERT(c.train.steps == 90 && c.optim.lr == 0.5, "override precedence");
  CHT_ASSERT(!strcmp(c.run.dir, "a b") && c.model.type == CH_MODEL_MLP && c.parallel.overlap == 1,
             "quoted overrides");
  CHT_ASSERT(c.model.depth == 4 && c.train.seed == 42, "file values kept");

  const char *yes[] = {"true", "yes", "on", "1", "TRUE", "Yes"}, *no[] = {"false", "no", "off", "0", "Off", "NO"};
  char a[64];
  for (int i = 0; i < 6; i++) {
    snprintf(a, sizeof a, "parallel.overlap=%s", no[i]);
    CHT_OK(ch_config_set(&c, a, NULL));
    CHT_ASSERT(c.parallel.overlap == 0, "%s", a);
    snprintf(a, sizeof a, "parallel.overlap=%s", yes[i]);
    CHT_OK(ch_config_set(&c, a, NULL));
    CHT_ASSERT(c.parallel.overlap == 1, "%s", a);
  }
  CHT_OK(ch_config_set(&c, "train.seed=+5", NULL));
  CHT_OK(ch_config_set(&c, "optim.lr=3e-4  # a comment", NULL));
  CHT_ASSERT(c.train.seed == 5 && c.optim.lr == 3e-4, "signed int, comment dropped");
  /* fsdp is accepted as zero3 and written back as zero3. */
  CHT_OK(ch_config_set(&c, "parallel.strategy=fsdp", NULL));
  CHT_ASSERT(c.parallel.strategy == CH_STRATEGY_ZERO3, "fsdp -> %d", c.parallel.strategy);
  char *dump = ch_config_to_yaml(&c);
  CHT_ASSERT(dump && strstr(dump, "strategy: zero3"), "dump: %s", dump ? dump : "(null)");
  free(dump);
  CHT_OK(ch_config_set(&c, "parallel.strategy=zero1", NULL));
  CHT_ASSERT(c.parallel.strategy == CH_STRATEGY_ZERO1, "zero1 -> %d", c.parallel.strategy);
  /* train.seed is the key whose range is the whole of int64 (train.steps is bounded). */
  CHT_OK(ch_config_set(&c, "train.seed=9223372036854775807", NULL));
  CHT_ASSERT(c.train.seed == INT64_MAX, "int64 max");

  /* A custom origin prefixes the message; a failed set leaves the config as it was. */
  ch_config before = c;
  expect_error(ch_config_set(&c, "train.steps=0", "cli argument 3"), CH_ERR_CONFIG,
               "cli argument 3: train.steps: must be >= 1", "custom origin");
  CHT_ASSERT(!memcmp(&before, &c, sizeof c), "failed set changed the config");

  static const struct { const char *ov, *msg; } bad[] = {
    {"train.steps=0", "override 'train.steps=0': train.steps: must be >= 1, got 0"},
    {"train.steps", "override 'train.steps': expected key.sub=value"},
    {"=5", "override '=5': expected key.sub=value"},
    {"optim.lrr=1", "override 'optim.lrr=1': unknown key 'optim.lrr' (did you mean 'optim.lr'?)"},
    {"lr=1", "unknown key 'lr' (did you mean 'optim.lr'?)"},
    {"model=3", "override 'model=3': model is a section, not a value"},
    {"optim.lr=fast", "override 'optim.lr=fast': optim.lr: expected a number, got 'fast'"},
    {"optim.lr=-0.1", "optim.lr: must be > 0, got -0.1"},
    {"optim.lr=inf", "optim.lr: expected a finite number, got 'inf'"},
    {"optim.lr=[1, 2]", "override 'optim.lr=[1, 2]': optim.lr: expected a value, got a sequence"},
    {"optim.lr=a: b", "optim.lr: expected a value, got a mapping"},
    {"optim.lr='open", "override 'optim.lr='open': optim.lr: YAML syntax error"},
    {"optim.lr=", "override 'optim.lr=': optim.lr: missing value"},
    {"optim.beta2=1", "optim.beta2: must be in [0, 1), got 1"},
    {"optim.weight_decay=-1e-9", "optim.weight_decay: must be >= 0"},
    {"model.depth=3000000000", "model.depth: 3000000000 is out of range"},
    {"model.hidden=-5", "model.hidden: must be >= 1, got -5"},
    {"train.seed=9223372036854775808", "train.seed: 9223372036854775808 is out of range"},
    /* every integer key has a bound, named with the allowed range; nothing is cut to fit */
    {"train.batch_size=4611686018427387904",
     "override 'train.batch_size=4611686018427387904': train.batch_size: must be <= 4194304, "
     "got 4611686018427387904 (allowed: [1, 4194304])"},
    {"model.hidden=2147483648", "model.hidden: 2147483648 is out of range (allowed: [1, 1048576])"},
    {"model.hidden=2147483647", "model.hidden: must be <= 1048576, got 2147483647"},
    {"model.depth=-1", "model.depth: must be >= 0, got -1 (allowed: [0, 1024])"},
    {"model.n_embd=1000000", "model.n_embd: must be <= 65536"},
    {"model.context=2000000", "model.context: must be <= 1048576"},
    {"model.vocab_size=4294967296", "model.vocab_size: must be <= 16777216"},
    {"train.steps=9223372036854775807", "train.steps: must be <= 1000000000000"},
    {"train.micro_batch_size=4194305", "train.micro_batch_size: must be <= 4194304"},
    {"train.log_every=1000000000", "train.log_every: must be <= 1000000"},
    {"run.checkpoint.keep_last=99999999", "run.checkpoint.keep_last: must be <= 1000000"},
    {"parallel.prefetch=2", "parallel.prefetch: must be <= 1"},
    {"train.max_nonfinite_steps=0", "train.max_nonfinite_steps: must be >= 1"},
    {"train.steps=12abc", "train.steps: expected an integer, got '12abc'"},
    {"train.batch_size=1.5", "train.batch_size: expected an integer, got '1.5'"},
    {"train.batch_size=1e3", "train.batch_size: expected an integer, got '1e3'"},
    {"model.type=cnn", "override 'model.type=cnn': model.type: 'cnn' is not one of mlp|gpt"},
    {"model.type=MLP", "model.type: 'MLP' is not one of mlp|gpt"},
    {"parallel.strategy=zero4", "parallel.strategy: 'zero4' is not one of ddp|zero1|zero2|zero3"},
    {"parallel.overlap=maybe", "parallel.overlap: expected true or false"},
    {"run.dir=\"\"", "run.dir: must not be empty"},
    /* cross-key rules name the override that broke them */
    {"optim.warmup_steps=200",
     "override 'optim.warmup_steps=200': optim.warmup_steps (200) must be <= train.steps (100)"},
    {"optim.min_lr=0.01", "override 'optim.min_lr=0.01': optim.min_lr (0.01) must be <= optim.lr (0.001)"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    memset(&c, 0x11, sizeof c);
    before = c;
    expect_error(ch_config_load(NULL, &bad[i].ov, 1, &c), CH_ERR_CONFIG, bad[i].msg, bad[i].ov);
    CHT_ASSERT(!memcmp(&before, &c, sizeof c), "%s: failed load wrote the config", bad[i].ov);
  }
  /* A long value is cut in the message, not overflowing anything. */
  char long_ov[4096] = "run.dir=";
  memset(long_ov + 8, 'x', 3000);
  expect_error(ch_config_load(NULL, (const char *[]){long_ov}, 1, &c), CH_ERR_CONFIG,
               "run.dir: longer than 511 characters", "long run.dir");

  /* good.yaml sets warmup_steps 10; lowering train.steps below it blames that override. */
  const char *cross[] = {"train.steps=5"};
  expect_error(ch_config_load(file("good.yaml"), cross, 1, &c), CH_ERR_CONFIG,
               "override 'train.steps=5': optim.warmup_steps (10) must be <= train.steps (5)",
               "cross rule after file");
  /* ... and raising it again in a later override fixes it. */
  const char *fixed[] = {"train.steps=5", "train.steps=10"};
  CHT_OK(ch_config_load(file("good.yaml"), fixed, 2, &c));
}

static void test_file_errors(void) {
  static const struct { const char *file; int line; const char *msg; } bad[] = {
    {"e_number.yaml", 7, "optim.lr: expected a number, got 'fast'"},
    {"e_unknown.yaml", 3, "unknown key 'optim.lrr' (did you mean 'optim.lr'?)"},
    {"e_unknown_section.yaml", 1, "unknown key 'optimizer'"},
    {"e_enum.yaml", 5, "model.type: 'cnn' is not one of mlp|gpt"},
    {"e_duplicate.yaml", 4, "duplicate key 'train.steps' (first at line 2)"},
    {"e_syntax.yaml", 3, "YAML syntax error"},
    {"e_sequence.yaml", 2, "optim.lr: expected a value, got a sequence"},
    {"e_mapping.yaml", 2, "optim.lr: expected a value, got a mapping"},
    {"e_section.yaml", 3, "model is a section, not a value"},
    {"e_int_range.yaml", 2, "model.hidden: 99999999999 is out of range"},
    {"e_batch_range.yaml", 3, "train.batch_size: must be <= 4194304, got 4611686018427387904 "
                              "(allowed: [1, 4194304])"},
    {"e_int64_range.yaml", 2, "train.seed: 99999999999999999999 is out of range"},
    {"e_junk.yaml", 2, "train.steps: expected an integer, got '12abc'"},
    {"e_int_float.yaml", 2, "train.batch_size: expected an integer, got '1.5'"},
    {"e_bool.yaml", 2, "parallel.overlap: expected true or false (yes/no, on/off, 1/0), got 'maybe'"},
    {"e_range.yaml", 2, "optim.momentum: must be in [0, 1), got 1"},
    {"e_cross.yaml", 3, "optim.min_lr (0.1) must be <= optim.lr (0.01)"},
    {"e_toplevel.yaml", 1, "expected a mapping of keys at the top level, got a sequence"},
    {"e_alias.yaml", 3, "aliases (*name) are not supported"},
    {"e_multidoc.yaml", 3, "only one YAML document is allowed"},
    {"e_missing_value.yaml", 2, "optim.lr: missing value"},
    {"e_empty_string.yaml", 2, "run.dir: must not be empty"},
    {"e_nan.yaml", 2, "optim.eps: expected a finite number, got 'nan'"},
    {"e_complex_key.yaml", 1, "a key must be a scalar, not a sequence"},
  };
  char needle[2048];
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ch_config c, before;
    memset(&c, 0x22, sizeof c);
    before = c;
    snprintf(needle, sizeof needle, "%s:%d: %s", file(bad[i].file), bad[i].line, bad[i].msg);
    expect_error(ch_config_load(file(bad[i].file), NULL, 0, &c), CH_ERR_CONFIG, needle, bad[i].file);
    CHT_ASSERT(!memcmp(&before, &c, sizeof c), "%s: failed load wrote the config", bad[i].file);
  }
  ch_config c;
  expect_error(ch_config_load(file("no_such.yaml"), NULL, 0, &c), CH_ERR_IO,
               file("no_such.yaml"), "missing file");
  expect_error(ch_config_load(g_files, NULL, 0, &c), CH_ERR_IO, g_files, "a directory");
}

/* Writes `text` to <tmp>/name and returns the path (static buffer). */
static const char *write_tmp(const char *name, const char *text) {
  static char path[512];
  snprintf(path, sizeof path, "%s/%s", g_tmp, name);
  FILE *f = fopen(path, "w");
  CHT_ASSERT(f && fputs(text, f) >= 0 && fclose(f) == 0, "cannot write %s", path);
  return path;
}

/* Dumps `c`, reloads the dump and checks the result is bit-identical (the struct and the text). */
static void round_trip(const ch_config *c, const char *what) {
  char *y1 = ch_config_to_yaml(c);
  CHT_ASSERT(y1, "%s: to_yaml returned NULL", what);
  ch_config back;
  ch_status st = ch_config_load(write_tmp("rt.yaml", y1), NULL, 0, &back);
  CHT_ASSERT(st == CH_OK, "%s: reloading\n%s\nfailed: %s", what, y1, ch_error_message());
  char *y2 = ch_config_to_yaml(&back);
  CHT_ASSERT(!memcmp(c, &back, sizeof back), "%s: round trip changed the config:\n%s\n---\n%s",
             what, y1, y2);
  CHT_ASSERT(!strcmp(y1, y2), "%s: dump differs after the round trip", what);
  free(y1);
  free(y2);
}

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_u64(void) { /* xorshift64* */
  g_rng ^= g_rng >> 12, g_rng ^= g_rng << 25, g_rng ^= g_rng >> 27;
  return g_rng * 2685821657736338717ull;
}
/* Uniform in (0, 1) with all 53 bits random, so decimal printing has to be exact. */
static double next_unit(void) { return ((double)(next_u64() >> 11) + 0.5) / 9007199254740992.0; }

static void test_round_trip(void) {
  ch_config c;
  ch_config_defaults(&c);
  round_trip(&c, "defaults");
  char *y = ch_config_to_yaml(&c);
  int leaves = 0; /* lines of the form "  key: value  # help" (section lines have no help) */
  for (const char *p = y; (p = strchr(p, '\n')); p++) {
    const char *end = strchr(p + 1, '\n');
    const char *hash = strstr(p + 1, "  # ");
    leaves += hash && (!end || hash < end);
  }
  CHT_ASSERT(leaves == 63, "expected 63 keys in the dump, found %d:\n%s", leaves, y);
  /* floats always carry a '.', so that YAML 1.1 readers (PyYAML) also see floats */
  CHT_ASSERT(strstr(y, "\n  lr: 0.001 ") && strstr(y, "\n  eps: 1.0e-08 ") &&
                 strstr(y, "\n  bucket_mb: 25.0 ") && strstr(y, "\n  overlap: true ") &&
                 strstr(y, "\nmodel:\n  type: mlp ") && strstr(y, "\n  path: examples/digits/digits.h5 "),
             "unexpected dump:\n%s", y);
  free(y);

  CHT_OK(ch_config_load(file("good.yaml"), NULL, 0, &c));
  round_trip(&c, "good.yaml");

  static const char *const strings[] = {
    "we \"ird\" path: #1\t\\x", "yes", "123", "-x", "\xc3\xbc" "n\xc3\xaf" "code/\xc3\x9f", " lead",
    "trail ", "null", "~", "a\nb", "[x]", "{y}", "*z", "&w", "!t", "%p", "@q", "`r", "'s'", "1e5",
    "x\x7fy", ".inf", "- item", "? k", "k: v", "0x1F"};
  for (int it = 0; it < 200; it++) {
    ch_config_defaults(&c);
    c.model.type = (int)(next_u64() % 2);
    c.model.depth = (int)(next_u64() % 1000);
    c.model.hidden = 1 + (int)(next_u64() % (1u << 20)); /* the key's whole range */
    c.optim.lr = next_unit() * 10;
    c.optim.min_lr = c.optim.lr * next_unit();
    c.optim.weight_decay = next_unit() * 1e-3;
    c.optim.momentum = next_unit();
    c.optim.beta1 = next_unit();
    c.optim.beta2 = 1 - next_unit() * 1e-3;
    c.optim.eps = next_unit() * 1e-310; /* subnormal */
    c.optim.grad_clip = next_unit() * 1e6;
    c.train.steps = 1 + (int64_t)(next_u64() % 1000000000000ull);
    c.optim.warmup_steps = (int64_t)(next_u64() % (uint64_t)c.train.steps);
    c.train.seed = (int64_t)(next_u64() >> 1);
    c.parallel.bucket_mb = next_unit() * 1e3;
    c.parallel.first_bucket_mb = next_unit() * 1e-3;
    c.parallel.overlap = (int)(next_u64() % 2);
    memset(c.data.path, 0, sizeof c.data.path);
    strcpy(c.data.path, strings[it % (sizeof strings / sizeof strings[0])]);
    CHT_OK(ch_config_validate(&c));
    round_trip(&c, c.data.path);
  }
}

/* Collects the warnings of a load. */
typedef struct warnings {
  int n;
  char text[8][1400];
} warnings;

static void collect(void *ctx, const char *message) {
  warnings *w = ctx;
  if (w->n < 8) snprintf(w->text[w->n], sizeof w->text[0], "%s", message);
  w->n++;
}

/* Loads `path` with `ov` and checks the warnings: exactly `n`, the i-th containing want[i]. */
static void expect_warnings(const char *path, const char *const *ov, int nov, int n,
                            const char *const *want) {
  warnings w = {0};
  ch_config c;
  CHT_OK(ch_config_load_warn(path, ov, nov, &c, collect, &w));
  CHT_ASSERT(w.n == n, "%s: %d warnings, expected %d (first: %s)", path ? path : "(none)", w.n, n,
             w.n ? w.text[0] : "-");
  for (int i = 0; i < n; i++)
    CHT_ASSERT(strstr(w.text[i], want[i]), "warning %d\n  %s\nlacks\n  %s", i, w.text[i], want[i]);
}

static void test_warnings(void) {
  char want[3][1200];
  /* A file that sets no key is named. */
  snprintf(want[0], sizeof want[0], "%s sets no key (empty or only comments)", file("empty.yaml"));
  expect_warnings(file("empty.yaml"), NULL, 0, 1, (const char *[]){want[0]});
  snprintf(want[0], sizeof want[0], "%s sets no key", file("comments.yaml"));
  expect_warnings(file("comments.yaml"), NULL, 0, 1, (const char *[]){want[0]});
  /* Keys of the other model family: named with file:line (or the override) and the family. */
  snprintf(want[0], sizeof want[0], "%s:4: model.depth has no effect: it is a key of model.type "
           "mlp, and model.type is gpt", file("good.yaml"));
  snprintf(want[1], sizeof want[1], "%s:5: model.hidden has no effect", file("good.yaml"));
  snprintf(want[2], sizeof want[2], "%s:6: model.activation has no effect", file("good.yaml"));
  expect_warnings(file("good.yaml"), NULL, 0, 3, (const char *[]){want[0], want[1], want[2]});
  expect_warnings(NULL, (const char *[]){"model.type=gpt", "model.hidden=64"}, 2, 1,
                  (const char *[]){"override 'model.hidden=64': model.hidden has no effect: it "
                                   "is a key of model.type mlp, and model.type is gpt"});
  expect_warnings(NULL, (const char *[]){"model.n_embd=64"}, 1, 1,
                  (const char *[]){"override 'model.n_embd=64': model.n_embd has no effect: it "
                                   "is a key of model.type gpt, and model.type is mlp"});
  /* Set to the default (as in a dumped config, which lists every key): nothing to warn about. */
  expect_warnings(NULL, (const char *[]){"model.type=gpt", "model.hidden=128"}, 2, 0, NULL);
  ch_config c;
  ch_config_defaults(&c);
  c.model.type = CH_MODEL_GPT;
  char *dump = ch_config_to_yaml(&c);
  CHT_ASSERT(dump, "dump");
  expect_warnings(write_tmp("gpt_dump.yaml", dump), NULL, 0, 0, NULL);
  free(dump);
  /* ch_config_load itself stays silent, and a failed load warns about nothing. */
  warnings w = {0};
  CHT_ASSERT(ch_config_load_warn(file("e_number.yaml"), (const char *[]){"model.n_embd=64"}, 1,
                                 &c, collect, &w) == CH_ERR_CONFIG && w.n == 0,
             "a failed load: %d warnings", w.n);
  unlink(write_tmp("gpt_dump.yaml", ""));
}

static void test_write(void) {
  ch_config c;
  CHT_OK(ch_config_load(file("good.yaml"), (const char *[]){"train.seed=77"}, 1, &c));
  char path[512], tmp[600];
  snprintf(path, sizeof path, "%s/resolved.yaml", g_tmp);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  write_tmp("resolved.yaml", "old contents\n");
  CHT_OK(ch_config_write(&c, path));
  CHT_ASSERT(access(tmp, F_OK) != 0, "temporary file left behind");
  ch_config back;
  CHT_OK(ch_config_load(path, NULL, 0, &back));
  CHT_ASSERT(!memcmp(&c, &back, sizeof c) && back.train.seed == 77, "written config differs");

  char bad[600];
  snprintf(bad, sizeof bad, "%s/missing_dir/x.yaml", g_tmp);
  expect_error(ch_config_write(&c, bad), CH_ERR_IO, bad, "write into a missing directory");

  ch_config broken = c;
  broken.train.steps = 0;
  expect_error(ch_config_validate(&broken), CH_ERR_CONFIG, "config: train.steps: must be >= 1, got 0",
               "validate");
  broken = c;
  broken.optim.min_lr = 1.0;
  expect_error(ch_config_validate(&broken), CH_ERR_CONFIG, "optim.min_lr (1) must be <= optim.lr (0.05)",
               "validate cross rule");
  unlink(path);
  unlink(write_tmp("rt.yaml", ""));
}

int main(int argc, char **argv) {
  CHT_ASSERT(argc == 2, "usage: %s <tests/config/files>", argv[0]);
  g_files = argv[1];
  const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  snprintf(g_tmp, sizeof g_tmp, "%s/cohort_test_config_XXXXXX", base);
  CHT_ASSERT(mkdtemp(g_tmp), "mkdtemp(%s) failed", g_tmp);
  test_defaults();
  test_files();
  test_overrides();
  test_file_errors();
  test_round_trip();
  test_warnings();
  test_write();
  rmdir(g_tmp);
  printf("test_config: ok\n");
  return 0;
}
