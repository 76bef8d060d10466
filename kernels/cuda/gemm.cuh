/* Row-major GEMMs and their operands for the backend ops (linear.cu, attention.cu), on a
 * backend context's cuBLAS handle and stream (kernels/cuda/gemm.cu).
 *
 * Precision (cuda_ctx.precision): in CH_PRECISION_FP32 the operands are the fp32 tensors and the
 * GEMMs are true fp32 (default math, no TF32). In CH_PRECISION_BF16 every GEMM operand is first
 * rounded to bf16 (nearest even) into scratch, and the GEMM multiplies bf16 x bf16 with fp32
 * accumulation into an fp32 result: torch.autocast-style mixed precision, where parameters,
 * gradients and the activations between ops stay fp32. */
#pragma once
#include "kernels/cuda/ops.h"

/* True when the context's GEMM operands are bf16 (CH_PRECISION_BF16). */
static inline bool cuda_bf16_gemms(const cuda_ctx *c) { return c->precision == CH_PRECISION_BF16; }

/* C[m,n] = alpha op(A) op(B) + beta C for `batch` independent products, row-major with row
 * strides ld*, product i reading A at a + i*sa and B at b + i*sb and writing C at c + i*sc
 * (strides in elements; ignored when batch is 1). A and B are fp32 or, when `bf16`, bf16 bit
 * patterns; C is fp32; accumulation is fp32 either way. Enqueued on h's stream. */
ch_status cuda_gemm(cublasHandle_t h, bool bf16, int ta, int tb, int m, int n, int k, float alpha,
                    const void *a, int lda, long long sa, const void *b, int ldb, long long sb,
                    float beta, float *c, int ldc, long long sc, int batch);

/* y[m,n] = op(A) op(B) + bias (bias [n] added to every row; NULL: none), row-major as
 * cuda_gemm, y overwritten, on the context's stream: through cuBLASLt with the bias in its
 * epilogue when every pointer is 256-byte aligned (what its heuristic assumes), else a bias fill
 * and cuda_gemm with beta = 1. */
ch_status cuda_gemm_bias(cuda_ctx *c, bool bf16, int ta, int tb, int m, int n, int k,
                         const void *a, int lda, const void *b, int ldb, float *y, int ldy,
                         const float *bias);

/* One cuda_scratch buffer cut into `count` parts (count <= 8) of bytes[i] each (0 allowed),
 * every part 256-byte aligned: parts[i]. Valid until the next cuda_scratch call. */
ch_status cuda_scratch_parts(cuda_ctx *c, int count, const size_t bytes[], void *parts[]);

/* Bytes of the bf16 copy of an n-float GEMM operand: 2 n in bf16 mode, 0 in fp32 mode. */
static inline size_t cuda_operand_bytes(const cuda_ctx *c, int64_t n) {
  return cuda_bf16_gemms(c) ? (size_t)n * 2 : 0;
}

/* The GEMM operand of fp32 tensor x [n]: x itself in fp32 mode; in bf16 mode its bf16 rounding,
 * written into dst (cuda_operand_bytes of scratch). */
ch_status cuda_operand(const ch_backend *be, const float *x, int64_t n, void *dst,
                       const void **op);

/* Element i of a GEMM operand (fp32 or bf16 as `bf16` says). */
static inline const void *cuda_elem(const void *p, int64_t i, bool bf16) {
  return (const char *)p + i * (bf16 ? 2 : 4);
}
