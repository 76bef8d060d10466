/* `cohort ckpt inspect|export|import`: checkpoint tools (import: ckpt_import.c). Serial; do not initialise MPI (the file is
 * opened with HDF5's default driver, docs/checkpoint-format.md). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cohort/ckpt.h"
#include "cohort/config.h"
#include "cohort/fs.h"
#include "cohort/model.h"

static void ckpt_usage(FILE *out) {
  fprintf(out,
          "usage: cohort ckpt inspect PATH\n"
          "       cohort ckpt export PATH OUT_DIR | OUT.safetensors\n"
          "       cohort ckpt import SRC OUT_DIR [--n-head N] [--tokenizer byte|gpt2] [--data DATA.h5]\n"
          "\n"
          "PATH is a checkpoint file (step-XXXXXXXX.h5) or a checkpoint directory, meaning the\n"
          "checkpoint its `latest` file names.\n"
          "\n"
          "  inspect  print the metadata, a summary of the stored config, and every tensor with its\n"
          "           shape, dtype and checksum status, each shape checked against the stored\n"
          "           model's; exit 0 when everything verifies, 1 otherwise\n"
          "  export   write the model tensors (not the optimizer state) as float32 safetensors with\n"
          "           PyTorch state_dict names, after verifying their checksums: OUT_DIR (created)\n"
          "           gets model.safetensors, or OUT.safetensors is written. A GPT also gets a\n"
          "           Hugging Face config.json beside it (GPT2LMHeadModel.from_pretrained loads the\n"
          "           folder); the MLP has no Hugging Face config: safetensors only\n"
          "  import   turn a Hugging Face GPT-2 (SRC: a folder with config.json and\n"
          "           model.safetensors, or a .safetensors file; F32, F16 or BF16) into a cohort\n"
          "           checkpoint OUT_DIR/step-00000000.h5 with `latest` (step 0, no optimizer\n"
          "           state: train from it with run.init_from=OUT_DIR). A model cohort would compute\n"
          "           differently is refused (exit 2), naming why.\n"
          "           --n-head N        heads, for a .safetensors without a config.json beside it\n"
          "           --data DATA.h5    token data whose tokenizer the model uses (cohort serve and\n"
          "                             generate read it from there; otherwise give them --data)\n"
          "           --tokenizer K     byte or gpt2 (recorded; default: from --data, gpt2 for a\n"
          "                             vocabulary of >= 50257, byte for 256)\n");
}

int cli_resolve_checkpoint(const char *cmd, const char *arg, char *out, size_t size) {
  if (ch_ckpt_resolve(arg, out, size) == CH_OK) return 0;
  fprintf(stderr, "%s: %s\n", cmd, ch_error_message());
  return 1;
}

static const char *enum_name(int v, const char *const *names, int n) {
  return v >= 0 && v < n ? names[v] : "?";
}

/* The spec table the checkpoint's tensors must match, in *layout (layout->params NULL when no
 * model can be built): from the model attributes, as every loader builds it (*shapes = 1), or
 * for a file without them (format version 1) from the stored config's model keys, whose names
 * do not depend on the data's feature and class counts (1 and 2 stand in), but whose shapes do
 * (*shapes = 0: names only). */
static void spec_layout(const ch_ckpt_meta *m, const ch_model_cfg *stored, ch_layout *layout,
                        int *shapes) {
  memset(layout, 0, sizeof *layout);
  *shapes = m->has_model;
  if (!m->has_model && !stored) return;
  ch_model *model;
  ch_status st = m->has_model ? ch_model_create(ch_backend_cpu(), &m->model.model,
                                                m->model.features, m->model.classes, 0, &model)
                              : ch_model_create(ch_backend_cpu(), stored, 1, 2, 0, &model);
  if (st != CH_OK) return; /* a model this build cannot make */
  const ch_layout *l = ch_model_layout(model);
  if (ch_layout_create(l->params, l->nparams, layout) != CH_OK) memset(layout, 0, sizeof *layout);
  ch_model_destroy(model);
}

/* Prints the config summary from the stored YAML text; loads it through the config parser (via
 * a temporary file), so the values are the validated ones. Returns 1 with its model keys in
 * *stored when it parses, else 0. */
