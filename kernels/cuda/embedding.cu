/* Token + position embedding (GPT-2), forward and backward; the math of kernels/cpu/embedding.c
 * for B sequences of T tokens, sequence b's tokens at tokens + b ldt (a window read in place):
 *   y[b T + t] = wte[tok(b, t)] + wpe[pos0 + t];  dwte[tok(b, t)] += dy[b T + t];
 *   dwpe[t] += dy[b T + t]  (backward: pos0 = 0).
 *
 * Forward: a grid-stride loop over the B T C outputs, V = 4 columns per thread when C % 4 == 0
 * and the tables and y are aligned (then every row is). One float addition per element, as the
 * CPU: the same bits.
 * Backward, two kernels. dwte: one thread per element of dy adding it with a float atomic,
 * because any rows may share a token and which ones is data (so repeated tokens sum in an
 * order that varies: last bits only). dwpe: one thread per (t, c) adding dy[b T + t][c] into
 * dwpe for b = 0, 1, ... in turn, the CPU's order of additions: the same bits, no atomics. */
#include "kernels/cuda/ops.h"

namespace {

constexpr int kThreads = 256;

template <int V>
__global__ void emb_forward(float *y, const int32_t *tokens, int64_t ldt, const float *wte,
                            const float *wpe, int64_t n, int T, int C) {
  int64_t cv = C / V, total = n * cv, stride = (int64_t)gridDim.x * blockDim.x;
  for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
    int64_t i = idx / cv, b = i / T, t = i - b * T;
    int c = (int)(idx - i * cv) * V;
    fvec<V> te = fvec_load<V>(wte + (int64_t)tokens[b * ldt + t] * C + c);
    fvec<V> pe = fvec_load<V>(wpe + t * C + c);
#pragma unroll
    for (int l = 0; l < V; l++) te.v[l] += pe.v[l];
    fvec_store<V>(y + i * C + c, te);
  }
}

__global__ void emb_backward_wte(float *dwte, const float *dy, const int32_t *tokens, int64_t ldt,
                                 int64_t n, int T, int C) {
  int64_t total = n * C, stride = (int64_t)gridDim.x * blockDim.x;
  for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
    int64_t i = idx / C, b = i / T, t = i - b * T;
    atomicAdd(dwte + (int64_t)tokens[b * ldt + t] * C + (idx - i * C), dy[idx]);
  }
}

__global__ void emb_backward_wpe(float *dwpe, const float *dy, int B, int T, int C) {
  int64_t total = (int64_t)T * C, stride = (int64_t)gridDim.x * blockDim.x;
  for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
    float acc = dwpe[idx];
    for (int b = 0; b < B; b++) acc += dy[(int64_t)b * total + idx];
    dwpe[idx] = acc;
  }
}

ch_status check(int B, int T, int C, int64_t ldt) {
  if (B < 0 || T < 0 || C <= 0 || (B > 1 && ldt < T))
    return CH_FAIL(CH_ERR_INVALID, "embedding: B = %d, T = %d, C = %d, ldt = %lld", B, T, C,
                   (long long)ldt);
  return CH_OK;
}

} // namespace

ch_status cuda_embedding_fwd(const ch_backend *be, float *y, const int32_t *tokens, int64_t ldt,
                             int pos0, const float *wte, const float *wpe, int B, int T, int C) {
  CH_CHECK(check(B, T, C, ldt));
  int64_t n = (int64_t)B * T;
  if (n == 0) return CH_OK;
  cudaStream_t s = cuda_ctx_of(be)->stream;
  const float *pe = wpe + (int64_t)pos0 * C;
  if (C % 4 == 0 && cuda_aligned16(y) && cuda_aligned16(wte) && cuda_aligned16(pe))
    CH_LAUNCH(cuda_grid(n * C / 4, kThreads, 8), kThreads, 0, s, emb_forward<4>)(y, tokens, ldt, wte, pe, n, T, C);
  else
    CH_LAUNCH(cuda_grid(n * C, kThreads, 8), kThreads, 0, s, emb_forward<1>)(y, tokens, ldt, wte, pe, n, T, C);
  CH_CUDA_LAUNCHED("embedding forward");
  return CH_OK;
}

ch_status cuda_embedding_bwd(const ch_backend *be, float *dwte, float *dwpe, const float *dy,
                             const int32_t *tokens, int64_t ldt, int B, int T, int C) {
  CH_CHECK(check(B, T, C, ldt));
  int64_t n = (int64_t)B * T;
  if (n == 0) return CH_OK;
  cudaStream_t s = cuda_ctx_of(be)->stream;
  CH_LAUNCH(cuda_grid(n * C, kThreads, 8), kThreads, 0, s, emb_backward_wte)(dwte, dy, tokens, ldt, n, T, C);
  CH_CUDA_LAUNCHED("embedding backward (wte)");
  CH_LAUNCH(cuda_grid((int64_t)T * C, kThreads, 8), kThreads, 0, s, emb_backward_wpe)(dwpe, dy, B, T, C);
  CH_CUDA_LAUNCHED("embedding backward (wpe)");
  return CH_OK;
}
