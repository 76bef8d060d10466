/* `cohort data csv|jsonl|text ...`: dataset converters. Serial; does not initialise MPI. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cohort/data.h"

static void data_usage(FILE *out) {
  fprintf(out,
          "usage: cohort data csv IN.csv[.gz] OUT.h5 [options]\n"
          "       cohort data jsonl IN.jsonl[.gz] OUT.h5 [options]\n"
          "       cohort data text IN[.gz]... OUT.h5 [--val-fraction F]\n"
          "                        [--tokenizer byte|gpt2 --vocab encoder.json --merges vocab.bpe]\n"
          "\n"
          "csv, jsonl: convert a table (CSV per RFC 4180, or one JSON object or array per line;\n"
          "optionally gzipped) into a cohort dataset: /train/x, /train/y, /val/x, /val/y with a\n"
          "stratified, seeded split; string labels become ids in sorted order, their names in\n"
          "/class_names. Every row is written; a bad value stops with FILE:LINE (exit 2).\n"
          "\n"
          "  --label-column K   the label column: 0-based index, negative from the end, or a\n"
          "                     header name (default: -1, the last)\n"
          "  --header H         yes, no or auto (default): whether the first row names the\n"
          "                     columns; auto says what it decided and why\n"
          "  --fill VALUE       replace missing feature values (empty, NA, N/A, NaN, ?, JSON\n"
          "                     null or a missing key) by VALUE (default: they are errors)\n"
          "  --val-fraction F   fraction of each class put in the validation split, 0 <= F < 1\n"
          "                     (default 0.2)\n"
          "  --seed S           seed of the split (default 0)\n"
          "\n"
          "text: concatenates text files (plain or gzipped; a '\\n' is added after a file that\n"
          "does not end with one when another file follows), tokenizes them and writes a token\n"
          "dataset: /train/tokens, /val/tokens (int32) and the tokenizer. Prints the unigram\n"
          "entropy of the train tokens: the loss of a model that ignores context.\n"
          "\n"
          "  --val-fraction F   the last round(F * tokens) tokens form the validation split,\n"
          "                     0 < F < 1 (default 0.1); each split needs at least 2 tokens\n"
          "  --tokenizer T      byte (default; vocab 256) or gpt2 (byte-pair encoding)\n"
          "  --vocab FILE       gpt2: encoder.json (token -> id)\n"
          "  --merges FILE      gpt2: vocab.bpe (merges in rank order)\n");
}

static const char *g_sub = "csv"; /* the subcommand, for messages */

static int usage_error(const char *fmt, const char *arg) {
  fprintf(stderr, "cohort data %s: ", g_sub);
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\n(run 'cohort data %s --help' for usage)\n", g_sub);
  return 2;
}

/* Option argv[*i], "--name VALUE" or "--name=VALUE", one of names[0..n): returns its index and
 * its value in *val, *i advanced past a separate value; or -1 after a usage error (an unknown
 * option, a missing value). */
static int take_option(int argc, char **argv, int *i, const char *const *names, int n,
                       const char **val) {
  const char *a = argv[*i], *eq = strchr(a, '=');
  size_t len = eq ? (size_t)(eq - a) : strlen(a);
  int k = 0;
  while (k < n && !(strlen(names[k]) == len && !strncmp(a, names[k], len))) k++;
  if (k == n) return usage_error("unknown option '%s'", a), -1;
  *val = eq ? eq + 1 : (*i + 1 < argc ? argv[++*i] : NULL);
  if (!*val) return usage_error("option '%s' needs a value", a), -1;
  return k;
}

static int parse_frac(const char *s, double *v) {
  char *end;
  errno = 0;
  double x = strtod(s, &end);
  if (!*s || *end || errno || !(x >= 0 && x < 1)) return 1;
  *v = x;
  return 0;
}

static int parse_u64(const char *s, uint64_t *v) {
  char *end;
  errno = 0;
  if (!*s || *s == '-') return 1;
  unsigned long long x = strtoull(s, &end, 0);
  if (*end || errno) return 1;
  *v = (uint64_t)x;
  return 0;
}

/* A --label-column value: an integer is an index, anything else a header name. */
static void parse_label_column(const char *s, ch_csv_opts *o) {
  char *end;
  errno = 0;
  long x = strtol(s, &end, 10);
  if (*s && !*end && !errno && x >= INT_MIN && x <= INT_MAX) {
    o->label_column = (int)x;
    o->label_name = NULL;
  } else {
    o->label_name = s;
  }
}

