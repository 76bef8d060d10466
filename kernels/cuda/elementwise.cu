/* Elementwise ops: GELU forward/backward and add.
 *
 * Decomposition: a grid-stride loop in which each thread handles V consecutive elements per
 * trip, V = 4 (one 16-byte load per operand) when every pointer is 16-byte aligned, else V = 1;
 * the n % V tail runs scalar after the vector part. These ops are bound by memory bandwidth, so
 * wide loads and a grid sized to the device (not to n) are what matters. No __restrict__:
 * outputs may alias inputs, and each element is read before it is written by the same thread. */
#include "kernels/cuda/common.cuh"

namespace {

/* GELU in the sigmoid form of kernels/cpu/activation.c: with u = c (x + a x^3),
 * 0.5 x (1 + tanh u) = x s, s = 1 / (1 + e^(-2u)), free of the cancellation of 1 + tanh u for
 * x << 0. gelu'(x) = s + 2 x s (1 - s) c (1 + 3 a x^2), with 1 - s = e^(-2u) s.
 * expf (not __expf): its error is 2 ulp, against the CPU's cpu_exp_f32 at < 2e-7 relative. */
constexpr float kGeluC = 0.7978845608028654f; /* sqrt(2/pi) */
constexpr float kGeluA = 0.044715f;

struct gelu_fwd {
  __device__ float operator()(float x, float) const {
    float e = expf(-2.0f * kGeluC * (x + kGeluA * x * x * x));
    return x / (1.0f + e);
  }
};

struct gelu_bwd { /* (dy, x) -> dx */
  __device__ float operator()(float dy, float x) const {
    float e = expf(-2.0f * kGeluC * (x + kGeluA * x * x * x));
    float s = 1.0f / (1.0f + e);
    return dy * (s + 2.0f * x * (e * s) * s * kGeluC * (1.0f + 3.0f * kGeluA * x * x));
  }
};

struct add_op {
  __device__ float operator()(float a, float b) const { return a + b; }
};

/* y[i] = f(a[i], b[i]); with NIN == 1, b is not read (f gets 0). */
template <int V, int NIN, class F>
__global__ void map_kernel(float *y, const float *a, const float *b, int64_t n, F f) {
  int64_t stride = (int64_t)gridDim.x * blockDim.x, nv = n / V;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < nv; i += stride) {
    fvec<V> va = fvec_load<V>(a + i * V), vb = {};
    if constexpr (NIN == 2) vb = fvec_load<V>(b + i * V);
#pragma unroll
    for (int l = 0; l < V; l++) va.v[l] = f(va.v[l], vb.v[l]);
    fvec_store<V>(y + i * V, va);
  }
  for (int64_t i = nv * V + (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
    y[i] = f(a[i], NIN == 2 ? b[i] : 0.0f);
}

template <int NIN, class F>
ch_status map(float *y, const float *a, const float *b, int64_t n, F f, ch_cuda_stream s) {
  if (n < 0) return CH_FAIL(CH_ERR_INVALID, "elementwise op: n = %lld", (long long)n);
  if (n == 0) return CH_OK;
  const int threads = 256;
  bool vec = cuda_aligned16(y) && cuda_aligned16(a) && (NIN == 1 || cuda_aligned16(b));
  if (vec)
    CH_LAUNCH(cuda_grid(n / 4 + 1, threads, 8), threads, 0, s, map_kernel<4, NIN>)(y, a, b, n, f);
  else
    CH_LAUNCH(cuda_grid(n, threads, 8), threads, 0, s, map_kernel<1, NIN>)(y, a, b, n, f);
  CH_CUDA_LAUNCHED("elementwise kernel");
  return CH_OK;
}

} // namespace

ch_status ch_cuda_gelu_forward(float *y, const float *x, int64_t n, ch_cuda_stream s) {
  return map<1>(y, x, nullptr, n, gelu_fwd{}, s);
}

ch_status ch_cuda_gelu_backward(float *dx, const float *dy, const float *x, int64_t n,
                                ch_cuda_stream s) {
  return map<2>(dx, dy, x, n, gelu_bwd{}, s);
}

ch_status ch_cuda_add(float *y, const float *a, const float *b, int64_t n, ch_cuda_stream s) {
  return map<2>(y, a, b, n, add_op{}, s);
}
