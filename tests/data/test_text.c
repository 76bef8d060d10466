/* The text converter (ch_data_text_convert): two random inputs (one gzipped, one without a final
 * newline) with the byte and the GPT-2 tokenizer (test_vocab.h); the stored tokens, read back with
 * plain HDF5, equal the encoding of the joined text, split as documented; the statistics; the
 * stored tokenizer loads and encodes alike; errors for a missing input, bad fractions, short
 * texts. (`cohort data text` itself is checked by cli_data_text.sh.) */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cohort/data.h"
#include "cohort/tokenizer.h"
#include "test_vocab.h"
#include "testlib.h"

#define SEED 51413u

static ch_tokenizer *gpt2_of(const tv_vocab *v) {
  ch_tokenizer *t = NULL;
  CHT_OK(ch_tokenizer_create_gpt2(v->enc, v->enc_len, v->mer, v->mer_len, &t));
  return t;
}

static int32_t *read_tokens(const char *path, const char *split, int64_t *n) {
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  char name[64];
  snprintf(name, sizeof name, "/%s/tokens", split);
  hid_t d = H5Dopen2(f, name, H5P_DEFAULT), s = H5Dget_space(d), ty = H5Dget_type(d);
  CHT_ASSERT(f >= 0 && d >= 0 && H5Tequal(ty, H5T_STD_I32LE) > 0, "%s: %s", path, name);
  hsize_t dims[1];
  H5Sget_simple_extent_dims(s, dims, NULL);
  int32_t *t = malloc(sizeof *t * (dims[0] + 1));
  CHT_ASSERT(dims[0] == 0 || H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, t) >= 0, "read %s", name);
  *n = (int64_t)dims[0];
  H5Tclose(ty);
  H5Sclose(s);
  H5Dclose(d);
  H5Fclose(f);
  return t;
}

