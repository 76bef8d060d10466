/* Softmax cross-entropy over logits rows, numerically stable (max subtracted). */
#include <math.h>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/fastmath.h"
#include "kernels/cpu/simd.h"

double cpu_xent_forward(const float *logits, const int32_t *labels, int batch, int classes,
                        int64_t *correct) {
  return cpu_xent_forward_seq(logits, labels, 1, batch, 1, classes, correct);
}

double cpu_xent_forward_seq(const float *logits, const int32_t *labels, int64_t ldl, int B, int T,
                            int classes, int64_t *correct) {
  double total = 0.0;
  for (int i = 0; i < B * T; i++) {
    const float *row = logits + (size_t)i * classes;
    int32_t label = labels[(i / T) * ldl + i % T];
    int arg = 0;
    float mx = row[0];
    for (int j = 1; j < classes; j++)
      if (row[j] > mx) {
        mx = row[j];
        arg = j;
      }
    double sum = 0.0;
    for (int j = 0; j < classes; j++) sum += exp((double)(row[j] - mx));
    /* -log softmax[label] = log sum exp(z - max) - (z_label - max) */
    total += log(sum) - (double)(row[label] - mx);
    if (correct && arg == label) (*correct)++;
  }
  return total;
}

void cpu_xent_backward(float *dlogits, const float *logits, const int32_t *labels, int batch,
                       int classes, float scale) {
  for (int i = 0; i < batch; i++) {
    const float *row = logits + (size_t)i * classes;
    float *drow = dlogits + (size_t)i * classes;
    float mx = row[0];
    for (int j = 1; j < classes; j++) mx = row[j] > mx ? row[j] : mx;
    double sum = 0.0;
    for (int j = 0; j < classes; j++) sum += exp((double)(row[j] - mx));
    for (int j = 0; j < classes; j++) {
      double p = exp((double)(row[j] - mx)) / sum;
      drow[j] = (float)(scale * (p - (j == labels[i] ? 1.0 : 0.0)));
    }
  }
}

/* One row of the fused kernel: e_j = exp(z_j - max) (vectorised), sum in double, then
 * d_j = scale * e_j / sum - scale [j == label]. Reads z[label] before d may overwrite it. */
CH_VECTORIZE static double xent_row(float *d, const float *z, int32_t label, int C, float scale) {
  float part[8], zl = z[label];
  for (int u = 0; u < 8; u++) part[u] = z[0];
  int j = 0;
  for (; j + 8 <= C; j += 8)
    for (int u = 0; u < 8; u++) part[u] = z[j + u] > part[u] ? z[j + u] : part[u];
  float mx = part[0];
  for (int u = 1; u < 8; u++) mx = part[u] > mx ? part[u] : mx;
  for (; j < C; j++) mx = z[j] > mx ? z[j] : mx;
  for (j = 0; j < C; j++) d[j] = cpu_exp_f32(z[j] - mx);
  double sums[8] = {0};
  for (j = 0; j + 8 <= C; j += 8)
    for (int u = 0; u < 8; u++) sums[u] += (double)d[j + u];
  double sum = 0.0;
  for (; j < C; j++) sum += (double)d[j];
  for (int u = 0; u < 8; u++) sum += sums[u];
  float k = (float)((double)scale / sum);
  for (j = 0; j < C; j++) d[j] *= k;
  d[label] -= scale;
  return log(sum) - (double)(zl - mx);
}

double cpu_xent_fused(float *dlogits, const float *logits, const int32_t *labels, int batch,
                      int classes, float scale) {
  return cpu_xent_fused_seq(dlogits, logits, labels, 1, batch, 1, classes, scale);
}

double cpu_xent_fused_seq(float *dlogits, const float *logits, const int32_t *labels, int64_t ldl,
                          int B, int T, int classes, float scale) {
  double total = 0.0;
  for (int i = 0; i < B * T; i++)
    total += xent_row(dlogits + (size_t)i * classes, logits + (size_t)i * classes,
                      labels[(i / T) * ldl + i % T], classes, scale);
  return total;
}
