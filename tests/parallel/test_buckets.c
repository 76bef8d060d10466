/* DDP's bucket layout (src/parallel/buckets.c) on the models of configs/gpt-tiny.yaml and
 * configs/mlp-digits.yaml and on caps that force splitting: every element in exactly one bucket,
 * buckets in backward order, every cap respected (the first bucket's the smaller), units whole
 * unless larger than the cap, unit 0 alone, and a bucket closed only when the next unit would
 * overflow it. Prints each layout (sizes in order, KiB). */
#include <stdio.h>
#include <stdlib.h>

#include "cohort/backend.h"
#include "parallel/buckets.h"
#include "testlib.h"

static void check(const char *name, const ch_layout *l, double bucket_mb, double first_mb,
                  int *nbuckets, size_t *largest) {
  ddp_bucket *b;
  int n;
  size_t cap0, cap;
  CHT_OK(ddp_plan_buckets(l, bucket_mb, first_mb, &b, &n));
  ddp_bucket_caps(l, bucket_mb, first_mb, &cap0, &cap);
  printf("%s (%zu KiB, caps %zu/%zu KiB): %d buckets:", name, l->numel * 4 / 1024, cap0 * 4 / 1024,
         cap * 4 / 1024, n);
  for (int i = 0; i < n && i < 24; i++) printf(" %.1f", (double)b[i].numel * 4 / 1024);
  if (n > 24) printf(" ... %.1f", (double)b[n - 1].numel * 4 / 1024);
  printf("\n");
  CHT_ASSERT(n >= 1 && cap0 <= cap, "%s: %d buckets, caps %zu %zu", name, n, cap0, cap);
  CHT_ASSERT(b[0].offset + b[0].numel == l->numel, "%s: bucket 0 does not end the buffer", name);
  CHT_ASSERT(b[n - 1].offset == 0, "%s: the last bucket does not start the buffer", name);
  *largest = 0;
  for (int i = 0; i < n; i++) {
    const ddp_bucket *x = &b[i];
    const ch_unit *lo = &l->units[x->lo_unit], *hi = &l->units[x->hi_unit];
    if (x->numel > *largest) *largest = x->numel;
    CHT_ASSERT(x->numel >= 1 && x->numel <= (i == 0 ? cap0 : cap), "%s: bucket %d holds %zu > cap",
               name, i, x->numel);
    /* Exactly once: each bucket ends where the previous one (in backward order) starts. */
    if (i > 0) CHT_ASSERT(x->offset + x->numel == b[i - 1].offset, "%s: gap/overlap at %d", name, i);
    /* Backward order: units never go up. */
    if (i > 0) CHT_ASSERT(x->hi_unit <= b[i - 1].lo_unit, "%s: bucket %d out of order", name, i);
    CHT_ASSERT(x->lo_unit <= x->hi_unit && lo->offset <= x->offset &&
                   x->offset + x->numel <= hi->offset + hi->numel,
               "%s: bucket %d outside its units %d..%d", name, i, x->lo_unit, x->hi_unit);
    int whole = x->offset == lo->offset && x->offset + x->numel == hi->offset + hi->numel;
    CHT_ASSERT(whole || (x->lo_unit == x->hi_unit && lo->numel > cap0),
               "%s: bucket %d splits unit(s) %d..%d not above the cap", name, i, x->lo_unit,
               x->hi_unit);
    if (!whole) continue;
    if (l->nunits > 1 && x->lo_unit == 0)
      CHT_ASSERT(x->hi_unit == 0, "%s: unit 0 shares bucket %d", name, i);
    /* Closed only when the next unit (whole, not unit 0) would take it over its cap. */
    int next = x->lo_unit - 1;
    if (next > 0 && l->units[next].numel <= cap)
      CHT_ASSERT(x->numel + l->units[next].numel > (i == 0 ? cap0 : cap),
                 "%s: bucket %d closed with room for unit %d", name, i, next);
  }
  *nbuckets = n;
  free(b);
}

static void model_layout(const ch_model_cfg *cfg, int64_t in, int64_t classes, ch_model **m) {
  CHT_OK(ch_model_create(ch_backend_cpu(), cfg, in, classes, 0, m));
}

int main(void) {
  ch_model_cfg gpt = {.type = CH_MODEL_GPT};
  cht_gpt(&gpt, 4, 4, 128, 64); /* configs/gpt-tiny.yaml, byte vocabulary */
  ch_model_cfg mlp = {.type = CH_MODEL_MLP, .depth = 2, .hidden = 128};
  ch_model *g, *m;
  model_layout(&gpt, 0, 256, &g);
  model_layout(&mlp, 64, 10, &m); /* configs/mlp-digits.yaml on the digits (64 features) */
  const ch_layout *gl = ch_model_layout(g), *ml = ch_model_layout(m);
  int n;
  size_t largest;

  /* The configs' caps (25 MiB, first 1 MiB): no bucket holds half of gpt-tiny any more, the
   * first is at most 1 MiB, and the blocks are not merged into unit 0's bucket. */
  check("gpt-tiny", gl, 25, 1, &n, &largest);
  CHT_ASSERT(largest * 4 < gl->numel, "gpt-tiny: a bucket holds %zu of %zu", largest, gl->numel);
  /* [final LayerNorm + block 4] [block 3] [block 2] [block 1] [embeddings] */
  CHT_ASSERT(n == gl->nunits - 1, "gpt-tiny: %d buckets for %d units", n, gl->nunits);
  check("mlp-digits", ml, 25, 1, &n, &largest);
  CHT_ASSERT(n == 2, "mlp-digits: %d buckets (expected units 2..1, then unit 0)", n);
  /* configs/bench-mlp.yaml: 784-1024x3-10 with bucket_mb 4; its layers exceed model / 8. */
  ch_model_cfg bench = {.type = CH_MODEL_MLP, .depth = 3, .hidden = 1024};
  ch_model *bm;
  model_layout(&bench, 784, 10, &bm);
  check("bench-mlp", ch_model_layout(bm), 4, 1, &n, &largest);
  ch_model_destroy(bm);

  /* Caps below a unit: blocks split into pieces; a first cap below the cap; tiny caps. */
  check("gpt-tiny 0.25/0.1", gl, 0.25, 0.1, &n, &largest);
  CHT_ASSERT(n > gl->nunits, "gpt-tiny 0.25/0.1: no unit was split (%d buckets)", n);
  check("gpt-tiny 0.001/0.001", gl, 0.001, 0.001, &n, &largest);
  check("mlp-digits 0.02/0.005", ml, 0.02, 0.005, &n, &largest);
  /* A cap from the model's size: 25 MiB buckets on a model of 1/8 of that are capped at 1/8. */
  check("gpt-tiny 25/0.01", gl, 25, 0.01, &n, &largest);
  CHT_ASSERT(largest <= gl->numel / DDP_BUCKET_SHARE, "gpt-tiny 25/0.01: %zu", largest);

  ddp_bucket *b;
  CHT_ASSERT(ddp_plan_buckets(gl, 0, 1, &b, &n) == CH_ERR_INVALID, "a zero cap was accepted");
  ch_model_destroy(g);
  ch_model_destroy(m);
  printf("test_buckets: ok\n");
  return 0;
}
