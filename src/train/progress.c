/* Progress lines and metrics.jsonl records. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cohort/log.h"
#include "train/train_internal.h"

static void format_duration(double s, char *buf, size_t n) {
  if (!(s >= 0) || s > 1e7) {
    snprintf(buf, n, "--");
    return;
  }
  long t = (long)(s + 0.5);
  if (t >= 3600) snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
  else snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

void progress_print(const progress *p) {
  char eta[32], val[96] = "", skipped[64] = "";
  format_duration(p->eta_seconds, eta, sizeof eta);
  if (!isnan(p->val_loss))
    snprintf(val, sizeof val, " | val_loss %.4f | val_acc %.2f%%", p->val_loss, 100.0 * p->val_acc);
  if (p->skipped > 0)
    snprintf(skipped, sizeof skipped, " | %lld step%s skipped (not finite)", (long long)p->skipped,
             p->skipped == 1 ? "" : "s");
  /* Language models count tokens (targets), classifiers samples. */
  int tokens = p->targets > 1;
  CH_INFO("step %lld/%lld | epoch %.2f | loss %.4f | lr %.3e | grad_norm %.3f | %.0f %s/s | ETA %s%s%s",
          (long long)p->step, (long long)p->total_steps, p->epoch, p->loss, p->lr, p->grad_norm,
          tokens ? p->samples_per_s * (double)p->targets : p->samples_per_s,
          tokens ? "tok" : "samples", eta, val, skipped);
}

/* The number `v` as written with `decimals` fixed decimals. */
static double rounded(double v, int decimals) {
  char buf[64];
  snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return isfinite(v) ? strtod(buf, NULL) : v;
}

int progress_scalars(const progress *p, progress_scalar *out) {
  int n = 0;
#define ADD(k, t, v, d) (out[n++] = (progress_scalar){k, t, (d) < 0 ? (v) : rounded(v, d), d})
  ADD("epoch", NULL, floor(p->epoch), 0);
  ADD("epoch_float", "train/epoch", p->epoch, 6);
  ADD("loss", "train/loss", p->loss, -1);
  ADD("lr", "train/lr", p->lr, -1);
  ADD("grad_norm", "train/grad_norm", p->grad_norm, -1);
  ADD("samples_per_s", "train/samples_per_s", p->samples_per_s, 1);
  if (p->targets > 1)
    ADD("tokens_per_s", "train/tokens_per_s", p->samples_per_s * (double)p->targets, 1);
  if (p->skipped > 0) ADD("skipped_steps", "train/skipped_steps", (double)p->skipped, 0);
  if (!isnan(p->val_loss)) {
    ADD("val_loss", "val/loss", p->val_loss, -1);
    ADD("val_acc", "val/acc", p->val_acc, -1);
  }
#undef ADD
  return n;
}

void progress_write_json(FILE *f, const progress *p) {
  progress_scalar s[PROGRESS_MAX_SCALARS];
  int n = progress_scalars(p, s);
  fprintf(f, "{\"step\": %lld", (long long)p->step);
  /* %.9g round-trips float32 values; JSON has no NaN or Infinity, and a skipped step's loss or
   * norm is not finite: null. */
  for (int i = 0; i < n; i++) {
    if (!isfinite(s[i].value)) fprintf(f, ", \"%s\": null", s[i].key);
    else if (s[i].decimals < 0) fprintf(f, ", \"%s\": %.9g", s[i].key, s[i].value);
    else fprintf(f, ", \"%s\": %.*f", s[i].key, s[i].decimals, s[i].value);
  }
  fprintf(f, "}\n");
  fflush(f);
}
