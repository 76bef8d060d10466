/* Token + position embedding (GPT-2), forward and backward; kernels/cpu/embedding.c's math:
 * y[i] = wte[tokens[i]] + wpe[i % T]; dwte[tokens[i]] += dy[i]; dwpe[i % T] += dy[i].
 *
 * Forward: a grid-stride loop over the n * C outputs, V = 4 columns per thread when C % 4 == 0
 * and the tables are aligned (then every row is).
 * Backward, two kernels. dwte: one thread per element of dy adding it with a float atomic,
 * because any rows may share a token and which ones is data. dwpe: one thread per (t, c) summing
 * dy[t + k T][c] over the sequences k in order, so it needs no atomics and is deterministic. */
#include "kernels/cuda/common.cuh"

namespace {

constexpr int kThreads = 256;

template <int V>
__global__ void emb_forward(float *y, const int32_t *tokens, const float *wte, const float *wpe,
                            int64_t n, int T, int C) {
  int64_t cv = C / V, total = n * cv, stride = (int64_t)gridDim.x * blockDim.x;
  for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
    int64_t i = idx / cv;
    int c = (int)(idx - i * cv) * V;
    fvec<V> te = fvec_load<V>(wte + (int64_t)tokens[i] * C + c);
    fvec<V> pe = fvec_load<V>(wpe + (i % T) * C + c);
#pragma unroll
    for (int l = 0; l < V; l++) te.v[l] += pe.v[l];
    fvec_store<V>(y + i * C + c, te);
  }
}

__global__ void emb_backward_wte(float *dwte, const float *dy, const int32_t *tokens, int64_t n,
                                 int C) {
  int64_t total = n * C, stride = (int64_t)gridDim.x * blockDim.x;
  for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
    int64_t i = idx / C;
    atomicAdd(dwte + (int64_t)tokens[i] * C + (idx - i * C), dy[idx]);
  }
}

/* Positions t < min(T, n) occur; rows t, t + T, t + 2T, ... < n hold position t. */
__global__ void emb_backward_wpe(float *dwpe, const float *dy, int64_t n, int T, int C) {
  int64_t tmax = n < T ? n : T, total = tmax * C, stride = (int64_t)gridDim.x * blockDim.x;
  for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
    int64_t t = idx / C, c = idx - t * C;
    float acc = 0.0f;
    for (int64_t i = t; i < n; i += T) acc += dy[i * C + c];
    dwpe[idx] += acc;
  }
}

ch_status check(int64_t n, int T, int C) {
  if (n < 0 || T <= 0 || C <= 0)
    return CH_FAIL(CH_ERR_INVALID, "embedding: n = %lld, T = %d, C = %d", (long long)n, T, C);
  return CH_OK;
}

} // namespace

ch_status ch_cuda_embedding_forward(float *y, const int32_t *tokens, const float *wte,
                                    const float *wpe, int64_t n, int T, int C, ch_cuda_stream s) {
  CH_CHECK(check(n, T, C));
  if (n == 0) return CH_OK;
  if (C % 4 == 0 && cuda_aligned16(y) && cuda_aligned16(wte) && cuda_aligned16(wpe))
    CH_LAUNCH(cuda_grid(n * C / 4, kThreads, 8), kThreads, 0, s, emb_forward<4>)(y, tokens, wte, wpe, n, T, C);
  else
    CH_LAUNCH(cuda_grid(n * C, kThreads, 8), kThreads, 0, s, emb_forward<1>)(y, tokens, wte, wpe, n, T, C);
  CH_CUDA_LAUNCHED("embedding forward");
  return CH_OK;
}

ch_status ch_cuda_embedding_backward(float *dwte, float *dwpe, const float *dy,
                                     const int32_t *tokens, int64_t n, int T, int C,
                                     ch_cuda_stream s) {
  CH_CHECK(check(n, T, C));
  if (n == 0) return CH_OK;
  CH_LAUNCH(cuda_grid(n * C, kThreads, 8), kThreads, 0, s, emb_backward_wte)(dwte, dy, tokens, n, C);
  CH_CUDA_LAUNCHED("embedding backward (wte)");
  int64_t positions = n < T ? n : T;
  CH_LAUNCH(cuda_grid(positions * C, kThreads, 8), kThreads, 0, s, emb_backward_wpe)(dwpe, dy, n, T, C);
  CH_CUDA_LAUNCHED("embedding backward (wpe)");
  return CH_OK;
}
