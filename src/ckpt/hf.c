/* Hugging Face GPT-2 round trips (docs/checkpoint-format.md, "Hugging Face"): the config.json
 * that goes with an exported model.safetensors, so that GPT2LMHeadModel.from_pretrained loads
 * it, and the other way a GPT-2 folder (config.json + model.safetensors, or a bare
 * .safetensors) read into a cohort GPT's parameters. A model that would compute differently
 * from cohort's GPT (another activation, LayerNorm epsilon, MLP width, untied head, attention
 * scaling) is refused, never imported. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cJSON.h>

#include "ckpt/safetensors.h"
#include "cohort/ckpt.h"
#include "cohort/fs.h"

/* GPT-2 BPE's <|endoftext|>, the bos and eos of Hugging Face's gpt2 tokenizer. */
#define GPT2_EOT 50256

/* CH_GPT_LN_EPS in the fewest digits that read back as the same float ("1e-05"). */
static void eps_text(char *buf, size_t size) {
  for (int p = 1; p <= 9; p++) {
    snprintf(buf, size, "%.*g", p, (double)CH_GPT_LN_EPS);
    if (strtof(buf, NULL) == CH_GPT_LN_EPS) return;
  }
}

ch_status ch_ckpt_hf_config_write(const ch_ckpt_file *f, const char *path) {
  const ch_ckpt_model_info *mi = &f->meta.model;
  if (!f->meta.has_model || mi->model.type != CH_MODEL_GPT)
    return CH_FAIL(CH_ERR_INVALID, "%s: only a GPT has a Hugging Face config (GPT2Config)", f->path);
  const ch_ckpt_tensor *wte = ch_ckpt_model_tensor(f, "wte.weight");
  if (!wte || wte->ndim != 2)
    return CH_FAIL(CH_ERR_FORMAT, "%s: /model/wte.weight is missing or not 2-D", f->path);
  const ch_model_cfg *m = &mi->model;
  char eps[32], text[2048];
  eps_text(eps, sizeof eps);
  int gpt2 = !strcmp(mi->tokenizer, "gpt2");
  char eot[16] = "null";
  if (gpt2 && wte->shape[0] > GPT2_EOT) snprintf(eot, sizeof eot, "%d", GPT2_EOT);
  /* n_inner null: 4 n_embd, cohort's MLP width. Dropouts 0: an inference model (from_pretrained
   * puts it in eval mode anyway). */
  int n = snprintf(text, sizeof text,
                   "{\n"
                   "  \"architectures\": [\"GPT2LMHeadModel\"],\n"
                   "  \"model_type\": \"gpt2\",\n"
                   "  \"n_layer\": %d,\n"
                   "  \"n_head\": %d,\n"
                   "  \"n_embd\": %d,\n"
                   "  \"n_positions\": %d,\n"
                   "  \"n_ctx\": %d,\n"
                   "  \"vocab_size\": %" PRId64 ",\n"
                   "  \"n_inner\": null,\n"
                   "  \"activation_function\": \"gelu_new\",\n"
                   "  \"layer_norm_epsilon\": %s,\n"
                   "  \"tie_word_embeddings\": true,\n"
                   "  \"scale_attn_weights\": true,\n"
                   "  \"scale_attn_by_inverse_layer_idx\": false,\n"
                   "  \"reorder_and_upcast_attn\": false,\n"
                   "  \"resid_pdrop\": 0.0,\n"
                   "  \"embd_pdrop\": 0.0,\n"
                   "  \"attn_pdrop\": 0.0,\n"
                   "  \"initializer_range\": 0.02,\n"
                   "  \"bos_token_id\": %s,\n"
                   "  \"eos_token_id\": %s,\n"
                   "  \"torch_dtype\": \"float32\",\n"
                   "  \"cohort_tokenizer\": \"%s\",\n"
                   "  \"cohort_step\": %" PRId64 "\n"
                   "}\n",
                   m->n_layer, m->n_head, m->n_embd, m->context, m->context, wte->shape[0], eps,
                   eot, eot, mi->tokenizer, f->meta.step);
  if (n < 0 || n >= (int)sizeof text) return CH_FAIL(CH_ERR_INVALID, "config.json too long");
  return ch_write_file_atomic(path, text, (size_t)n);
}

