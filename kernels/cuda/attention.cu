/* Causal multi-head self-attention on the device, the math of kernels/cpu/attention.c:
 * per sequence b and head h (q, k, v = the HS columns of head h, scale = 1/sqrt(HS)),
 *   S = scale q k^T;  P_ij = softmax over j <= off + i (masked P_ij exactly 0);  out = P v
 *   backward: dP = dout v^T;  dS = P * (dP - rowsum(dP * P)) * scale;
 *             dq = dS k;  dk = dS^T q;  dv = P^T dout.
 * The GEMMs are cuBLAS strided-batched over the NH heads of one sequence (cuda_gemm, gemm.cu):
 * q, k, v are read in place from qkv [B*T, 3C] (row stride 3C, head h at column h*HS, so the
 * heads of a sequence are HS apart), and one call per sequence covers its heads. The GEMMs
 * compute the full T x T rectangles; masked entries of P and dS are 0, so those products are
 * the exact causal sums. Softmax and its backward are fused kernels in fp32, one warp per row.
 * In bf16 mode (gemm.cuh) every GEMM operand (qkv, P, dout, dS, the caches) is a bf16 copy. */
#include <math.h>

#include "kernels/cuda/gemm.cuh"

namespace {

constexpr int kRowsPerBlock = 8; /* warps per block, one row each */

/* Rows of scores s [rows, Tk] (already scaled) -> causal softmax in place. Row r is query
 * i = r % Tq of its (sequence, head) at absolute position off + i: it sees keys 0..off+i, and
 * the rest of the row is set to 0. Max-subtracted, fp32. */
__global__ void softmax_causal(float *s, int64_t rows, int Tq, int Tk, int off) {
  int64_t r = (int64_t)blockIdx.x * kRowsPerBlock + threadIdx.y;
  if (r >= rows) return; /* whole warps leave together: the shuffles below stay full */
  float *row = s + r * Tk;
  int n = off + (int)(r % Tq) + 1, lane = threadIdx.x;
  float mx = -INFINITY;
  for (int j = lane; j < n; j += 32) mx = fmaxf(mx, row[j]);
  mx = warp_max(mx);
  float sum = 0.0f;
  for (int j = lane; j < n; j += 32) {
    float e = expf(row[j] - mx);
    row[j] = e;
    sum += e;
  }
  float inv = 1.0f / warp_sum(sum); /* >= 1: the max term is e^0 */
  for (int j = lane; j < Tk; j += 32) row[j] = j < n ? row[j] * inv : 0.0f;
}

/* Softmax backward in place over rows of T: d holds dP, p the probabilities; row r is query
 * i = r % T. d_ij <- p_ij (d_ij - sum_j' d_ij' p_ij') scale for j <= i, 0 beyond. */
__global__ void softmax_causal_bwd(float *d, const float *p, int64_t rows, int T, float scale) {
  int64_t r = (int64_t)blockIdx.x * kRowsPerBlock + threadIdx.y;
  if (r >= rows) return;
  float *dr = d + r * T;
  const float *pr = p + r * T;
  int n = (int)(r % T) + 1, lane = threadIdx.x;
  float dot = 0.0f;
  for (int j = lane; j < n; j += 32) dot += dr[j] * pr[j];
  dot = warp_sum(dot);
  for (int j = lane; j < T; j += 32) dr[j] = j < n ? pr[j] * (dr[j] - dot) * scale : 0.0f;
}

/* kcache/vcache rows past..past+n-1 <- the k and v columns of qkv's n rows [n, 3C]. */
__global__ void append_kv(float *kc, float *vc, const float *qkv, int past, int n, int C) {
  int64_t total = (int64_t)n * C, stride = (int64_t)gridDim.x * blockDim.x;
  for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += stride) {
    int64_t i = e / C, j = e % C, dst = (past + i) * C + j;
    kc[dst] = qkv[i * 3 * C + C + j];
    vc[dst] = qkv[i * 3 * C + 2 * C + j];
  }
}

ch_status launch_softmax(cuda_ctx *c, float *s, int64_t rows, int Tq, int Tk, int off) {
  dim3 block(32, kRowsPerBlock);
  int64_t grid = (rows + kRowsPerBlock - 1) / kRowsPerBlock;
  CH_LAUNCH((unsigned)grid, block, 0, c->stream, softmax_causal)(s, rows, Tq, Tk, off);
  CH_CUDA_LAUNCHED("softmax_causal");
  return CH_OK;
}

