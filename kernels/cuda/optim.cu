/* The optimizers over a shard's span table: AdamW and SGD, element for element the updates of
 * kernels/cpu/optim.c (cpu_adamw_span, cpu_sgd_span) as the CPU backend calls them.
 *   AdamW: p *= 1 - lr wd;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
 *          p -= (lr / bc1) m / (sqrt(v) / sqrt_bc2 + eps).
 *   SGD:   d = g + wd p;  with mu != 0: m = mu m + d (m = d when first), d = m;  p -= lr d.
 * wd is the span's (0 where it has no decay). The scalars are derived on the host exactly as
 * the CPU backend derives them (float lr / bc1, 1 - lr wd), and every float operation runs in
 * the CPU loop's order through the _rn intrinsics, which nvcc never contracts into FMAs (the
 * CPU library is built with -ffp-contract=off), with IEEE sqrt and division: the result is
 * bitwise the CPU optimizer's.
 *
 * Spans: a ch_span names n elements at `flat` of a flat buffer or `local` of a packed one. The
 * table is host memory; each call copies it, with each span's start in the concatenation of
 * all spans, into the context's scratch (a few KiB, ordered on the stream; a cache keyed on the
 * host pointer could go stale when a table is freed and another allocated at its address).
 * Decomposition: one grid-stride loop over the concatenated elements, so work is balanced
 * however uneven the spans (an embedding table beside a bias). A thread finds the span of its
 * first element by binary search, then walks forward: its later elements come in increasing
 * order, and one span holds many grid strides. Loads are scalar (span offsets are arbitrary,
 * so no alignment is known), coalesced within a span. */
#include <stdlib.h>

#include "kernels/cuda/ops.h"

namespace {

constexpr int kThreads = 256;

/* A span as the kernels read it: where its elements are, and where it starts in the
 * concatenation of all spans. */
struct dev_span {
  int64_t start, n, p_off, g_off, local;
  int decay;
};

struct adamw_k {
  float decay, b1, omb1, b2, omb2, step, sqrt_bc2, eps;
};

struct sgd_k {
  float lr, wd, mu;
  int first;
};

__device__ __forceinline__ void adamw_one(float &p, float g, float &m, float &v, float decay,
                                          const adamw_k &k) {
  p = __fmul_rn(p, decay);
  m = __fadd_rn(__fmul_rn(k.b1, m), __fmul_rn(k.omb1, g));
  v = __fadd_rn(__fmul_rn(k.b2, v), __fmul_rn(__fmul_rn(k.omb2, g), g));
  float den = __fadd_rn(__fdiv_rn(__fsqrt_rn(v), k.sqrt_bc2), k.eps);
  p = __fsub_rn(p, __fdiv_rn(__fmul_rn(k.step, m), den));
}

__device__ __forceinline__ void sgd_one(float &p, float g, float *m, float wd, const sgd_k &k) {
  float d = __fadd_rn(g, __fmul_rn(wd, p));
  if (k.mu != 0.0f) {
    *m = k.first ? d : __fadd_rn(__fmul_rn(k.mu, *m), d);
    d = *m;
  }
  p = __fsub_rn(p, __fmul_rn(k.lr, d));
}

/* Index of the span holding element i of the concatenation (spans sorted by start; empty spans
 * are skipped because the last span with start <= i is taken). */
__device__ __forceinline__ int find_span(const dev_span *sp, int nspans, int64_t i) {
  int lo = 0, hi = nspans - 1;
  while (lo < hi) {
    int mid = (lo + hi + 1) / 2;
    if (sp[mid].start <= i) lo = mid; else hi = mid - 1;
  }
  return lo;
}

/* Calls f(span, k) for every element k of every span: grid-stride over the total, spans
 * located as described above. */
template <class F>
__device__ __forceinline__ void for_each_element(const dev_span *sp, int nspans, int64_t total,
                                                 F f) {
  int64_t stride = (int64_t)gridDim.x * blockDim.x;
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= total) return;
  int s = find_span(sp, nspans, i);
  for (; i < total; i += stride) {
    while (i >= sp[s].start + sp[s].n) s++;
    f(sp[s], i - sp[s].start);
  }
}

__global__ void adamw_kernel(const dev_span *sp, int nspans, int64_t total, float *p,
                             const float *g, float *m, float *v, adamw_k k) {
  for_each_element(sp, nspans, total, [&](const dev_span &s, int64_t e) {
    int64_t l = s.local + e;
    adamw_one(p[s.p_off + e], g[s.g_off + e], m[l], v[l], s.decay ? k.decay : 1.0f, k);
  });
}