static int print_config(const char *text, ch_model_cfg *stored) {
  const char *dir = getenv("TMPDIR");
  char tmp[CH_PATH_MAX];
  snprintf(tmp, sizeof tmp, "%s/cohort-ckpt-config-XXXXXX", dir && dir[0] ? dir : "/tmp");
  int fd = mkstemp(tmp);
  FILE *fp = fd >= 0 ? fdopen(fd, "w") : NULL;
  if (!fp && fd >= 0) close(fd);
  for (const char *line = text; fp && *line;) {
    size_t len = strcspn(line, "\n");
    /* The trainer stores an unset string key (run.checkpoint.dir) as "", which the loader
     * rejects (no string key may be empty); dropping the line gives the same default. */
    const char *colon = memchr(line, ':', len);
    if (!colon || strncmp(colon, ": \"\"", 4) != 0) fprintf(fp, "%.*s\n", (int)len, line);
    line += len + (line[len] == '\n');
  }
  int ok = fp && !ferror(fp);
  if (fp && fclose(fp) != 0) ok = 0;
  ch_config cfg;
  ch_status st = ok ? ch_config_load(tmp, NULL, 0, &cfg) : CH_ERR_IO;
  if (fd >= 0) unlink(tmp);
  if (st != CH_OK) {
    printf("config          (cannot be parsed by this cohort: %s)\n",
           ok ? ch_error_message() : "cannot write a temporary file");
    return 0;
  }
  static const char *const models[] = {"mlp", "gpt"}, *const acts[] = {"relu", "gelu"},
                           *const optims[] = {"sgd", "adamw"};
  if (cfg.model.type == CH_MODEL_GPT)
    printf("model           gpt, n_layer %d, n_head %d, n_embd %d, context %d\n", cfg.model.n_layer,
           cfg.model.n_head, cfg.model.n_embd, cfg.model.context);
  else
    printf("model           %s, depth %d, hidden %d, %s\n", enum_name(cfg.model.type, models, 2),
           cfg.model.depth, cfg.model.hidden, enum_name(cfg.model.activation, acts, 2));
  printf("optimizer       %s, lr %g\n", enum_name(cfg.optim.type, optims, 2), cfg.optim.lr);
  printf("batch size      %" PRId64 " (global)\n", cfg.train.batch_size);
  printf("steps           %" PRId64 " (train.steps)\n", cfg.train.steps);
  *stored = cfg.model;
  return 1;
}

static void shape_str(const ch_ckpt_tensor *t, char *out, size_t size) {
  if (t->ndim > CH_MAX_DIMS) {
    snprintf(out, size, "(%d-D)", t->ndim);
    return;
  }
  size_t n = (size_t)snprintf(out, size, "[");
  for (int d = 0; d < t->ndim && n < size; d++)
    n += (size_t)snprintf(out + n, size - n, "%s%" PRId64, d ? ", " : "", t->shape[d]);
  if (n < size) snprintf(out + n, size - n, "]");
}

/* The spec row of dataset `name` ("/model/<row name>"), or NULL. */
static const ch_param_spec *spec_of(const ch_layout *spec, const char *name) {
  if (strncmp(name, "/model/", 7) != 0) return NULL;
  for (int p = 0; spec->params && p < spec->nparams; p++)
    if (!strcmp(spec->params[p].name, name + 7)) return &spec->params[p];
  return NULL;
}

/* Whether tensor t has the shape of spec row s. */
static int same_shape(const ch_ckpt_tensor *t, const ch_param_spec *s) {
  int same = t->ndim == s->ndim;
  for (int d = 0; same && d < s->ndim; d++) same = t->shape[d] == s->shape[d];
  return same;
}

/* The checkpoint file `arg` names (see cli_resolve_checkpoint), opened: returns 0, or 1 after a
 * message prefixed by `cmd`. */
static int open_checkpoint(const char *cmd, const char *arg, char *path, size_t size,
                           ch_ckpt_file *f) {
  if (cli_resolve_checkpoint(cmd, arg, path, size)) return 1;
  if (ch_ckpt_open(path, f) == CH_OK) return 0;
  fprintf(stderr, "%s: %s\n", cmd, ch_error_message());
  return 1;
}