ch_status check_heads(const char *what, int B, int T, int NH, int HS) {
  if (B < 0 || T < 0 || NH < 0 || HS < 0 || (int64_t)NH * HS * 3 > INT32_MAX)
    return CH_FAIL(CH_ERR_INVALID, "%s: B %d T %d NH %d HS %d", what, B, T, NH, HS);
  return CH_OK;
}

} // namespace

/* `saved` is P [B, NH, T, T]: backward reads it back instead of recomputing it. */
ch_status cuda_attention_saved(const ch_backend *be, int B, int T, int NH, int HS,
                               size_t *floats) {
  (void)be, (void)HS;
  *floats = (size_t)B * NH * T * T;
  return CH_OK;
}

ch_status cuda_attention_fwd(const ch_backend *be, float *out, float *probs, const float *qkv,
                             int B, int T, int NH, int HS) {
  CH_CHECK(check_heads("attention_fwd", B, T, NH, HS));
  if (B == 0 || T == 0 || NH == 0 || HS == 0) return CH_OK;
  cuda_ctx *c = cuda_ctx_of(be);
  bool bf = cuda_bf16_gemms(c);
  int C = NH * HS;
  int64_t tt = (int64_t)T * T, nqkv = (int64_t)B * T * 3 * C;
  size_t bytes[2] = {cuda_operand_bytes(c, nqkv), cuda_operand_bytes(c, NH * tt)};
  void *part[2];
  const void *x, *p = probs;
  CH_CHECK(cuda_scratch_parts(c, 2, bytes, part));
  CH_CHECK(cuda_operand(be, qkv, nqkv, part[0], &x));
  for (int b = 0; b < B; b++) {
    int64_t q0 = (int64_t)b * T * 3 * C;
    float *pb = probs + b * NH * tt;
    /* S_h = scale q_h k_h^T into probs [NH, T, T] */
    CH_CHECK(cuda_gemm(c->blas, bf, 0, 1, T, T, HS, 1.0f / sqrtf((float)HS), cuda_elem(x, q0, bf),
                       3 * C, HS, cuda_elem(x, q0 + C, bf), 3 * C, HS, 0.0f, pb, T, tt, NH));
    CH_CHECK(launch_softmax(c, pb, (int64_t)NH * T, T, T, 0));
    CH_CHECK(cuda_operand(be, pb, NH * tt, part[1], &p));
    /* out_h = P_h v_h into out [T, C] at column h*HS */
    CH_CHECK(cuda_gemm(c->blas, bf, 0, 0, T, HS, T, 1.0f, p, T, tt, cuda_elem(x, q0 + 2 * C, bf),
                       3 * C, HS, 0.0f, out + (int64_t)b * T * C, C, HS, NH));
  }
  return CH_OK;
}

/* dS for all NH heads of a sequence (they are batched) lives in the context's scratch. `out`
 * is not needed: the saved P gives rowsum(dP * P) directly. */
