/* The trainer's size checks (src/train/sizes.c): every buffer sized from keys and the data's
 * shape is a product that must neither wrap around in 64 bits nor exceed 256 TiB, checked
 * before anything is allocated, with a message naming the keys. At the keys' own upper bounds
 * each key alone is accepted; the products of several large keys are refused. */
#include <string.h>

#include "cohort/config.h"
#include "testlib.h"
#include "train/train_internal.h"

static ch_ckpt_model_info info_of(const ch_config *c, int64_t features, int64_t classes) {
  ch_ckpt_model_info info;
  memset(&info, 0, sizeof info);
  info.model = c->model;
  info.features = features;
  info.classes = classes;
  return info;
}

/* Plans cfg for `ranks` and checks it against a dataset of the given shape. */
static ch_status check(const ch_config *c, int ranks, int64_t features, int64_t classes) {
  ch_batch_plan plan;
  CHT_OK(ch_train_plan(c, ranks, &plan));
  ch_ckpt_model_info info = info_of(c, features, classes);
  return trainer_check_sizes(c, &plan, &info);
}

static void expect(ch_status got, const char *needle, const char *what) {
  CHT_ASSERT(got == CH_ERR_CONFIG, "%s: expected a configuration error, got '%s'", what,
             ch_status_str(got));
  CHT_ASSERT(strstr(ch_error_message(), needle), "%s: message '%s' lacks '%s'", what,
             ch_error_message(), needle);
  ch_error_clear();
}

int main(void) {
  ch_config c;
  ch_config_defaults(&c);
  CHT_OK(check(&c, 2, 64, 10)); /* the defaults on the digits */
  /* The largest batch on one rank with a wide dataset: 2^22 rows x 2^20 features x 4 bytes. */
  c.train.batch_size = 1 << 22;
  CHT_OK(check(&c, 1, 1 << 20, 10));
  expect(check(&c, 1, (int64_t)1 << 30, 10), "train.batch_size / ranks x the data's features",
         "input rows");
  ch_config_defaults(&c);
  c.model.depth = 1024;
  c.model.hidden = 1 << 20;
  CHT_OK(ch_config_validate(&c)); /* each key within its range ... */
  expect(check(&c, 1, 64, 10), "model.depth x model.hidden x model.hidden (hidden layers): "
         "1024 x 1048576 x 1048576 x 4 bytes is too large", "hidden layers");

  ch_config_defaults(&c);
  c.model.type = CH_MODEL_GPT;
  c.train.batch_size = 8;
  CHT_OK(check(&c, 1, 0, 256));
  c.model.vocab_size = 1 << 24;
  c.model.context = 1 << 20;
  c.train.batch_size = 1 << 22;
  CHT_OK(ch_config_validate(&c));
  expect(check(&c, 1, 0, 256), "(logits)", "logits");
  /* ... and a product that wraps around 64 bits is named as such. */
  c.model.vocab_size = 256;
  c.train.batch_size = 8;
  c.model.n_layer = 1024;
  c.model.n_head = 1024;
  c.model.n_embd = 1 << 16;
  expect(check(&c, 1, 0, 256), "does not fit in 64 bits", "attention wraps");
  printf("test_sizes: ok\n");
  return 0;
}
