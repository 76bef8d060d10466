/* The emulation's reference GEMM, shared by the emulated cuBLAS (cublas.cpp) and cuBLASLt
 * (cublaslt.cpp). Column-major, as both libraries:
 *
 *   D = act(alpha * op(A) op(B) + beta * C + bias)      op(A): m x k, op(B): k x n, C, D: m x n
 *
 * computed as a GPU does it: inputs read exactly into float (bf16 is the top half of a float),
 * every output element accumulated in float in k order (never in double), the epilogue in
 * float, one rounding to the output type on store (bf16: round to nearest even). */
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

#include <library_types.h>

namespace emu {

/* bf16 -> float: exact (a bf16 is the high 16 bits of a float). */
inline float bf16_to_float(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

/* float -> bf16, rounded to nearest even; NaN stays a (quiet) NaN of the same sign. */
inline uint16_t float_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u);
  u += 0x7fffu + ((u >> 16) & 1u); /* ties go to the even (low bit 0) neighbour */
  return (uint16_t)(u >> 16);
}

/* Size in bytes of one element of a type the reference supports (R_32F, R_16BF), else 0. */
inline size_t elem_size(cudaDataType t) {
  return t == CUDA_R_32F ? 4 : t == CUDA_R_16BF ? 2 : 0;
}

/* Element i of an array of type t (R_32F or R_16BF) as a float. */
inline float load(const void *p, cudaDataType t, size_t i) {
  if (t == CUDA_R_16BF) return bf16_to_float(((const uint16_t *)p)[i]);
  return ((const float *)p)[i];
}

/* Stores v as element i of an array of type t, rounding as the type does. */
inline void store(void *p, cudaDataType t, size_t i, float v) {
  if (t == CUDA_R_16BF)
    ((uint16_t *)p)[i] = float_to_bf16(v);
  else
    ((float *)p)[i] = v;
}

/* One column-major matrix operand: its pointer, element type, leading dimension, and (for A
 * and B) whether the GEMM reads its transpose. */
struct operand {
  const void *p;
  cudaDataType type;
  int64_t ld;
  bool trans;
};

enum activation { ACT_NONE, ACT_RELU, ACT_GELU };

/* One GEMM. c.p may be NULL when beta == 0 (C is then not read, as in cuBLAS). bias (length
 * m, may be NULL) is added before the activation. bgrad_b (may be NULL) receives, for every
 * column j of D, sum over p of op(B)[p, j] (cuBLASLt's BGRADB), accumulated in float in k
 * order and rounded to bgrad_type. */
struct gemm {
  int64_t m, n, k;
  float alpha, beta;
  operand a, b, c;
  void *d;
  cudaDataType d_type;
  int64_t ldd;
  activation act;
  const void *bias;
  cudaDataType bias_type;
  void *bgrad_b;
  cudaDataType bgrad_type;
};

/* Computes one GEMM as described above. The caller has checked the shapes and types and holds
 * emu_host_access_begin() around the call (the pointers are device memory). Returns false
 * only when the host runs out of memory for the packed operands. */
bool gemm_run(const gemm &g);

/* tanh-approximated GELU, as cuBLASLt's GELU epilogues and the kernels compute it. */
float gelu_tanh(float x);

} // namespace emu