ch_status cuda_attention_bwd(const ch_backend *be, float *dqkv, const float *dout,
                             const float *qkv, const float *out, const float *probs, int B, int T,
                             int NH, int HS) {
  (void)out;
  CH_CHECK(check_heads("attention_bwd", B, T, NH, HS));
  if (B == 0 || T == 0 || NH == 0 || HS == 0) return CH_OK;
  cuda_ctx *c = cuda_ctx_of(be);
  bool bf = cuda_bf16_gemms(c);
  int C = NH * HS;
  float scale = 1.0f / sqrtf((float)HS);
  int64_t tt = (int64_t)T * T, nqkv = (int64_t)B * T * 3 * C, nout = (int64_t)B * T * C;
  /* dS (fp32), then the bf16 copies: qkv, dout, one sequence's P and dS */
  size_t bytes[5] = {sizeof(float) * NH * tt, cuda_operand_bytes(c, nqkv),
                     cuda_operand_bytes(c, nout), cuda_operand_bytes(c, NH * tt),
                     cuda_operand_bytes(c, NH * tt)};
  void *part[5];
  CH_CHECK(cuda_scratch_parts(c, 5, bytes, part));
  float *ds = (float *)part[0];
  const void *x, *dy, *p, *dso;
  CH_CHECK(cuda_operand(be, qkv, nqkv, part[1], &x));
  CH_CHECK(cuda_operand(be, dout, nout, part[2], &dy));
  dim3 block(32, kRowsPerBlock);
  int64_t rows = (int64_t)NH * T;
  for (int b = 0; b < B; b++) {
    int64_t q0 = (int64_t)b * T * 3 * C, o0 = (int64_t)b * T * C;
    const float *pb = probs + b * NH * tt;
    const void *q = cuda_elem(x, q0, bf), *k = cuda_elem(x, q0 + C, bf),
               *v = cuda_elem(x, q0 + 2 * C, bf), *dob = cuda_elem(dy, o0, bf);
    float *dq = dqkv + q0;
    /* dP_h = dout_h v_h^T */
    CH_CHECK(cuda_gemm(c->blas, bf, 0, 1, T, T, HS, 1.0f, dob, C, HS, v, 3 * C, HS, 0.0f, ds, T,
                       tt, NH));
    CH_LAUNCH((unsigned)((rows + kRowsPerBlock - 1) / kRowsPerBlock), block, 0, c->stream,
              softmax_causal_bwd)(ds, pb, rows, T, scale);
    CH_CUDA_LAUNCHED("softmax_causal_bwd");
    CH_CHECK(cuda_operand(be, pb, NH * tt, part[3], &p));
    CH_CHECK(cuda_operand(be, ds, NH * tt, part[4], &dso));
    /* dq_h = dS_h k_h;  dk_h = dS_h^T q_h;  dv_h = P_h^T dout_h (all overwritten) */
    CH_CHECK(cuda_gemm(c->blas, bf, 0, 0, T, HS, T, 1.0f, dso, T, tt, k, 3 * C, HS, 0.0f, dq,
                       3 * C, HS, NH));
    CH_CHECK(cuda_gemm(c->blas, bf, 1, 0, T, HS, T, 1.0f, dso, T, tt, q, 3 * C, HS, 0.0f, dq + C,
                       3 * C, HS, NH));
    CH_CHECK(cuda_gemm(c->blas, bf, 1, 0, T, HS, T, 1.0f, p, T, tt, dob, C, HS, 0.0f, dq + 2 * C,
                       3 * C, HS, NH));
  }
  return CH_OK;
}

/* `scratch` (the caller's n (past + n) floats, one head's scores) is not used: the scores of
 * all NH heads, batched, live in the context's scratch. */
ch_status cuda_attention_decode(const ch_backend *be, float *out, float *scratch,
                                const float *qkv, float *kcache, float *vcache, int past, int n,
                                int NH, int HS) {
  (void)scratch;
  CH_CHECK(check_heads("attention_decode", 1, n, NH, HS));
  if (past < 0) return CH_FAIL(CH_ERR_INVALID, "attention_decode: past %d", past);
  int C = NH * HS, Tk = past + n;
  if (n == 0 || C == 0) return CH_OK; /* C 0: a tensor-parallel rank without heads */
  cuda_ctx *c = cuda_ctx_of(be);
  bool bf = cuda_bf16_gemms(c);
  CH_LAUNCH(cuda_grid((int64_t)n * C, 256, 8), 256, 0, c->stream, append_kv)(kcache, vcache, qkv,
                                                                             past, n, C);
  CH_CUDA_LAUNCHED("append_kv");
  int64_t ns = (int64_t)n * Tk, nkv = (int64_t)Tk * C;
  size_t bytes[5] = {sizeof(float) * NH * ns, cuda_operand_bytes(c, (int64_t)n * 3 * C),
                     cuda_operand_bytes(c, nkv), cuda_operand_bytes(c, nkv),
                     cuda_operand_bytes(c, NH * ns)};
  void *part[5];
  CH_CHECK(cuda_scratch_parts(c, 5, bytes, part));
  float *s = (float *)part[0];
  const void *q, *k, *v, *p;
  CH_CHECK(cuda_operand(be, qkv, (int64_t)n * 3 * C, part[1], &q));
  CH_CHECK(cuda_operand(be, kcache, nkv, part[2], &k));
  CH_CHECK(cuda_operand(be, vcache, nkv, part[3], &v));
  /* S_h [n, Tk] = scale q_h k_h^T; the causal offset is past */
  CH_CHECK(cuda_gemm(c->blas, bf, 0, 1, n, Tk, HS, 1.0f / sqrtf((float)HS), q, 3 * C, HS, k, C, HS,
                     0.0f, s, Tk, ns, NH));
  CH_CHECK(launch_softmax(c, s, (int64_t)NH * n, n, Tk, past));
  CH_CHECK(cuda_operand(be, s, NH * ns, part[4], &p));
  return cuda_gemm(c->blas, bf, 0, 0, n, HS, Tk, 1.0f, p, Tk, ns, v, C, HS, 0.0f, out, C, HS, NH);
}
