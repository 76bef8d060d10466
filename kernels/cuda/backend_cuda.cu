/* The CUDA backend: its context (a device, a stream, cuBLAS/cuBLASLt handles, scratch), the
 * memory ops, the ops table of cohort/backend.h over the functions of ops.h, and the library's
 * entry point (cohort_cuda_plugin, loaded by libcohort's device loader). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/ops.h"

namespace {

#define LT_TRY(call, what)                                                                     \
  do {                                                                                         \
    cublasStatus_t st_ = (call);                                                               \
    if (st_ != CUBLAS_STATUS_SUCCESS)                                                          \
      return CH_FAIL(st_ == CUBLAS_STATUS_ALLOC_FAILED ? CH_ERR_NOMEM : CH_ERR_INTERNAL,      \
                     "%s: %s", what, cublasGetStatusString(st_));                              \
  } while (0)

const ch_backend_ops kOps = {
    cuda_alloc,         cuda_free,          cuda_upload,           cuda_download,
    cuda_stage,         cuda_memset,        cuda_sync,             cuda_linear_fwd,
    cuda_linear_bwd,    cuda_matmul_fwd,    cuda_matmul_bwd,       cuda_layernorm_fwd,
    cuda_layernorm_bwd, cuda_gelu_fwd,      cuda_gelu_bwd,         cuda_relu_fwd,
    cuda_relu_bwd,      cuda_add,           cuda_scale,            cuda_sumsq,
    cuda_attention_fwd, cuda_attention_bwd, cuda_attention_decode, cuda_embedding_fwd,
    cuda_embedding_bwd, cuda_xent_fwd,      cuda_xent_fused,       cuda_adamw,
    cuda_sgd,           cuda_cast_f32_bf16, cuda_cast_bf16_f32,    cuda_attention_saved,
    cuda_matmul_gelu_fwd, cuda_matmul_gelu_bwd, cuda_add_layernorm_fwd,
};

/* cuBLASLt's workspace: 32 MiB, what its heuristics want for large GEMMs on Hopper. */
constexpr size_t kLtWorkspace = (size_t)32 << 20;

void ctx_destroy(cuda_ctx *c) {
  if (!c) return;
  if (c->stream) (void)cudaStreamSynchronize(c->stream);
  if (c->lt) (void)cublasLtDestroy(c->lt);
  if (c->blas) (void)cublasDestroy(c->blas);
  if (c->lt_workspace) (void)cudaFree(c->lt_workspace);
  if (c->scratch) (void)cudaFree(c->scratch);
  if (c->stream) (void)cudaStreamDestroy(c->stream);
  free(c);
}

ch_status ctx_create(int device, int precision, cuda_ctx **out) {
  cuda_ctx *c = (cuda_ctx *)calloc(1, sizeof *c);
  if (!c) return CH_FAIL(CH_ERR_NOMEM, "CUDA backend context");
  *out = c;
  c->device = device;
  c->precision = precision;
  CH_CUDA_TRY(cudaSetDevice(device), "cudaSetDevice");
  CH_CUDA_TRY(cudaDeviceGetAttribute(&c->sms, cudaDevAttrMultiProcessorCount, device),
              "multiprocessor count");
  CH_CUDA_TRY(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking), "cudaStreamCreate");
  LT_TRY(cublasCreate(&c->blas), "cublasCreate");
  LT_TRY(cublasSetStream(c->blas, c->stream), "cublasSetStream");
  LT_TRY(cublasSetMathMode(c->blas, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
  LT_TRY(cublasLtCreate(&c->lt), "cublasLtCreate");
  c->lt_workspace_bytes = kLtWorkspace;
  CH_CUDA_TRY(cudaMalloc(&c->lt_workspace, kLtWorkspace), "cuBLASLt workspace");
  return CH_OK;
}

int device_count() { return ch_cuda_device_count(); }

ch_status pci_bus_id(int device, char *buf, int len) {
  CH_CUDA_TRY(cudaDeviceGetPCIBusId(buf, len, device), "cudaDeviceGetPCIBusId");
  return CH_OK;
}

ch_status backend_create(int device, int precision, ch_backend **out) {
  *out = NULL;
  if (precision != CH_PRECISION_FP32 && precision != CH_PRECISION_BF16)
    return CH_FAIL(CH_ERR_INVALID, "precision %d", precision);
  ch_backend *be = (ch_backend *)calloc(1, sizeof *be);
  if (!be) return CH_FAIL(CH_ERR_NOMEM, "CUDA backend");
  cuda_ctx *c = NULL;
  ch_status st = ctx_create(device, precision, &c);
  if (st != CH_OK) {
    ctx_destroy(c);
    free(be);
    return st;
  }
#ifdef COHORT_CUDA_EMU
  be->name = "cuda (emulated)";
#else
  be->name = "cuda";
#endif
  be->ops = &kOps;
  be->ctx = c;
  *out = be;
  return CH_OK;
}

void backend_destroy(ch_backend *be) {
  if (!be) return;
  ctx_destroy(cuda_ctx_of(be));
  free(be);
}

} // namespace

