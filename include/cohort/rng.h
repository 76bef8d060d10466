/* Counter-based random numbers: value i of stream (seed, stream) is a pure function of its
 * three inputs, so initialisation and sampling do not depend on rank count or call order. */
#pragma once
#include "cohort/status.h" /* CH_API */
#include <stdint.h>

/* 64 random bits for (seed, stream, counter) (a SplitMix64-style mix of the three). */
CH_API uint64_t ch_rng_u64(uint64_t seed, uint64_t stream, uint64_t counter);

/* Uniform float in [0, 1) with 24 random bits. */
CH_API float ch_rng_uniform(uint64_t seed, uint64_t stream, uint64_t counter);

/* Standard normal (Box-Muller on counters 2*counter and 2*counter+1). */
CH_API float ch_rng_normal(uint64_t seed, uint64_t stream, uint64_t counter);

/* Uniform integer in [0, n) without modulo bias (n > 0). */
CH_API uint64_t ch_rng_below(uint64_t seed, uint64_t stream, uint64_t counter, uint64_t n);

/* Stable 64-bit hash of a string (FNV-1a), e.g. to derive a stream id from a parameter name. */
CH_API uint64_t ch_hash_str(const char *s);
