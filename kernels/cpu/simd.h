/* Private to kernels/cpu and the layers above it: builds a hot loop for several instruction
 * sets (AVX-512, AVX2, baseline x86-64) and picks one at load time (GCC function
 * multiversioning), since the library is compiled without -march for portability. */
#pragma once

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define CH_VECTORIZE __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CH_VECTORIZE
#endif