/* ---- import ---------------------------------------------------------------------------- */

static int is_file(const char *p) {
  struct stat sb;
  return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

static ch_status read_text(const char *path, char **out) {
  FILE *fp = fopen(path, "rb");
  if (!fp) return CH_FAIL(CH_ERR_IO, "cannot open %s: %s", path, strerror(errno));
  char *buf = NULL;
  size_t len = 0, cap = 0;
  for (;;) {
    if (len + 4096 + 1 > cap) {
      cap = 2 * cap + 8192;
      char *b = cap > (64u << 20) ? NULL : realloc(buf, cap);
      if (!b) {
        free(buf);
        fclose(fp);
        return CH_FAIL(CH_ERR_INVALID, "%s: too large for a config.json", path);
      }
      buf = b;
    }
    size_t r = fread(buf + len, 1, 4096, fp);
    len += r;
    if (r < 4096) break;
  }
  int bad = ferror(fp);
  fclose(fp);
  if (bad) {
    free(buf);
    return CH_FAIL(CH_ERR_IO, "cannot read %s", path);
  }
  buf[len] = '\0';
  *out = buf;
  return CH_OK;
}

/* config.json's integer `key` into *v (absent: *v unchanged when `required` is 0). */
static ch_status json_int(const cJSON *root, const char *path, const char *key, int required,
                          int64_t *v) {
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, key);
  if (!e || cJSON_IsNull(e)) {
    if (required) return CH_FAIL(CH_ERR_INVALID, "%s: \"%s\" is missing", path, key);
    return CH_OK;
  }
  if (!cJSON_IsNumber(e) || e->valuedouble != floor(e->valuedouble) || e->valuedouble < 0 ||
      e->valuedouble > 1e9)
    return CH_FAIL(CH_ERR_INVALID, "%s: \"%s\" is not a non-negative integer", path, key);
  *v = (int64_t)e->valuedouble;
  return CH_OK;
}

/* A boolean key that must have the value `want` for cohort to compute the same (absent: the
 * default, `dflt`). */
static ch_status json_bool_is(const cJSON *root, const char *path, const char *key, int dflt,
                              int want, const char *why) {
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, key);
  int v = e && cJSON_IsBool(e) ? cJSON_IsTrue(e) : dflt;
  if (v != want)
    return CH_FAIL(CH_ERR_INVALID, "%s: \"%s\": %s is not supported: %s", path, key,
                   v ? "true" : "false", why);
  return CH_OK;
}

/* The shape config.json describes, checked against what cohort's GPT computes. *tied gets
 * tie_word_embeddings. */
