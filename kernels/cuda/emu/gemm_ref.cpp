/* The emulation's reference GEMM (gemm_ref.h): clear loops in float, fast enough for tests.
 *
 * op(A) and op(B) are first unpacked into float copies laid out for the inner loop (op(A) by
 * columns, op(B) by columns of op(B), i.e. k contiguous per output column), so types and
 * transposes are handled once and the product loop is one shape. The product loop keeps, for a
 * block of IB rows and 4 columns of D, 4 x IB float accumulators and walks p = 0 .. k-1 in
 * order: every D[i, j] is acc += a[i, p] * b[p, j] in exactly k order, as one GPU thread's
 * accumulator, while the loop over i is contiguous and vectorizes. */
#include "gemm_ref.h"

#include <algorithm>
#include <cmath>
#include <new>
#include <vector>

namespace emu {
namespace {

constexpr int64_t IB = 128; /* rows of D per block: 4 columns x 128 floats of accumulators */

/* Unpacks op(X) (rows x cols after the transpose) into out, column-major with leading
 * dimension rows: out[c * rows + r] = op(X)[r, c]. */
void unpack(const operand &x, int64_t rows, int64_t cols, float *out) {
  for (int64_t c = 0; c < cols; ++c)
    for (int64_t r = 0; r < rows; ++r) {
      size_t at = x.trans ? (size_t)(c + r * x.ld) : (size_t)(r + c * x.ld);
      out[c * rows + r] = load(x.p, x.type, at);
    }
}

/* acc_j[i] += sum over p in order of a[p * lda + i] * b_j[p], for 4 columns j at once. */
void block4(const float *a, int64_t lda, int64_t ib, int64_t k, const float *b0, const float *b1,
            const float *b2, const float *b3, float *__restrict acc0, float *__restrict acc1,
            float *__restrict acc2, float *__restrict acc3) {
  for (int64_t p = 0; p < k; ++p) {
    const float *__restrict ap = a + p * lda;
    const float x0 = b0[p], x1 = b1[p], x2 = b2[p], x3 = b3[p];
    for (int64_t i = 0; i < ib; ++i) {
      const float av = ap[i];
      acc0[i] += av * x0;
      acc1[i] += av * x1;
      acc2[i] += av * x2;
      acc3[i] += av * x3;
    }
  }
}

/* The epilogue of one element: alpha * acc + beta * C + bias, then the activation. */
float finish(const gemm &g, float acc, int64_t i, int64_t j) {
  float v = g.alpha * acc;
  if (g.beta != 0.0f) v += g.beta * load(g.c.p, g.c.type, (size_t)(i + j * g.c.ld));
  if (g.bias) v += load(g.bias, g.bias_type, (size_t)i);
  if (g.act == ACT_RELU) v = v > 0.0f ? v : 0.0f;
  if (g.act == ACT_GELU) v = gelu_tanh(v);
  return v;
}

} // namespace

float gelu_tanh(float x) {
  const float s = 0.7978845608028654f; /* sqrt(2 / pi) */
  return 0.5f * x * (1.0f + std::tanh(s * (x + 0.044715f * x * x * x)));
}

bool gemm_run(const gemm &g) {
  const int64_t m = g.m, n = g.n, k = g.k;
  if (m <= 0 || n <= 0) return true;
  /* alpha == 0: cuBLAS does not read A and B (a NaN there must not reach D). */
  const int64_t kk = g.alpha == 0.0f ? 0 : k;
  std::vector<float> af, bf, acc;
  try {
    af.resize((size_t)(m * kk));
    bf.resize((size_t)(n * k));
    acc.resize((size_t)(4 * IB));
  } catch (const std::bad_alloc &) {
    return false;
  }
  unpack(g.a, m, kk, af.data());
  if (kk > 0 || g.bgrad_b) unpack(g.b, k, n, bf.data()); /* bf[j * k + p] = op(B)[p, j] */

  for (int64_t i0 = 0; i0 < m; i0 += IB) {
    const int64_t ib = std::min(IB, m - i0);
    for (int64_t j0 = 0; j0 < n; j0 += 4) {
      const int64_t jb = std::min<int64_t>(4, n - j0);
      std::fill(acc.begin(), acc.end(), 0.0f);
      /* Fewer than 4 columns left: the missing ones reuse the last column (results unused). */
      const float *bj[4];
      for (int q = 0; q < 4; ++q) bj[q] = bf.data() + (j0 + std::min<int64_t>(q, jb - 1)) * k;
      block4(af.data() + i0, m, ib, kk, bj[0], bj[1], bj[2], bj[3], acc.data(), acc.data() + IB,
             acc.data() + 2 * IB, acc.data() + 3 * IB);
      for (int64_t q = 0; q < jb; ++q)
        for (int64_t i = 0; i < ib; ++i) {
          const int64_t r = i0 + i, c = j0 + q;
          store(g.d, g.d_type, (size_t)(r + c * g.ldd), finish(g, acc[q * IB + i], r, c));
        }
    }
  }
  if (g.bgrad_b)
    for (int64_t j = 0; j < n; ++j) {
      float s = 0.0f;
      for (int64_t p = 0; p < k; ++p) s += bf[j * k + p];
      store(g.bgrad_b, g.bgrad_type, (size_t)j, s);
    }
  return true;
}

} // namespace emu