static int cli_inspect(const char *arg) {
  char path[CH_PATH_MAX * 2 + 16];
  ch_ckpt_file f;
  if (open_checkpoint("cohort ckpt inspect", arg, path, sizeof path, &f)) return 1;
  const ch_ckpt_meta *m = &f.meta;
  printf("file            %s\n", path);
  printf("format          %s, version %d\n", CH_CKPT_FORMAT, f.format_version);
  printf("step            %" PRId64 "\n", m->step);
  printf("samples         %" PRId64 "\n", m->samples);
  printf("epoch           %.4f\n", m->epoch);
  printf("strategy        %s\n", m->strategy);
  printf("world size      %d (at save)\n", m->world_size);
  printf("cohort version  %s\n", m->version);
  printf("created         %s\n", m->created);
  /* a mismatch fails ch_ckpt_open already */
  printf("attributes      %s\n", m->attrs_verified ? "checksum ok (attrs_crc32)"
                                                   : "not covered by a checksum (format version < 3)");
  if (m->has_model) /* what loaders build the model from (format version 2) */
    printf("data            %" PRId64 " features, %" PRId64 " classes, tokenizer %s, %s\n",
           m->model.features, m->model.classes, m->model.tokenizer, m->model.data_path);
  else
    printf("data            (no model attributes: format version 1, not loadable as a model)\n");
  if (m->has_model && m->model.n_class_names > 0) { /* string labels (data_class_names) */
    const char *p = m->model.class_names;
    printf("class names    ");
    for (int i = 0; i < m->model.n_class_names && i < 16; i++, p += strlen(p) + 1)
      printf(" %d=%s", i, p);
    printf("%s\n", m->model.n_class_names > 16 ? " ..." : "");
  }
  ch_layout spec;
  ch_model_cfg stored;
  int shapes, parsed = print_config(m->config, &stored);
  spec_layout(m, parsed ? &stored : NULL, &spec, &shapes);

  int width = (int)strlen("dataset"), bad = 0, missing = 0;
  for (int i = 0; i < f.ntensors; i++)
    if ((int)strlen(f.tensors[i].name) > width) width = (int)strlen(f.tensors[i].name);
  printf("\n%-*s  %-14s %-8s %s\n", width, "dataset", "shape", "dtype", "checksum");
  int64_t bytes = 0;
  for (int i = 0; i < f.ntensors; i++) {
    const ch_ckpt_tensor *t = &f.tensors[i];
    char shape[96], status[160];
    shape_str(t, shape, sizeof shape);
    ch_ckpt_check c;
    fflush(stdout); /* keep the table and the messages in order when both go to one file */
    const ch_param_spec *ps = shapes ? spec_of(&spec, t->name) : NULL;
    if (ps && !same_shape(t, ps)) {
      char want[96];
      ch_ckpt_tensor w = {.ndim = ps->ndim};
      for (int d = 0; d < ps->ndim; d++) w.shape[d] = ps->shape[d];
      shape_str(&w, want, sizeof want);
      snprintf(status, sizeof status, "MISMATCH shape (the model needs %s)", want);
      fprintf(stderr, "cohort ckpt inspect: %s: dataset %s has shape %s; the stored model needs "
              "%s\n", path, t->name, shape, want);
      bad++;
    } else if (ch_ckpt_read_tensor(&f, t, NULL, &c) != CH_OK) {
      fprintf(stderr, "cohort ckpt inspect: %s\n", ch_error_message());
      snprintf(status, sizeof status, "ERROR (unreadable)");
      bad++;
    } else if (!c.has_crc) {
      snprintf(status, sizeof status, "missing (no crc32 attribute)");
      fprintf(stderr, "cohort ckpt inspect: %s: dataset %s has no crc32 attribute\n", path, t->name);
      bad++;
    } else if (c.stored != c.computed) {
      snprintf(status, sizeof status, "MISMATCH (stored %08x, computed %08x)", c.stored, c.computed);
      fprintf(stderr, "cohort ckpt inspect: %s: checksum mismatch in dataset %s\n", path, t->name);
      bad++;
    } else {
      snprintf(status, sizeof status, "ok");
    }
    if (t->numel > 0) bytes += t->numel * (int64_t)sizeof(float);
    printf("%-*s  %-14s %-8s %s\n", width, t->name, shape, t->dtype, status);
  }
  /* Every parameter of the stored config's spec table must be in /model. */
  for (int p = 0; spec.params && p < spec.nparams; p++) {
    if (ch_ckpt_model_tensor(&f, spec.params[p].name)) continue;
    char name[CH_NAME_MAX + 16];
    snprintf(name, sizeof name, "/model/%s", spec.params[p].name);
    fflush(stdout);
    printf("%-*s  %-14s %-8s %s\n", width, name, "-", "-", "missing (dataset absent)");
    fprintf(stderr, "cohort ckpt inspect: %s: dataset %s is missing\n", path, name);
    missing++;
  }
  if (spec.params) ch_layout_destroy(&spec);
  int n = f.ntensors;
  ch_ckpt_close(&f);
  printf("\n%d tensors, %.2f MiB: ", n, (double)bytes / 1048576.0);
  if (bad + missing == 0) {
    printf("all checksums ok\n");
    return 0;
  }
  printf("%d corrupt or unverifiable, %d missing\n", bad, missing);
  fflush(stdout);
  fprintf(stderr, "cohort ckpt inspect: %s: %d of %d tensors failed verification\n", path,
          bad + missing, n + missing);
  return 1;
}

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && !strcmp(s + n - k, suffix);
}

