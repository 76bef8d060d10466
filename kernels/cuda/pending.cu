/* TEMPORARY (removed as the issue-13 work lands): stubs for the ops not written yet, so that the
 * library links while the backend is assembled. Each returns CH_ERR_UNSUPPORTED. */
#include "kernels/cuda/ops.h"

#define PENDING(name) return CH_FAIL(CH_ERR_UNSUPPORTED, "CUDA op %s: not implemented yet", name)


ch_status cuda_layernorm_fwd(const ch_backend *, float *, float *, float *, const float *, const float *, const float *, int64_t, int, float) { PENDING("layernorm_fwd"); }
ch_status cuda_layernorm_bwd(const ch_backend *, float *, float *, float *, const float *, const float *, const float *, const float *, const float *, int64_t, int) { PENDING("layernorm_bwd"); }
ch_status cuda_gelu_fwd(const ch_backend *, float *, const float *, int64_t) { PENDING("gelu_fwd"); }
ch_status cuda_gelu_bwd(const ch_backend *, float *, const float *, const float *, int64_t) { PENDING("gelu_bwd"); }
ch_status cuda_relu_fwd(const ch_backend *, float *, const float *, int64_t) { PENDING("relu_fwd"); }
ch_status cuda_relu_bwd(const ch_backend *, float *, const float *, const float *, int64_t) { PENDING("relu_bwd"); }
ch_status cuda_add(const ch_backend *, float *, const float *, const float *, int64_t) { PENDING("add"); }
ch_status cuda_scale(const ch_backend *, float *, float, int64_t) { PENDING("scale"); }
ch_status cuda_sumsq(const ch_backend *, const float *, int64_t, double *) { PENDING("sumsq"); }
ch_status cuda_embedding_fwd(const ch_backend *, float *, const int32_t *, int64_t, int, const float *, const float *, int, int, int) { PENDING("embedding_fwd"); }
ch_status cuda_embedding_bwd(const ch_backend *, float *, float *, const float *, const int32_t *, int64_t, int, int, int) { PENDING("embedding_bwd"); }
ch_status cuda_xent_fwd(const ch_backend *, const float *, const int32_t *, int64_t, int, int, int, double *, int64_t *) { PENDING("xent_fwd"); }
ch_status cuda_xent_fused(const ch_backend *, float *, const float *, const int32_t *, int64_t, int, int, int, float, double *) { PENDING("xent_fused"); }
ch_status cuda_adamw(const ch_backend *, const ch_span *, int, float *, int, const float *, int, float *, float *, const ch_adamw_args *) { PENDING("adamw"); }
ch_status cuda_sgd(const ch_backend *, const ch_span *, int, float *, int, const float *, int, float *, const ch_sgd_args *) { PENDING("sgd"); }
ch_status cuda_cast_f32_bf16(const ch_backend *, uint16_t *, const float *, int64_t) { PENDING("cast_f32_bf16"); }
ch_status cuda_cast_bf16_f32(const ch_backend *, float *, const uint16_t *, int64_t) { PENDING("cast_bf16_f32"); }

