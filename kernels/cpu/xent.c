/* Softmax cross-entropy over logits rows, numerically stable (max subtracted). */
#include <math.h>

#include "cohort/kernels.h"

double ch_xent_forward(const float *logits, const int32_t *labels, int batch, int classes,
                       int64_t *correct) {
  double total = 0.0;
  for (int i = 0; i < batch; i++) {
    const float *row = logits + (size_t)i * classes;
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
    total += log(sum) - (double)(row[labels[i]] - mx);
    if (correct && arg == labels[i]) (*correct)++;
  }
  return total;
}

void ch_xent_backward(float *dlogits, const float *logits, const int32_t *labels, int batch,
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