/* OUT.safetensors: that file, config.json beside it; any other OUT: a directory (created)
 * receiving model.safetensors and config.json. A GPT gets config.json (Hugging Face's
 * GPT2Config); the MLP has none and gets the safetensors only. */
static int cli_export(const char *arg, const char *out) {
  const char *cmd = "cohort ckpt export";
  char path[CH_PATH_MAX * 2 + 16], weights[CH_PATH_MAX + 32], config[CH_PATH_MAX + 32];
  int dir_form = !ends_with(out, ".safetensors");
  const char *slash = strrchr(out, '/');
  if (strlen(out) >= CH_PATH_MAX) {
    fprintf(stderr, "%s: output path too long\n", cmd);
    return 2;
  }
  if (dir_form) {
    snprintf(weights, sizeof weights, "%s/model.safetensors", out);
    snprintf(config, sizeof config, "%s/config.json", out);
  } else {
    snprintf(weights, sizeof weights, "%s", out);
    snprintf(config, sizeof config, "%.*sconfig.json", slash ? (int)(slash - out + 1) : 0, out);
  }
  ch_ckpt_file f;
  if (open_checkpoint(cmd, arg, path, sizeof path, &f)) return 1;
  int n = 0, has_model = f.meta.has_model, version = f.format_version;
  int gpt = has_model && f.meta.model.model.type == CH_MODEL_GPT;
  int64_t bytes = 0;
  ch_status st = dir_form ? ch_mkdir_p(out) : CH_OK;
  if (st == CH_OK) st = ch_ckpt_export_safetensors(&f, weights, &n, &bytes);
  if (st == CH_OK && gpt) st = ch_ckpt_hf_config_write(&f, config);
  int64_t step = f.meta.step;
  ch_ckpt_close(&f);
  if (st != CH_OK) {
    fprintf(stderr, "%s: %s\n", cmd, ch_error_message());
    return st == CH_ERR_INVALID ? 2 : 1;
  }
  printf("wrote %s: %d model tensors of step %" PRId64 " (%" PRId64 " bytes) from %s\n", weights,
         n, step, bytes, path);
  if (gpt) printf("wrote %s: the Hugging Face GPT2Config (GPT2LMHeadModel.from_pretrained)\n", config);
  else if (has_model)
    printf("no config.json: the MLP has no Hugging Face config (safetensors only)\n");
  else
    printf("no config.json: format version %d has no model attributes to describe\n", version);
  return 0;
}

int cli_ckpt(int argc, char **argv) {
  if (cli_help(argc, argv, ckpt_usage)) return 0;
  if (argc == 3 && !strcmp(argv[1], "inspect")) return cli_inspect(argv[2]);
  if (argc == 4 && !strcmp(argv[1], "export")) return cli_export(argv[2], argv[3]);
  if (argc >= 2 && !strcmp(argv[1], "import")) return cli_ckpt_import(argc - 1, argv + 1, ckpt_usage);
  if (argc >= 2 && strcmp(argv[1], "inspect") && strcmp(argv[1], "export"))
    fprintf(stderr, "cohort ckpt: unknown subcommand '%s' (expected: inspect, export, import)\n\n",
            argv[1]);
  ckpt_usage(stderr);
  return 2;
}
