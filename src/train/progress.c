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
  char eta[32], val[96] = "";
  format_duration(p->eta_seconds, eta, sizeof eta);
  if (!isnan(p->val_loss))
    snprintf(val, sizeof val, " | val_loss %.4f | val_acc %.2f%%", p->val_loss, 100.0 * p->val_acc);
  /* Language models count tokens (targets), classifiers samples. */
  int tokens = p->targets > 1;
  CH_INFO("step %lld/%lld | epoch %.2f | loss %.4f | lr %.3e | grad_norm %.3f | %.0f %s/s | ETA %s%s",
          (long long)p->step, (long long)p->total_steps, p->epoch, p->loss, p->lr, p->grad_norm,
          tokens ? p->samples_per_s * (double)p->targets : p->samples_per_s,
          tokens ? "tok" : "samples", eta, val);
}

void progress_write_json(FILE *f, const progress *p) {
  /* %.9g round-trips float32 values; metrics are otherwise plain numbers. */
  fprintf(f, "{\"step\": %lld, \"epoch\": %lld, \"epoch_float\": %.6f, \"loss\": %.9g, "
             "\"lr\": %.9g, \"grad_norm\": %.9g, \"samples_per_s\": %.1f",
          (long long)p->step, (long long)floor(p->epoch), p->epoch, p->loss, p->lr, p->grad_norm,
          p->samples_per_s);
  if (p->targets > 1) fprintf(f, ", \"tokens_per_s\": %.1f", p->samples_per_s * (double)p->targets);
  if (!isnan(p->val_loss))
    fprintf(f, ", \"val_loss\": %.9g, \"val_acc\": %.9g", p->val_loss, p->val_acc);
  fprintf(f, "}\n");
  fflush(f);
}