ch_status cuda_scratch(cuda_ctx *c, size_t bytes, void **out) {
  if (bytes > c->scratch_bytes) {
    if (c->scratch) (void)cudaFree(c->scratch);
    c->scratch = NULL;
    c->scratch_bytes = 0;
    size_t want = bytes + bytes / 4; /* headroom: shapes vary a little between calls */
    CH_CUDA_TRY(cudaMalloc(&c->scratch, want), "CUDA backend scratch");
    c->scratch_bytes = want;
  }
  *out = c->scratch;
  return CH_OK;
}

/* ---- memory ---- */

ch_status cuda_alloc(const ch_backend *be, size_t bytes, void **out) {
  (void)be;
  *out = NULL;
  /* cudaMalloc aligns to 256 bytes, beyond the 64 the seam promises. */
  CH_CUDA_TRY(cudaMalloc(out, bytes ? bytes : 1), "cudaMalloc");
  return CH_OK;
}

void cuda_free(const ch_backend *be, void *p) {
  (void)be;
  if (p) (void)cudaFree(p);
}

ch_status cuda_upload(const ch_backend *be, void *dst, const void *host, size_t bytes) {
  return ch_cuda_upload(dst, host, bytes, cuda_ctx_of(be)->stream);
}

ch_status cuda_download(const ch_backend *be, void *host, const void *src, size_t bytes) {
  return ch_cuda_download(host, src, bytes, cuda_ctx_of(be)->stream);
}

/* The copy completes before return (the host batch may be reused at once), so staging is an
 * upload into the caller's staging buffer. */
ch_status cuda_stage(const ch_backend *be, void *staging, const void *host, size_t bytes,
                     const void **dev) {
  CH_CHECK(cuda_upload(be, staging, host, bytes));
  *dev = staging;
  return CH_OK;
}

ch_status cuda_memset(const ch_backend *be, void *dst, int byte, size_t bytes) {
  if (!bytes) return CH_OK;
  CH_CUDA_TRY(cudaMemsetAsync(dst, byte, bytes, cuda_ctx_of(be)->stream), "cudaMemsetAsync");
  return CH_OK;
}

ch_status cuda_sync(const ch_backend *be) {
  return ch_cuda_stream_sync(cuda_ctx_of(be)->stream);
}

extern "C" CH_API const ch_cuda_plugin *cohort_cuda_plugin(void) {
#ifdef COHORT_CUDA_EMU
  static const ch_cuda_plugin p = {CH_CUDA_PLUGIN_ABI, "cuda (emulated)", device_count,
                                   pci_bus_id,         backend_create,    backend_destroy,
                                   cuda_group_create};
#else
  static const ch_cuda_plugin p = {CH_CUDA_PLUGIN_ABI, "cuda",         device_count,
                                   pci_bus_id,         backend_create, backend_destroy,
                                   cuda_group_create};
#endif
  return &p;
}