static ch_status read_config(const char *path, ch_model_cfg *m, int *tied) {
  char *text = NULL;
  CH_CHECK(read_text(path, &text));
  cJSON *root = cJSON_Parse(text);
  free(text);
  ch_status st = CH_OK;
  int64_t L = 0, H = 0, C = 0, T = 0, V = 0, inner = -1;
  if (!cJSON_IsObject(root)) {
    st = CH_FAIL(CH_ERR_INVALID, "%s is not a JSON object", path);
    goto done;
  }
  const cJSON *type = cJSON_GetObjectItemCaseSensitive(root, "model_type");
  if (!cJSON_IsString(type) || strcmp(type->valuestring, "gpt2") != 0) {
    st = CH_FAIL(CH_ERR_INVALID, "%s: model_type is %s%s%s, not \"gpt2\": only GPT-2 models can "
                 "be imported", path, cJSON_IsString(type) ? "\"" : "",
                 cJSON_IsString(type) ? type->valuestring : "missing",
                 cJSON_IsString(type) ? "\"" : "");
    goto done;
  }
  CH_CHECK_GOTO(json_int(root, path, "n_layer", 1, &L), st, done);
  CH_CHECK_GOTO(json_int(root, path, "n_head", 1, &H), st, done);
  CH_CHECK_GOTO(json_int(root, path, "n_embd", 1, &C), st, done);
  CH_CHECK_GOTO(json_int(root, path, "n_positions", 1, &T), st, done);
  CH_CHECK_GOTO(json_int(root, path, "vocab_size", 1, &V), st, done);
  CH_CHECK_GOTO(json_int(root, path, "n_inner", 0, &inner), st, done);
  if (inner >= 0 && inner != 4 * C) {
    st = CH_FAIL(CH_ERR_INVALID, "%s: n_inner is %" PRId64 ": cohort's GPT has an MLP of 4 x "
                 "n_embd = %" PRId64 " (n_inner null or %" PRId64 ")", path, inner, 4 * C, 4 * C);
    goto done;
  }
  const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "activation_function");
  const char *a = cJSON_IsString(act) ? act->valuestring : "gelu_new"; /* GPT2Config's default */
  if (strcmp(a, "gelu_new") != 0 && strcmp(a, "gelu_pytorch_tanh") != 0) {
    st = CH_FAIL(CH_ERR_INVALID, "%s: activation_function \"%s\" is not supported: cohort's GPT "
                 "computes GELU's tanh approximation (\"gelu_new\" or \"gelu_pytorch_tanh\")",
                 path, a);
    goto done;
  }
  const cJSON *eps = cJSON_GetObjectItemCaseSensitive(root, "layer_norm_epsilon");
  if (eps && (!cJSON_IsNumber(eps) || (float)eps->valuedouble != CH_GPT_LN_EPS)) {
    char want[32];
    eps_text(want, sizeof want);
    st = CH_FAIL(CH_ERR_INVALID, "%s: layer_norm_epsilon %g is not supported: cohort's GPT uses "
                 "%s", path, cJSON_IsNumber(eps) ? eps->valuedouble : NAN, want);
    goto done;
  }
  CH_CHECK_GOTO(json_bool_is(root, path, "scale_attn_weights", 1, 1,
                             "cohort scales attention scores by 1/sqrt(head size)"), st, done);
  CH_CHECK_GOTO(json_bool_is(root, path, "scale_attn_by_inverse_layer_idx", 0, 0,
                             "cohort does not scale attention by layer"), st, done);
  CH_CHECK_GOTO(json_bool_is(root, path, "add_cross_attention", 0, 0,
                             "cohort's GPT has no cross-attention"), st, done);
  const cJSON *tie = cJSON_GetObjectItemCaseSensitive(root, "tie_word_embeddings");
  *tied = !(tie && cJSON_IsFalse(tie));
  m->n_layer = (int)L;
  m->n_head = (int)H;
  m->n_embd = (int)C;
  m->context = (int)T;
  m->vocab_size = V;
done:
  cJSON_Delete(root);
  return st;
}

/* The shape of a bare safetensors file: wte [V, C], wpe [T, C], the highest h.<i>. prefix; the
 * heads cannot be seen in any shape, so n_head comes from the caller. */
static ch_status infer_shape(const st_file *f, const char *prefix, int n_head, ch_model_cfg *m) {
  char name[CH_NAME_MAX + 64];
  snprintf(name, sizeof name, "%swte.weight", prefix);
  const st_tensor *wte = st_find(f, name);
  snprintf(name, sizeof name, "%swpe.weight", prefix);
  const st_tensor *wpe = st_find(f, name);
  if (!wte || !wpe || wte->ndim != 2 || wpe->ndim != 2)
    return CH_FAIL(CH_ERR_INVALID, "%s: no 2-D %swte.weight and %swpe.weight: not a GPT-2 "
                   "state_dict", f->path, prefix, prefix);
  int L = 0;
  size_t pl = strlen(prefix);
  for (int i = 0; i < f->ntensors; i++) {
    const char *s = f->tensors[i].name;
    int l;
    if (!strncmp(s, prefix, pl) && sscanf(s + pl, "h.%d.", &l) == 1 && l + 1 > L) L = l + 1;
  }
  if (n_head < 1)
    return CH_FAIL(CH_ERR_INVALID, "%s has no config.json next to it, and the number of heads "
                   "cannot be read from the tensors' shapes: give --n-head N (or put the model's "
                   "config.json beside it)", f->path);
  *m = (ch_model_cfg){.type = CH_MODEL_GPT, .n_layer = L, .n_head = n_head,
                      .n_embd = (int)wte->shape[1], .context = (int)wpe->shape[0],
                      .vocab_size = wte->shape[0]};
  return CH_OK;
}

