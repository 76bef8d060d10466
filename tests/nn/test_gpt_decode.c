/* The GPT's incremental decoder against its full forward, and next-token sampling.
 *  - decoding a window token by token (KV cache), or as a prompt chunk then tokens, gives at
 *    each position the logits of the full causal forward of that window;
 *  - two cache slots decoded interleaved do not disturb each other;
 *  - the context limit and out-of-vocabulary tokens are refused;
 *  - ch_sample_token: greedy is the argmax, draws follow softmax(logits / T), top-k and top-p
 *    restrict the support.
 * Tolerance for logits: 1e-5 of the largest |logit| of the row. Both paths run the same kernels
 * in fp32 over different row counts (GEMM blocking may differ), a few ulps of sums of ~100
 * terms; a missing position embedding, a stale cache row or a wrong mask gives 1e-2 or more. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/config.h"
#include "cohort/kernels.h"
#include "cohort/model.h"
#include "cohort/rng.h"
#include "testlib.h"

enum { L = 2, NH = 2, C = 32, T = 16, V = 53 };

static double row_err(const float *a, const float *b, int n) {
  double mx = 0, err = 0;
  for (int i = 0; i < n; i++) mx = fmax(mx, fabs(b[i]));
  for (int i = 0; i < n; i++) err = fmax(err, fabs(a[i] - b[i]));
  return err / (mx > 0 ? mx : 1);
}

static void check_decoder(void) {
  ch_config cfg;
  ch_config_defaults(&cfg);
  cht_gpt(&cfg.model, L, NH, C, T);
  ch_model *m;
  CHT_OK(ch_model_create(ch_backend_cpu(), &cfg.model, 0, V, 2, &m));
  const ch_layout *l = ch_model_layout(m);
  float *p = ch_alloc_aligned(l->numel * sizeof(float));
  CHT_ASSERT(p, "oom");
  ch_layout_init_params(l, p, 5);
  /* Larger than GPT-2's init so attention is far from uniform and positions matter. */
  for (size_t i = 0; i < l->numel; i++) p[i] *= 4.0f;
  int32_t win[2][T + 1];
  for (int s = 0; s < 2; s++)
    for (int t = 0; t <= T; t++) win[s][t] = (int32_t)ch_rng_below(9, (uint64_t)s, (uint64_t)t, V);
  const float *full;
  CHT_OK(ch_model_forward(m, p, NULL, &win[0][0], 2, &full));
  float *ref = malloc(sizeof(float) * 2 * T * V), logits[V];
  memcpy(ref, full, sizeof(float) * 2 * T * V);

  ch_kv_cache *kv;
  CHT_OK(ch_kv_cache_create(m, 2, &kv));
  double worst = 0;
  /* Slot 0 one token at a time; slot 1 a prompt of 5 then one at a time, interleaved. */
  CHT_OK(ch_model_decode(m, p, kv, 1, win[1], 5, logits));
  worst = fmax(worst, row_err(logits, ref + (size_t)(T + 4) * V, V));
  for (int t = 0; t < T; t++) {
    CHT_OK(ch_model_decode(m, p, kv, 0, &win[0][t], 1, logits));
    worst = fmax(worst, row_err(logits, ref + (size_t)t * V, V));
    if (t >= 5) {
      CHT_OK(ch_model_decode(m, p, kv, 1, &win[1][t], 1, logits));
      worst = fmax(worst, row_err(logits, ref + (size_t)(T + t) * V, V));
    }
  }
  printf("decode vs full forward: max rel err %.3g over %d positions\n", worst, 2 * T - 4);
  CHT_ASSERT(worst <= 1e-5, "cached decoding differs from the full forward: %g", worst);
  CHT_ASSERT(ch_kv_cache_length(kv, 0) == T && ch_kv_cache_length(kv, 1) == T, "lengths");
  /* Full: one more token does not fit. */
  CHT_ASSERT(ch_model_decode(m, p, kv, 0, win[0], 1, logits) == CH_ERR_INVALID, "past context");
  ch_kv_cache_reset(kv, 0);
  int32_t bad = V;
  CHT_ASSERT(ch_model_decode(m, p, kv, 0, &bad, 1, logits) == CH_ERR_INVALID, "token >= V");
  CHT_ASSERT(ch_model_decode(m, p, kv, 2, win[0], 1, logits) == CH_ERR_INVALID, "bad slot");
  /* After a reset the slot starts over: position 0 again. */
  CHT_OK(ch_model_decode(m, p, kv, 0, win[0], 3, logits));
  CHT_ASSERT(row_err(logits, ref + 2 * V, V) <= 1e-5, "after reset");
  /* A sensitivity check of the comparison itself: a different position gives other logits. */
  CHT_ASSERT(row_err(ref + 3 * V, ref + 2 * V, V) > 1e-2, "positions indistinguishable");
  ch_kv_cache_destroy(kv);
  free(ref);
  ch_free_aligned(p);
  ch_model_destroy(m);
}

static void check_sampling(void) {
  enum { N = 6, DRAWS = 40000 };
  const double prob[N] = {0.4, 0.25, 0.15, 0.1, 0.06, 0.04};
  float logits[N];
  for (int i = 0; i < N; i++) logits[i] = (float)log(prob[i]) + 3.0f; /* shift: no effect */
  ch_sampling greedy = {0.0f, 0, 1.0f, 0};
  CHT_ASSERT(ch_sample_token(logits, N, &greedy, 0.99f) == 0, "greedy is the argmax");
  ch_sampling k1 = {1.0f, 1, 1.0f, 0};
  CHT_ASSERT(ch_sample_token(logits, N, &k1, 0.99f) == 0, "top-k 1 is the argmax");
  struct { ch_sampling s; double expect[N]; } cases[] = {
    {{1.0f, 0, 1.0f, 0}, {0.4, 0.25, 0.15, 0.1, 0.06, 0.04}},
    {{1.0f, 3, 1.0f, 0}, {0.4 / 0.8, 0.25 / 0.8, 0.15 / 0.8, 0, 0, 0}},
    {{1.0f, 0, 0.6f, 0}, {0.4 / 0.65, 0.25 / 0.65, 0, 0, 0, 0}}, /* 0.4 + 0.25 reaches 0.6 */
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    int count[N] = {0};
    for (int d = 0; d < DRAWS; d++) count[ch_sample_token(logits, N, &cases[c].s, ch_rng_uniform(3, c, d))]++;
    for (int i = 0; i < N; i++) {
      double f = (double)count[i] / DRAWS, e = cases[c].expect[i];
      /* 5 standard deviations of a binomial frequency: sqrt(e (1 - e) / DRAWS) <= 0.0025 */
      CHT_ASSERT(fabs(f - e) <= 0.0125 && (e > 0 || count[i] == 0),
                 "case %zu token %d: frequency %.4f, expected %.4f", c, i, f, e);
    }
  }
  /* Temperature 0.5 squares the odds: p ~ prob^2. */
  ch_sampling t05 = {0.5f, 0, 1.0f, 0};
  double z = 0;
  for (int i = 0; i < N; i++) z += prob[i] * prob[i];
  int c0 = 0;
  for (int d = 0; d < DRAWS; d++) c0 += ch_sample_token(logits, N, &t05, ch_rng_uniform(4, 0, d)) == 0;
  CHT_ASSERT(fabs((double)c0 / DRAWS - prob[0] * prob[0] / z) <= 0.0125, "temperature 0.5");
  printf("sampling: greedy, top-k, top-p and temperature frequencies as expected\n");
}

int main(void) {
  CHT_OK(ch_blas_init(1));
  check_decoder();
  check_sampling();
  return 0;
}