__global__ void sgd_kernel(const dev_span *sp, int nspans, int64_t total, float *p,
                           const float *g, float *m, sgd_k k) {
  for_each_element(sp, nspans, total, [&](const dev_span &s, int64_t e) {
    sgd_one(p[s.p_off + e], g[s.g_off + e], m + s.local + e, s.decay ? k.wd : 0.0f, k);
  });
}

/* Copies the span table, as dev_span, into scratch (*dev) and sets *total, the elements in all. */
ch_status upload_spans(cuda_ctx *c, const ch_span *spans, int nspans, int p_flat, int g_flat,
                       dev_span **dev, int64_t *total) {
  size_t bytes = sizeof(dev_span) * (size_t)nspans;
  dev_span *h = (dev_span *)malloc(bytes);
  if (!h) return CH_FAIL(CH_ERR_NOMEM, "optimizer span table (%d spans)", nspans);
  int64_t at = 0;
  for (int i = 0; i < nspans; i++) {
    const ch_span *s = &spans[i];
    h[i] = dev_span{at, (int64_t)s->n, (int64_t)(p_flat ? s->flat : s->local),
                    (int64_t)(g_flat ? s->flat : s->local), (int64_t)s->local, s->decay};
    at += (int64_t)s->n;
  }
  *total = at;
  void *d = NULL;
  ch_status st = cuda_scratch(c, bytes, &d);
  if (st == CH_OK) {
    /* Pageable source: the call returns once h has been copied out, so it may be freed. */
    cudaError_t e = cudaMemcpyAsync(d, h, bytes, cudaMemcpyHostToDevice, c->stream);
    if (e != cudaSuccess) st = cuda_fail(e, __FILE__, __LINE__, "optimizer span table");
  }
  free(h);
  *dev = (dev_span *)d;
  return st;
}

ch_status check(int nspans, const char *what) {
  if (nspans < 0) return CH_FAIL(CH_ERR_INVALID, "%s: %d spans", what, nspans);
  return CH_OK;
}

} // namespace

ch_status cuda_adamw(const ch_backend *be, const ch_span *spans, int nspans, float *p, int p_flat,
                     const float *g, int g_flat, float *m, float *v, const ch_adamw_args *a) {
  CH_CHECK(check(nspans, "adamw"));
  if (nspans == 0) return CH_OK;
  cuda_ctx *c = cuda_ctx_of(be);
  dev_span *sp = NULL;
  int64_t total = 0;
  CH_CHECK(upload_spans(c, spans, nspans, p_flat, g_flat, &sp, &total));
  if (total == 0) return CH_OK;
  /* As the CPU backend: step size lr / bc1 and the decay factor 1 - lr wd in float; a span
   * without decay gets factor 1 exactly, as the CPU's 1 - lr * 0. */
  adamw_k k = {1.0f - a->lr * a->weight_decay, a->beta1, 1.0f - a->beta1, a->beta2,
               1.0f - a->beta2, a->lr / a->bc1, a->sqrt_bc2, a->eps};
  CH_LAUNCH(cuda_grid(total, kThreads, 8), kThreads, 0, c->stream, adamw_kernel)(
      sp, nspans, total, p, g, m, v, k);
  CH_CUDA_LAUNCHED("adamw");
  return CH_OK;
}

ch_status cuda_sgd(const ch_backend *be, const ch_span *spans, int nspans, float *p, int p_flat,
                   const float *g, int g_flat, float *m, const ch_sgd_args *a) {
  CH_CHECK(check(nspans, "sgd"));
  if (nspans == 0) return CH_OK;
  cuda_ctx *c = cuda_ctx_of(be);
  dev_span *sp = NULL;
  int64_t total = 0;
  CH_CHECK(upload_spans(c, spans, nspans, p_flat, g_flat, &sp, &total));
  if (total == 0) return CH_OK;
  sgd_k k = {a->lr, a->weight_decay, a->momentum, a->first};
  CH_LAUNCH(cuda_grid(total, kThreads, 8), kThreads, 0, c->stream, sgd_kernel)(
      sp, nspans, total, p, g, m, k);
  CH_CUDA_LAUNCHED("sgd");
  return CH_OK;
}