static void check_convert(const tv_vocab *v, const char *dir) {
  char a[256], b[256], out[256], partial[300];
  snprintf(a, sizeof a, "%s/a.txt.gz", dir);
  snprintf(b, sizeof b, "%s/b.txt", dir);
  snprintf(out, sizeof out, "%s/text.h5", dir);
  snprintf(partial, sizeof partial, "%s.partial", out);
  size_t la, lb;
  char *ta = tv_random_text(SEED, 500, &la), *tb = tv_random_text(SEED, 501, &lb);
  while (la && ta[la - 1] == '\n') la--; /* a does not end with '\n': one is added */
  CHT_ASSERT(la > 0 && lb > 0, "empty random texts");
  tv_write_file(a, ta, la, 1);
  tv_write_file(b, tb, lb, 0);
  char *all = malloc(la + lb + 2);
  memcpy(all, ta, la);
  all[la] = '\n';
  memcpy(all + la + 1, tb, lb);
  size_t lall = la + 1 + lb;
  const char *const in[2] = {a, b};
  ch_tokenizer *toks[2];
  CHT_OK(ch_tokenizer_create_byte(&toks[0]));
  toks[1] = gpt2_of(v);
  for (int k = 0; k < 2; k++) {
    double f = k ? 0.3 : 0.1;
    ch_text_opts o = {.val_fraction = f, .tok = toks[k]};
    ch_text_stats st;
    CHT_OK(ch_data_text_convert(in, 2, out, &o, &st));
    CHT_ASSERT(access(partial, F_OK) != 0, "%s left behind", partial);
    int32_t *want;
    int64_t n, ntr, nva;
    CHT_OK(ch_tokenizer_encode(toks[k], all, lall, &want, &n));
    int64_t wval = (int64_t)(f * (double)n + 0.5);
    CHT_ASSERT(st.bytes == (int64_t)lall && st.tokens == n && st.val_tokens == wval && st.train_tokens == n - wval &&
                   st.vocab == ch_tokenizer_vocab(toks[k]),
               "%s: stats bytes %lld tokens %lld train %lld val %lld vocab %lld", ch_tokenizer_name(toks[k]),
               (long long)st.bytes, (long long)st.tokens, (long long)st.train_tokens, (long long)st.val_tokens,
               (long long)st.vocab);
    int32_t *tr = read_tokens(out, "train", &ntr), *va = read_tokens(out, "val", &nva);
    CHT_ASSERT(ntr == n - wval && nva == wval, "split sizes %lld + %lld", (long long)ntr, (long long)nva);
    CHT_ASSERT(!memcmp(tr, want, sizeof *tr * (size_t)ntr) && !memcmp(va, want + ntr, sizeof *va * (size_t)nva),
               "%s: stored tokens differ from the encoding", ch_tokenizer_name(toks[k]));
    /* entropy of the train tokens */
    int64_t *cnt = calloc((size_t)st.vocab, sizeof *cnt);
    for (int64_t i = 0; i < ntr; i++) cnt[tr[i]]++;
    double h = 0;
    for (int64_t i = 0; i < st.vocab; i++)
      if (cnt[i]) h -= (double)cnt[i] / (double)ntr * log2((double)cnt[i] / (double)ntr);
    CHT_ASSERT(fabs(h - st.unigram_entropy_bits) < 1e-9 && h > 1, "entropy %.12g, expected %.12g",
               st.unigram_entropy_bits, h);
    free(cnt);
    /* the stored tokenizer is the same tokenizer */
    ch_tokenizer *l;
    CHT_OK(ch_tokenizer_load(out, &l));
    CHT_ASSERT(!strcmp(ch_tokenizer_name(l), ch_tokenizer_name(toks[k])) && ch_tokenizer_vocab(l) == st.vocab,
               "loaded %s, vocab %lld", ch_tokenizer_name(l), (long long)ch_tokenizer_vocab(l));
    int32_t *again;
    int64_t n2;
    CHT_OK(ch_tokenizer_encode(l, all, lall, &again, &n2));
    CHT_ASSERT(n2 == n && !memcmp(again, want, sizeof *want * (size_t)n), "loaded tokenizer encodes differently");
    ch_tokenizer_destroy(l);
    free(again);
    free(want);
    free(tr);
    free(va);
  }
  /* errors */
  ch_text_opts o = {.val_fraction = 0.5, .tok = toks[0]};
  const char *const missing[2] = {a, "/nonexistent-cohort/x.txt"};
  ch_status st = ch_data_text_convert(missing, 2, out, &o, NULL);
  CHT_ASSERT(st == CH_ERR_IO && strstr(ch_error_message(), "/nonexistent-cohort/x.txt"), "missing input: %s: %s",
             ch_status_str(st), ch_error_message());
  o.val_fraction = 1;
  CHT_ASSERT(ch_data_text_convert(in, 2, out, &o, NULL) == CH_ERR_INVALID, "val fraction 1");
  o.val_fraction = 0;
  CHT_ASSERT(ch_data_text_convert(in, 2, out, &o, NULL) == CH_ERR_INVALID, "val fraction 0");
  tv_write_file(a, "abc", 3, 0);
  o.val_fraction = 0.5;
  st = ch_data_text_convert(in, 1, out, &o, NULL);
  CHT_ASSERT(st == CH_ERR_FORMAT && strstr(ch_error_message(), "3 tokens"), "3 tokens: %s: %s", ch_status_str(st),
             ch_error_message());
  tv_write_file(a, "abcdefghij", 10, 0);
  o.val_fraction = 0.1; /* val 1 token */
  st = ch_data_text_convert(in, 1, out, &o, NULL);
  CHT_ASSERT(st == CH_ERR_INVALID && strstr(ch_error_message(), "val 1"), "val of 1 token: %s: %s", ch_status_str(st),
             ch_error_message());
  o.val_fraction = 0.2;
  CHT_OK(ch_data_text_convert(in, 1, out, &o, NULL));
  ch_error_clear();
  ch_tokenizer_destroy(toks[0]);
  ch_tokenizer_destroy(toks[1]);
  free(ta);
  free(tb);
  free(all);
  unlink(a);
  unlink(b);
  unlink(out);
}

int main(void) {
  tv_vocab *v = malloc(sizeof *v);
  tv_make(v, SEED);
  char dir[64] = "/tmp/cohort_test_text_XXXXXX";
  CHT_ASSERT(mkdtemp(dir), "mkdtemp");
  check_convert(v, dir);
  rmdir(dir);
  tv_free(v);
  free(v);
  printf("test_text: ok\n");
  return 0;
}