static void shape_text(int ndim, const int64_t *shape, char *out, size_t size) {
  size_t n = (size_t)snprintf(out, size, "[");
  for (int d = 0; d < ndim && n < size; d++)
    n += (size_t)snprintf(out + n, size - n, "%s%" PRId64, d ? ", " : "", shape[d]);
  if (n < size) snprintf(out + n, size - n, "]");
}

/* Checks that the file's lm_head.weight (when present) is wte: cohort ties the LM head. */
static ch_status check_head(const st_file *f, const float *wte, int64_t numel, int tied) {
  const st_tensor *head = st_find(f, "lm_head.weight");
  if (!head) {
    if (!tied)
      return CH_FAIL(CH_ERR_INVALID, "%s: tie_word_embeddings is false but there is no "
                     "lm_head.weight", f->path);
    return CH_OK;
  }
  if (head->numel != numel)
    return CH_FAIL(CH_ERR_INVALID, "%s: lm_head.weight is not of wte.weight's shape: cohort ties "
                   "the LM head to the token embedding", f->path);
  float *h = malloc(sizeof(float) * (size_t)(numel ? numel : 1));
  if (!h) return CH_FAIL(CH_ERR_NOMEM, "lm_head.weight");
  ch_status st = st_read_f32(f, head, h);
  int64_t diff = 0;
  for (int64_t i = 0; st == CH_OK && i < numel; i++) diff += memcmp(&h[i], &wte[i], sizeof *h) != 0;
  free(h);
  CH_CHECK(st);
  if (diff)
    return CH_FAIL(CH_ERR_INVALID, "%s: lm_head.weight differs from wte.weight in %" PRId64 " of "
                   "%" PRId64 " elements: an untied LM head cannot be imported (cohort's GPT ties "
                   "it to the token embedding)", f->path, diff, numel);
  return CH_OK;
}

