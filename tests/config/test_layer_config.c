/* The layers' views of the training config: the serve options (one set of key rows for the
 * serve.* YAML keys and the `cohort serve` flags, same ranges and messages, defaults equal to
 * ch_serve_opts_default), the resolved checkpoint settings and the optimizer's schedule end. */
#include <stdio.h>
#include <string.h>

#include "cohort/config.h"
#include "testlib.h"

static void expect_error(ch_status got, const char *needle, const char *what) {
  CHT_ASSERT(got == CH_ERR_CONFIG, "%s: expected a config error, got '%s'", what,
             ch_status_str(got));
  CHT_ASSERT(strstr(ch_error_message(), needle), "%s: message\n  %s\nlacks\n  %s", what,
             ch_error_message(), needle);
}

static void test_serve_defaults(void) {
  ch_config c;
  ch_serve_opts o;
  ch_config_defaults(&c);
  ch_serve_opts_default(&o);
  CHT_ASSERT(!memcmp(&c.serve.opts, &o, sizeof o),
             "the serve.* key defaults differ from ch_serve_opts_default");
  CHT_ASSERT(c.serve.after == 0, "serve.after default");
}

static void test_serve_flags(void) {
  ch_config c;
  ch_config_defaults(&c);
  CHT_OK(ch_config_set_serve_flag(&c, "--max-batch-size", "16"));
  CHT_OK(ch_config_set_serve_flag(&c, "--port", "0"));
  CHT_OK(ch_config_set_serve_flag(&c, "--host", "0.0.0.0"));
  CHT_OK(ch_config_set_serve_flag(&c, "--timeout", "0.5"));
  CHT_OK(ch_config_set_serve_flag(&c, "--max-queue-delay-us", "100"));
  CHT_OK(ch_config_set_serve_flag(&c, "--model-name", "null")); /* a name, not YAML's null */
  const ch_serve_opts *o = &c.serve.opts;
  CHT_ASSERT(o->max_batch_size == 16 && o->port == 0 && !strcmp(o->host, "0.0.0.0") &&
                 o->request_timeout == 0.5 && o->max_queue_delay_us == 100 &&
                 !strcmp(o->model_name, "null"), "flags not applied");
  /* the flags' ranges and messages are the keys' */
  expect_error(ch_config_set_serve_flag(&c, "--max-batch-size", "5000"),
               "--max-batch-size: serve.max_batch_size: must be <= 4096, got 5000", "batch range");
  expect_error(ch_config_set(&c, "serve.max_batch_size=5000", NULL),
               "serve.max_batch_size: must be <= 4096, got 5000", "batch range (key)");
  expect_error(ch_config_set_serve_flag(&c, "--port", "70000"),
               "serve.port: must be <= 65535, got 70000", "port range");
  expect_error(ch_config_set(&c, "serve.port=70000", NULL), "serve.port: must be <= 65535",
               "port range (key)");
  expect_error(ch_config_set_serve_flag(&c, "--timeout", "0"), "serve.timeout: must be > 0",
               "timeout range");
  expect_error(ch_config_set_serve_flag(&c, "--port", "fast"),
               "serve.port: expected an integer, got 'fast'", "port type");
  expect_error(ch_config_set_serve_flag(&c, "--max-queue-size", "0"),
               "serve.max_queue_size: must be >= 1", "queue range");
  expect_error(ch_config_set_serve_flag(&c, "--bogus", "1"), "--bogus: unknown option",
               "unknown flag");
  expect_error(ch_config_set_serve_flag(&c, "--after", "true"), "--after: unknown option",
               "serve.after is not a flag");
  CHT_ASSERT(o->max_batch_size == 16 && o->port == 0, "a failed flag changed the options");
}

static void test_views(void) {
  ch_config c;
  ch_config_defaults(&c);
  CHT_OK(ch_config_set(&c, "run.dir=/tmp/r", NULL));
  CHT_OK(ch_config_set(&c, "run.checkpoint.keep_last=5", NULL));
  ch_ckpt_cfg k = ch_config_ckpt(&c);
  CHT_ASSERT(!strcmp(k.dir, "/tmp/r/checkpoints") && k.keep_last == 5 && k.every == 0,
             "checkpoint dir under run.dir: %s", k.dir);
  CHT_OK(ch_config_set(&c, "run.checkpoint.dir=/elsewhere", NULL));
  k = ch_config_ckpt(&c);
  CHT_ASSERT(!strcmp(k.dir, "/elsewhere"), "run.checkpoint.dir: %s", k.dir);
  CHT_OK(ch_config_set(&c, "train.steps=77", NULL));
  ch_optim_cfg o = ch_config_optim(&c);
  CHT_ASSERT(o.total_steps == 77 && o.lr == c.optim.lr, "optim view");
}

int main(void) {
  test_serve_defaults();
  test_serve_flags();
  test_views();
  printf("test_layer_config: ok\n");
  return 0;
}