/* `cohort data csv|jsonl`: the same options, the same table builder. */
static int cli_data_table(int argc, char **argv, int jsonl) {
  ch_csv_opts o = {.label_column = -1, .val_fraction = 0.2, .seed = 0};
  const char *pos[2] = {NULL, NULL};
  int npos = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      data_usage(stdout);
      return 0;
    }
    if (a[0] == '-' && a[1] == '-') {
      static const char *const opts[] = {"--label-column", "--val-fraction", "--seed", "--header", "--fill"};
      const char *val;
      int k = take_option(argc, argv, &i, opts, 5, &val);
      if (k < 0) return 2;
      if (k == 0 && !*val) return usage_error("--label-column: '%s' is not a column index or name", val);
      if (k == 0) parse_label_column(val, &o);
      if (k == 1 && parse_frac(val, &o.val_fraction))
        return usage_error("--val-fraction: '%s' is not a number in [0, 1)", val);
      if (k == 2 && parse_u64(val, &o.seed))
        return usage_error("--seed: '%s' is not a non-negative integer", val);
      if (k == 3) {
        if (!strcmp(val, "yes")) o.header = CH_HEADER_YES;
        else if (!strcmp(val, "no")) o.header = CH_HEADER_NO;
        else if (!strcmp(val, "auto")) o.header = CH_HEADER_AUTO;
        else return usage_error("--header: '%s' is not yes, no or auto", val);
      }
      if (k == 4) {
        char *end;
        errno = 0;
        o.fill_value = strtod(val, &end);
        if (!*val || *end || errno || !isfinite(o.fill_value))
          return usage_error("--fill: '%s' is not a finite number", val);
        o.fill = 1;
      }
      continue;
    }
    if (npos == 2) return usage_error("unexpected argument '%s'", a);
    pos[npos++] = a;
  }
  if (npos < 2) {
    data_usage(stderr);
    return 2;
  }
  ch_csv_stats s;
  ch_status st = jsonl ? ch_data_jsonl_convert(pos[0], pos[1], &o, &s)
                       : ch_data_csv_convert(pos[0], pos[1], &o, &s);
  if (s.header_note[0]) fprintf(st == CH_OK ? stdout : stderr, "%s\n", s.header_note);
  if (st != CH_OK) {
    fprintf(stderr, "cohort data %s: %s: %s\n", g_sub, ch_status_str(st), ch_error_message());
    /* FORMAT: the input is invalid; INVALID: an option does not fit the file */
    return st == CH_ERR_INVALID || st == CH_ERR_FORMAT ? 2 : 1;
  }
  if (s.warning[0]) fprintf(stderr, "%s\n", s.warning);
  printf("wrote %s\n"
         "  rows      %" PRId64 " read, %" PRId64 " written (train %" PRId64 ", val %" PRId64 ")\n"
         "  features  %" PRId64 "\n"
         "  classes   %d%s\n"
         "  label     column %d%s%s%s\n",
         pos[1], s.rows, s.train_rows + s.val_rows, s.train_rows, s.val_rows, s.features,
         s.num_classes, s.named_classes ? " (string labels, names in /class_names)" : "",
         s.label_column, s.label_name[0] ? " ('" : "", s.label_name, s.label_name[0] ? "')" : "");
  if (o.fill) printf("  filled    %" PRId64 " missing values with %g\n", s.filled, o.fill_value);
  return 0;
}

/* Whole file into a malloc'ed buffer. Returns 0, or -1 with errno. */
static int slurp(const char *path, char **data, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return -1;
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  for (;;) {
    if (!buf) {
      fclose(f);
      errno = ENOMEM;
      return -1;
    }
    n += fread(buf + n, 1, cap - n, f);
    if (n < cap) break;
    char *nb = realloc(buf, cap * 2);
    if (!nb) free(buf);
    buf = nb;
    cap *= 2;
  }
  int err = ferror(f) ? EIO : 0;
  fclose(f);
  if (err) {
    free(buf);
    errno = err;
    return -1;
  }
  *data = buf;
  *len = n;
  return 0;
}