ch_status ch_ckpt_hf_read(const char *src, int n_head, ch_ckpt_model_info *info, ch_model **model,
                          float **params, int *ignored) {
  char weights[CH_PATH_MAX + 32], config[CH_PATH_MAX + 32];
  struct stat sb;
  if (stat(src, &sb) != 0) return CH_FAIL(CH_ERR_IO, "%s: %s", src, strerror(errno));
  if (S_ISDIR(sb.st_mode)) {
    snprintf(weights, sizeof weights, "%s/model.safetensors", src);
    snprintf(config, sizeof config, "%s/config.json", src);
    if (!is_file(weights)) {
      char index[CH_PATH_MAX + 48];
      snprintf(index, sizeof index, "%s.index.json", weights);
      return CH_FAIL(CH_ERR_INVALID, "%s holds no model.safetensors%s", src,
                     is_file(index) ? " (a sharded model.safetensors.index.json is not supported: "
                                      "save it with a larger max_shard_size)"
                                    : " (pytorch_model.bin is not read: save with "
                                      "safe_serialization=True)");
    }
  } else {
    snprintf(weights, sizeof weights, "%s", src);
    const char *slash = strrchr(src, '/');
    snprintf(config, sizeof config, "%.*sconfig.json", slash ? (int)(slash - src + 1) : 0, src);
  }
  int tied = 1, have_config = is_file(config);
  ch_model_cfg mc = {.type = CH_MODEL_GPT};
  if (have_config) CH_CHECK(read_config(config, &mc, &tied));
  st_file f;
  CH_CHECK(st_open(weights, &f));
  /* GPT2LMHeadModel's state_dict carries "transformer."; GPT2Model's does not. */
  const char *prefix = st_find(&f, "transformer.wte.weight") ? "transformer." : "";
  ch_status st = CH_OK;
  ch_model *m = NULL;
  float *p = NULL;
  int used = 0;
  if (!have_config) st = infer_shape(&f, prefix, n_head, &mc);
  else if (n_head > 0 && n_head != mc.n_head)
    st = CH_FAIL(CH_ERR_INVALID, "--n-head %d contradicts %s (n_head %d)", n_head, config, mc.n_head);
  if (st == CH_OK && (mc.n_head < 1 || mc.n_layer < 1 || mc.n_embd % mc.n_head != 0))
    st = CH_FAIL(CH_ERR_INVALID, "%s: n_layer %d, n_head %d, n_embd %d: a GPT needs n_layer >= 1 "
                 "and n_embd divisible by n_head", have_config ? config : weights, mc.n_layer,
                 mc.n_head, mc.n_embd);
  if (st == CH_OK) st = ch_model_create(ch_backend_cpu(), &mc, 0, mc.vocab_size, 0, &m);
  if (st != CH_OK) goto done;
  const ch_layout *l = ch_model_layout(m);
  p = ch_alloc_aligned(sizeof(float) * (l->numel + 1));
  if (!p) {
    st = CH_FAIL(CH_ERR_NOMEM, "parameters (%zu floats)", l->numel);
    goto done;
  }
  memset(p, 0, sizeof(float) * l->numel);
  /* Every row of the spec table, of exactly its shape. */
  for (int i = 0; i < l->nparams && st == CH_OK; i++) {
    const ch_param_spec *s = &l->params[i];
    char name[CH_NAME_MAX + 64], want[96], got[96];
    snprintf(name, sizeof name, "%s%s", prefix, s->name);
    const st_tensor *t = st_find(&f, name);
    shape_text(s->ndim, s->shape, want, sizeof want);
    if (!t) {
      st = CH_FAIL(CH_ERR_INVALID, "%s: tensor %s is missing (expected shape %s from the config)",
                   weights, name, want);
      break;
    }
    int same = t->ndim == s->ndim;
    for (int d = 0; same && d < s->ndim; d++) same = t->shape[d] == s->shape[d];
    if (!same) {
      shape_text(t->ndim, t->shape, got, sizeof got);
      st = CH_FAIL(CH_ERR_INVALID, "%s: tensor %s has shape %s; the config needs %s", weights,
                   name, got, want);
      break;
    }
    st = st_read_f32(&f, t, p + l->offsets[i]);
    used++;
  }
  if (st == CH_OK) st = check_head(&f, p + l->offsets[0], ch_param_numel(&l->params[0]), tied);
  if (st == CH_OK) {
    *ignored = f.ntensors - used - (st_find(&f, "lm_head.weight") != NULL);
    memset(info, 0, sizeof *info);
    info->model = mc;
    info->classes = mc.vocab_size;
    snprintf(info->tokenizer, sizeof info->tokenizer, "none");
  }
done:
  st_close(&f);
  if (st != CH_OK) {
    ch_model_destroy(m);
    ch_free_aligned(p);
    return st;
  }
  *model = m;
  *params = p;
  return CH_OK;
}

ch_status ch_ckpt_commit_params(const char *dir, const ch_layout *l, float *params,
                                const ch_ckpt_meta *meta, char *out, size_t out_size) {
  ch_group self;
  CH_CHECK(ch_group_self(&self));
  ch_segment seg;
  ch_shard all = ch_shard_range(&seg, 0, l->numel);
  ch_ckpt_buffer buf = {NULL, params, CH_ADDR_FLAT};
  ch_ckpt_policy keep = {INT64_MAX, 0}; /* one file: nothing to prune */
  return ch_ckpt_save(&self, dir, &keep, l, &buf, 1, &all, meta, out, out_size);
}
