/* Progress lines and metrics.jsonl records. */
#include <math.h>
#include <stdio.h>

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

/* ", "key": v" with %.9g (round-trips float32 values), or null: JSON has no NaN or Infinity, and
 * a skipped step's loss or norm is not finite. */
static void json_number(FILE *f, const char *key, double v) {
  if (isfinite(v)) fprintf(f, ", \"%s\": %.9g", key, v);
  else fprintf(f, ", \"%s\": null", key);
}

void progress_write_json(FILE *f, const progress *p) {
  fprintf(f, "{\"step\": %lld, \"epoch\": %lld, \"epoch_float\": %.6f", (long long)p->step,
          (long long)floor(p->epoch), p->epoch);
  json_number(f, "loss", p->loss);
  json_number(f, "lr", p->lr);
  json_number(f, "grad_norm", p->grad_norm);
  fprintf(f, ", \"samples_per_s\": %.1f", p->samples_per_s);
  if (p->targets > 1) fprintf(f, ", \"tokens_per_s\": %.1f", p->samples_per_s * (double)p->targets);
  if (p->skipped > 0) fprintf(f, ", \"skipped_steps\": %lld", (long long)p->skipped);
  if (!isnan(p->val_loss))
    json_number(f, "val_loss", p->val_loss), json_number(f, "val_acc", p->val_acc);
  fprintf(f, "}\n");
  fflush(f);
}
