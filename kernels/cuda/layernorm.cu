/* LayerNorm over the last dimension, forward and backward; the math of kernels/cpu/layernorm.c:
 *   mean = sum_j x_j / D,  var = sum_j (x_j - mean)^2 / D,  rstd = 1 / sqrt(var + eps),
 *   xhat_j = (x_j - mean) rstd,  y_j = xhat_j w_j + b_j;
 *   backward with g_j = dy_j w_j:  dx_j += rstd (g_j - mean_k g_k - xhat_j mean_k(g_k xhat_k)),
 *   dw_j += sum_rows dy_j xhat_j,  db_j += sum_rows dy_j.
 *
 * Decomposition: one warp per row, kWarps rows per block, blocks striding over the rows. Each
 * lane sums every 32nd group of V elements in fp32 and a butterfly of shuffles completes the
 * row sum, so a row needs no shared memory and no __syncthreads. The row (a few KiB for
 * GPT-sized D) is read again by the later passes from L1/L2 rather than held in registers,
 * which keeps one kernel correct for any D. Mean and variance take two passes, as on the CPU,
 * so var >= 0 and constant rows are exact. Versus the CPU's double accumulators the fp32 sums
 * differ by a few ulp of the row's scale, well inside the 1e-5 the tests allow. */
#include "kernels/cuda/common.cuh"

namespace {

constexpr int kWarps = 8;
/* Backward keeps a block's dw/db partials in shared memory up to this D (2 D floats = 32 KiB,
 * under the 48 KiB a block gets without opting in); above it lanes add to global directly. */
constexpr int kSharedMaxDim = 4096;

template <int V>
__global__ void __launch_bounds__(kWarps * 32)
    ln_forward(float *y, float *mean, float *rstd, const float *x, const float *w,
               const float *b, int64_t rows, int dim, float eps) {
  int lane = threadIdx.x & 31;
  for (int64_t r = (int64_t)blockIdx.x * kWarps + threadIdx.x / 32; r < rows;
       r += (int64_t)gridDim.x * kWarps) {
    const float *xr = x + r * dim;
    float acc = 0.0f;
    for (int j = lane * V; j < dim; j += 32 * V) {
      fvec<V> xv = fvec_load<V>(xr + j);
#pragma unroll
      for (int l = 0; l < V; l++) acc += xv.v[l];
    }
    float mu = warp_sum(acc) / (float)dim;
    acc = 0.0f;
    for (int j = lane * V; j < dim; j += 32 * V) {
      fvec<V> xv = fvec_load<V>(xr + j);
#pragma unroll
      for (int l = 0; l < V; l++) acc += (xv.v[l] - mu) * (xv.v[l] - mu);
    }
    float var = warp_sum(acc) / (float)dim;
    float rs = 1.0f / sqrtf(var + eps); /* IEEE sqrt and division, not rsqrtf's 2 ulp */
    for (int j = lane * V; j < dim; j += 32 * V) {
      fvec<V> xv = fvec_load<V>(xr + j), wv = fvec_load<V>(w + j), bv = fvec_load<V>(b + j);
#pragma unroll
      for (int l = 0; l < V; l++) xv.v[l] = (xv.v[l] - mu) * rs * wv.v[l] + bv.v[l];
      fvec_store<V>(y + r * dim + j, xv);
    }
    if (lane == 0) {
      if (mean) mean[r] = mu;
      if (rstd) rstd[r] = rs;
    }
  }
}

/* SHARED: the block first sums its rows' dw/db contributions in shared memory (atomics among
 * its own warps only) and adds them to global once per block, so global atomics per column
 * number the blocks, not the rows. */
template <int V, bool SHARED>
__global__ void __launch_bounds__(kWarps * 32)
    ln_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                const float *mean, const float *rstd, const float *w, int64_t rows, int dim) {
  CH_DYNAMIC_SHARED(float, part); /* SHARED: dw partial [dim], then db partial [dim] */
  float *pdw = dw, *pdb = db;
  if constexpr (SHARED) {
    for (int j = threadIdx.x; j < 2 * dim; j += blockDim.x) part[j] = 0.0f;
    __syncthreads();
    pdw = part;
    pdb = part + dim;
  }
  int lane = threadIdx.x & 31;
  for (int64_t r = (int64_t)blockIdx.x * kWarps + threadIdx.x / 32; r < rows;
       r += (int64_t)gridDim.x * kWarps) {
    const float *xr = x + r * dim, *dyr = dy + r * dim;
    float mu = mean[r], rs = rstd[r], s1 = 0.0f, s2 = 0.0f;
    for (int j = lane * V; j < dim; j += 32 * V) {
      fvec<V> xv = fvec_load<V>(xr + j), gv = fvec_load<V>(dyr + j), wv = fvec_load<V>(w + j);
#pragma unroll
      for (int l = 0; l < V; l++) {
        float g = gv.v[l] * wv.v[l];
        s1 += g;
        s2 += g * ((xv.v[l] - mu) * rs);
      }
    }
    float m1 = warp_sum(s1) / (float)dim, m2 = warp_sum(s2) / (float)dim;
    for (int j = lane * V; j < dim; j += 32 * V) {
      fvec<V> xv = fvec_load<V>(xr + j), gv = fvec_load<V>(dyr + j), wv = fvec_load<V>(w + j);
      fvec<V> dv = fvec_load<V>(dx + r * dim + j);
#pragma unroll
      for (int l = 0; l < V; l++) {
        float xh = (xv.v[l] - mu) * rs, g = gv.v[l] * wv.v[l];
        dv.v[l] += rs * (g - m1 - xh * m2);
        atomicAdd(pdw + j + l, gv.v[l] * xh);
        atomicAdd(pdb + j + l, gv.v[l]);
      }
      fvec_store<V>(dx + r * dim + j, dv);
    }
  }
  if constexpr (SHARED) {
    __syncthreads();
    for (int j = threadIdx.x; j < dim; j += blockDim.x) {
      atomicAdd(dw + j, part[j]);
      atomicAdd(db + j, part[dim + j]);
    }
  }
}

