/* ch_sample_token with a padded vocabulary (ch_sampling.vocab_real): the padded ids hold the
 * largest logits here, and still no sampling mode draws one -- greedy, temperature, top-k,
 * top-p -- for any u; without vocab_real they would win. One process, no MPI. */
#include <stdio.h>

#include "cohort/model.h"
#include "testlib.h"

int main(void) {
  enum { V = 10, REAL = 6 };
  const float logits[V] = {0.5f, 2.0f, 1.0f, -1.0f, 1.5f, 0.0f, 9.0f, 8.0f, 7.0f, 9.5f};
  ch_sampling all = {.temperature = 0.0f, .top_p = 1.0f};
  CHT_ASSERT(ch_sample_token(logits, V, &all, 0.5f) == 9, "unmasked greedy takes a padded id");
  const ch_sampling modes[] = {
      {.temperature = 0.0f, .top_p = 1.0f, .vocab_real = REAL},
      {.temperature = 1.0f, .top_p = 1.0f, .vocab_real = REAL},
      {.temperature = 2.0f, .top_k = 3, .top_p = 1.0f, .vocab_real = REAL},
      {.temperature = 1.5f, .top_p = 0.7f, .vocab_real = REAL},
      {.temperature = 1.0f, .top_k = 1, .top_p = 1.0f, .vocab_real = REAL}};
  const char *names[] = {"greedy", "temperature", "top-k", "top-p", "top-k 1"};
  for (int m = 0; m < 5; m++) {
    int seen[V] = {0};
    for (int i = 0; i < 1000; i++) seen[ch_sample_token(logits, V, &modes[m], (float)i / 1000.0f)]++;
    for (int id = REAL; id < V; id++)
      CHT_ASSERT(seen[id] == 0, "%s drew padded id %d (%d times)", names[m], id, seen[id]);
    if (modes[m].temperature == 0.0f || modes[m].top_k == 1)
      CHT_ASSERT(seen[1] == 1000, "%s: the argmax of the real ids is 1", names[m]);
    if (modes[m].top_k == 3)
      CHT_ASSERT(seen[0] + seen[3] + seen[5] == 0, "top-k 3 keeps ids 1, 4, 2 only");
  }
  printf("PASS: no sampling mode draws a padded id\n");
  return 0;
}
