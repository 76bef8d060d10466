/* TEMPORARY (removed as the issue-13 work lands): stubs for the ops not written yet, so that the
 * library links while the backend is assembled. Each returns CH_ERR_UNSUPPORTED. */
#include "kernels/cuda/ops.h"

#define PENDING(name) return CH_FAIL(CH_ERR_UNSUPPORTED, "CUDA op %s: not implemented yet", name)

ch_status cuda_linear_fwd(const ch_backend *, float *, const float *, const float *, const float *, int64_t, int, int) { PENDING("linear_fwd"); }
ch_status cuda_linear_bwd(const ch_backend *, float *, float *, float *, const float *, const float *, const float *, int64_t, int, int) { PENDING("linear_bwd"); }
ch_status cuda_matmul_fwd(const ch_backend *, float *, const float *, const float *, const float *, int64_t, int, int) { PENDING("matmul_fwd"); }
ch_status cuda_matmul_bwd(const ch_backend *, float *, float *, float *, const float *, const float *, const float *, int64_t, int, int) { PENDING("matmul_bwd"); }
ch_status cuda_attention_fwd(const ch_backend *, float *, float *, const float *, int, int, int, int) { PENDING("attention_fwd"); }
ch_status cuda_attention_bwd(const ch_backend *, float *, const float *, const float *, const float *, float *, int, int, int, int) { PENDING("attention_bwd"); }
ch_status cuda_attention_decode(const ch_backend *, float *, float *, const float *, float *, float *, int, int, int, int) { PENDING("attention_decode"); }