/* V = 4 needs every row start 16-byte aligned: D % 4 == 0 and aligned base pointers. */
bool use_vec4(int dim, const void *p0, const void *p1, const void *p2, const void *p3) {
  return dim % 4 == 0 && cuda_aligned16(p0) && cuda_aligned16(p1) &&
         cuda_aligned16(p2) && cuda_aligned16(p3);
}

} // namespace

ch_status ch_cuda_layernorm_forward(float *y, float *mean, float *rstd, const float *x,
                                    const float *w, const float *b, int64_t rows, int dim,
                                    float eps, ch_cuda_stream s) {
  if (rows < 0 || dim <= 0)
    return CH_FAIL(CH_ERR_INVALID, "layernorm: rows = %lld, dim = %d", (long long)rows, dim);
  if (rows == 0) return CH_OK;
  int grid = cuda_grid(rows, kWarps, 16);
  if (use_vec4(dim, y, x, w, b))
    CH_LAUNCH(grid, kWarps * 32, 0, s, ln_forward<4>)(y, mean, rstd, x, w, b, rows, dim, eps);
  else
    CH_LAUNCH(grid, kWarps * 32, 0, s, ln_forward<1>)(y, mean, rstd, x, w, b, rows, dim, eps);
  CH_CUDA_LAUNCHED("layernorm forward");
  return CH_OK;
}

ch_status ch_cuda_layernorm_backward(float *dx, float *dw, float *db, const float *dy,
                                     const float *x, const float *mean, const float *rstd,
                                     const float *w, int64_t rows, int dim, ch_cuda_stream s) {
  if (rows < 0 || dim <= 0)
    return CH_FAIL(CH_ERR_INVALID, "layernorm: rows = %lld, dim = %d", (long long)rows, dim);
  if (rows == 0) return CH_OK;
  /* Fewer, fuller blocks than forward: each block ends with 2 D global atomics. */
  int grid = cuda_grid(rows, kWarps, 2);
  bool v4 = use_vec4(dim, dx, dy, x, w), shared = dim <= kSharedMaxDim;
  size_t smem = shared ? 2 * (size_t)dim * sizeof(float) : 0;
  if (v4 && shared)
    CH_LAUNCH(grid, kWarps * 32, smem, s, ln_backward<4, true>)(dx, dw, db, dy, x, mean, rstd, w, rows, dim);
  else if (v4)
    CH_LAUNCH(grid, kWarps * 32, 0, s, ln_backward<4, false>)(dx, dw, db, dy, x, mean, rstd, w, rows, dim);
  else if (shared)
    CH_LAUNCH(grid, kWarps * 32, smem, s, ln_backward<1, true>)(dx, dw, db, dy, x, mean, rstd, w, rows, dim);
  else
    CH_LAUNCH(grid, kWarps * 32, 0, s, ln_backward<1, false>)(dx, dw, db, dy, x, mean, rstd, w, rows, dim);
  CH_CUDA_LAUNCHED("layernorm backward");
  return CH_OK;
}
