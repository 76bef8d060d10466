/* Counter-based RNG: a SplitMix64 finaliser applied to a mix of (seed, stream, counter). */
#include "cohort/rng.h"

#include <math.h>

static uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t ch_rng_u64(uint64_t seed, uint64_t stream, uint64_t counter) {
  /* Two rounds so that nearby (stream, counter) pairs decorrelate fully. */
  uint64_t k = mix64(seed * 0x9e3779b97f4a7c15ULL + 0x632be59bd9b4e019ULL);
  k = mix64(k ^ (stream * 0xd1b54a32d192ed03ULL));
  return mix64(k + counter * 0x9e3779b97f4a7c15ULL);
}

float ch_rng_uniform(uint64_t seed, uint64_t stream, uint64_t counter) {
  return (float)(ch_rng_u64(seed, stream, counter) >> 40) * (1.0f / 16777216.0f);
}

float ch_rng_normal(uint64_t seed, uint64_t stream, uint64_t counter) {
  /* u1 in (0, 1] so that log(u1) is finite. */
  double u1 = ((double)(ch_rng_u64(seed, stream, 2 * counter) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
  double u2 = (double)(ch_rng_u64(seed, stream, 2 * counter + 1) >> 11) * (1.0 / 9007199254740992.0);
  return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

uint64_t ch_rng_below(uint64_t seed, uint64_t stream, uint64_t counter, uint64_t n) {
  /* Rejection sampling on the top of the range; retries use counters far from the base. */
  uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  for (uint64_t attempt = 0;; attempt++) {
    uint64_t r = ch_rng_u64(seed, stream ^ (attempt << 48), counter);
    if (r < limit) return r % n;
  }
}

uint64_t ch_hash_str(const char *s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
  return h;
}