/* The GPT-2 tokenizer from the two files; prints the failure itself (returns NULL). */
static ch_tokenizer *load_gpt2(const char *vocab, const char *merges) {
  char *enc = NULL, *mer = NULL;
  size_t enc_len = 0, mer_len = 0;
  ch_tokenizer *tok = NULL;
  if (slurp(vocab, &enc, &enc_len) != 0) {
    fprintf(stderr, "cohort data text: cannot read --vocab %s: %s\n", vocab, strerror(errno));
  } else if (slurp(merges, &mer, &mer_len) != 0) {
    fprintf(stderr, "cohort data text: cannot read --merges %s: %s\n", merges, strerror(errno));
  } else {
    ch_status st = ch_tokenizer_create_gpt2(enc, enc_len, mer, mer_len, &tok);
    if (st != CH_OK)
      fprintf(stderr, "cohort data text: %s: %s\n  (--vocab %s, --merges %s)\n", ch_status_str(st),
              ch_error_message(), vocab, merges);
  }
  free(enc);
  free(mer);
  return tok;
}

static int cli_data_text(int argc, char **argv) {
  double frac = 0.1;
  const char *tokenizer = "byte", *vocab = NULL, *merges = NULL;
  const char **pos = calloc((size_t)argc, sizeof *pos);
  int npos = 0, rc = 0;
  if (!pos) return 1;
  for (int i = 1; i < argc && !rc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      data_usage(stdout);
      free(pos);
      return 0;
    }
    if (a[0] == '-' && a[1] == '-') {
      static const char *const opts[] = {"--val-fraction", "--tokenizer", "--vocab", "--merges"};
      const char *val;
      int k = take_option(argc, argv, &i, opts, 4, &val);
      if (k < 0) rc = 2;
      else if (k == 0 && (parse_frac(val, &frac) || frac <= 0))
        rc = usage_error("--val-fraction: '%s' is not a number in (0, 1)", val);
      else if (k == 1 && strcmp(val, "byte") && strcmp(val, "gpt2"))
        rc = usage_error("--tokenizer: '%s' is not byte or gpt2", val);
      if (rc) break;
      if (k == 1) tokenizer = val;
      if (k == 2) vocab = val;
      if (k == 3) merges = val;
      continue;
    }
    pos[npos++] = a;
  }
  int gpt2 = !strcmp(tokenizer, "gpt2");
  if (!rc && npos < 2) {
    data_usage(stderr);
    rc = 2;
  } else if (!rc && gpt2 && (!vocab || !merges)) {
    rc = usage_error("%s", "--tokenizer gpt2 needs --vocab encoder.json and --merges vocab.bpe");
  } else if (!rc && !gpt2 && (vocab || merges)) {
    rc = usage_error("%s", "--vocab and --merges need --tokenizer gpt2");
  }
  if (rc) {
    free(pos);
    return rc;
  }
  ch_tokenizer *tok = NULL;
  ch_status st = gpt2 ? ((tok = load_gpt2(vocab, merges)) ? CH_OK : CH_ERR_FORMAT) : ch_tokenizer_create_byte(&tok);
  if (st != CH_OK) {
    if (!gpt2) fprintf(stderr, "cohort data text: %s\n", ch_error_message());
    free(pos);
    return 1;
  }
  ch_text_opts o = {.val_fraction = frac, .tok = tok};
  ch_text_stats s;
  const char *out = pos[npos - 1];
  st = ch_data_text_convert(pos, npos - 1, out, &o, &s);
  ch_tokenizer_destroy(tok);
  free(pos);
  if (st != CH_OK) {
    fprintf(stderr, "cohort data text: %s: %s\n", ch_status_str(st), ch_error_message());
    return st == CH_ERR_INVALID ? 2 : 1; /* INVALID: the fraction does not fit the text */
  }
  const double ln2 = 0.69314718055994530942;
  printf("wrote %s\n"
         "  bytes      %" PRId64 "\n"
         "  tokens     %" PRId64 " (train %" PRId64 ", val %" PRId64 ")\n"
         "  tokenizer  %s, vocab %" PRId64 "\n"
         "  unigram entropy of train tokens: %.4f bits/token = %.4f nats/token\n",
         out, s.bytes, s.tokens, s.train_tokens, s.val_tokens, gpt2 ? "gpt2" : "byte", s.vocab,
         s.unigram_entropy_bits, s.unigram_entropy_bits * ln2);
  return 0;
}

int cli_data(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
    data_usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!strcmp(argv[1], "csv")) return cli_data_table(argc - 1, argv + 1, 0);
  if (!strcmp(argv[1], "jsonl")) {
    g_sub = "jsonl";
    return cli_data_table(argc - 1, argv + 1, 1);
  }
  if (!strcmp(argv[1], "text")) {
    g_sub = "text";
    return cli_data_text(argc - 1, argv + 1);
  }
  fprintf(stderr, "cohort data: unknown subcommand '%s' (expected: csv, jsonl, text)\n", argv[1]);
  return 2;
}
