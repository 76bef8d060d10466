/* Emulated cuBLASLt: descriptors, the heuristic and cublasLtMatmul on the reference GEMM
 * (gemm_ref.h), with the real <cublasLt.h> signatures.
 *
 * Supported (anything else is CUBLAS_STATUS_NOT_SUPPORTED at the matmul or the heuristic):
 * compute type 32F (FAST_16BF / FAST_TF32 / PEDANTIC compute as 32F), scale type 32F, alpha and
 * beta on the host; column-major layouts; (A, B, C = D) types (32F, 32F, 32F), (16BF, 16BF,
 * 32F), (16BF, 16BF, 16BF); strided batches (every layout the same BATCH_COUNT); epilogues
 * DEFAULT, RELU, BIAS, RELU_BIAS, GELU, GELU_BIAS (bias: length m, the rows of D, type
 * BIAS_DATA_TYPE or D's, added before the activation) and BGRADB (bias gradient: for each
 * column j of D, the sum over k of op(B)[p, j], stored at BIAS_POINTER). */
#include <cublasLt.h>

#include <cstring>
#include <new>

#include "emu.h"
#include "gemm_ref.h"

struct cublasLtContext {
  int unused;
};

namespace {

struct matmul_desc {
  int32_t compute, scale, pointer_mode, transa, transb, transc;
  uint32_t epilogue;
  const void *bias;
  int32_t bias_type; /* -1: D's type */
  int64_t bias_batch_stride;
};

struct layout {
  uint32_t type;
  int32_t order;
  uint64_t rows, cols;
  int64_t ld;
  int32_t batch;
  int64_t stride;
};

struct preference {
  uint64_t max_workspace;
};

matmul_desc *of(cublasLtMatmulDesc_t d) { return reinterpret_cast<matmul_desc *>(d); }
layout *of(cublasLtMatrixLayout_t l) { return reinterpret_cast<layout *>(l); }
preference *of(cublasLtMatmulPreference_t p) { return reinterpret_cast<preference *>(p); }

/* Copies an attribute in or out after checking its size, as cuBLASLt's Set/GetAttribute. */
cublasStatus_t set_field(void *field, size_t field_size, const void *buf, size_t size) {
  if (!buf || size != field_size) return CUBLAS_STATUS_INVALID_VALUE;
  std::memcpy(field, buf, size);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t get_field(const void *field, size_t field_size, void *buf, size_t size,
                         size_t *written) {
  if (size == 0) {
    if (!written) return CUBLAS_STATUS_INVALID_VALUE;
    *written = field_size;
    return CUBLAS_STATUS_SUCCESS;
  }
  if (!buf || size != field_size) return CUBLAS_STATUS_INVALID_VALUE;
  std::memcpy(buf, field, size);
  if (written) *written = size;
  return CUBLAS_STATUS_SUCCESS;
}

/* The address and size of a matmul descriptor attribute the emulation knows, else NULL. */
void *desc_field(matmul_desc *d, cublasLtMatmulDescAttributes_t attr, size_t *size) {
#define FIELD(name)           \
  (*size = sizeof(d->name), (void *)&d->name)
  switch (attr) {
  case CUBLASLT_MATMUL_DESC_COMPUTE_TYPE: return FIELD(compute);
  case CUBLASLT_MATMUL_DESC_SCALE_TYPE: return FIELD(scale);
  case CUBLASLT_MATMUL_DESC_POINTER_MODE: return FIELD(pointer_mode);
  case CUBLASLT_MATMUL_DESC_TRANSA: return FIELD(transa);
  case CUBLASLT_MATMUL_DESC_TRANSB: return FIELD(transb);
  case CUBLASLT_MATMUL_DESC_TRANSC: return FIELD(transc);
  case CUBLASLT_MATMUL_DESC_EPILOGUE: return FIELD(epilogue);
  case CUBLASLT_MATMUL_DESC_BIAS_POINTER: return FIELD(bias);
  case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE: return FIELD(bias_type);
  case CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE: return FIELD(bias_batch_stride);
  default: return nullptr;
  }
#undef FIELD
}

void *layout_field(layout *l, cublasLtMatrixLayoutAttribute_t attr, size_t *size) {
#define FIELD(name) (*size = sizeof(l->name), (void *)&l->name)
  switch (attr) {
  case CUBLASLT_MATRIX_LAYOUT_TYPE: return FIELD(type);
  case CUBLASLT_MATRIX_LAYOUT_ORDER: return FIELD(order);
  case CUBLASLT_MATRIX_LAYOUT_ROWS: return FIELD(rows);
  case CUBLASLT_MATRIX_LAYOUT_COLS: return FIELD(cols);
  case CUBLASLT_MATRIX_LAYOUT_LD: return FIELD(ld);
  case CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT: return FIELD(batch);
  case CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET: return FIELD(stride);
  default: return nullptr;
  }
#undef FIELD
}

bool compute_is_32f(int32_t c) {
  return c == CUBLAS_COMPUTE_32F || c == CUBLAS_COMPUTE_32F_FAST_16BF ||
         c == CUBLAS_COMPUTE_32F_FAST_TF32 || c == CUBLAS_COMPUTE_32F_PEDANTIC;
}

bool epilogue_supported(uint32_t e) {
  return e == CUBLASLT_EPILOGUE_DEFAULT || e == CUBLASLT_EPILOGUE_RELU ||
         e == CUBLASLT_EPILOGUE_BIAS || e == CUBLASLT_EPILOGUE_RELU_BIAS ||
         e == CUBLASLT_EPILOGUE_GELU || e == CUBLASLT_EPILOGUE_GELU_BIAS ||
         e == CUBLASLT_EPILOGUE_BGRADB;
}

/* A matmul's problem, checked: the shape from the layouts (INVALID_VALUE when they disagree),
 * then what the emulation supports (NOT_SUPPORTED). Shared by the heuristic and the matmul. */
struct problem {
  int64_t m, n, k;
  int32_t batch;
  cudaDataType bias_type;
};

cublasStatus_t check(const matmul_desc *d, const layout *a, const layout *b, const layout *c,
                     const layout *dl, problem *p) {
  if (!d || !a || !b || !c || !dl) return CUBLAS_STATUS_INVALID_VALUE;
  const bool ta = d->transa != CUBLAS_OP_N, tb = d->transb != CUBLAS_OP_N;
  const uint64_t m = dl->rows, n = dl->cols, k = ta ? a->rows : a->cols;
  if ((ta ? a->cols : a->rows) != m || (tb ? b->cols : b->rows) != k ||
      (tb ? b->rows : b->cols) != n || c->rows != m || c->cols != n)
    return CUBLAS_STATUS_INVALID_VALUE;
  for (const layout *l : {a, b, c, dl})
    if (l->ld < (int64_t)(l->rows > 1 ? l->rows : 1) || l->batch < 1 || l->batch != dl->batch)
      return CUBLAS_STATUS_INVALID_VALUE;
  for (const layout *l : {a, b, c, dl})
    if (l->order != CUBLASLT_ORDER_COL) return CUBLAS_STATUS_NOT_SUPPORTED;
  const cudaDataType at = (cudaDataType)a->type, ct = (cudaDataType)c->type;
  const bool types = a->type == b->type && c->type == dl->type &&
                     (at == CUDA_R_32F ? ct == CUDA_R_32F
                                       : at == CUDA_R_16BF && (ct == CUDA_R_32F || ct == CUDA_R_16BF));
  if (!compute_is_32f(d->compute) || d->scale != CUDA_R_32F ||
      d->pointer_mode != CUBLASLT_POINTER_MODE_HOST || d->transc != CUBLAS_OP_N || !types ||
      !epilogue_supported(d->epilogue))
    return CUBLAS_STATUS_NOT_SUPPORTED;
  p->bias_type = d->bias_type == -1 ? (cudaDataType)dl->type : (cudaDataType)d->bias_type;
  const bool uses_bias = d->epilogue != CUBLASLT_EPILOGUE_DEFAULT &&
                         d->epilogue != CUBLASLT_EPILOGUE_RELU && d->epilogue != CUBLASLT_EPILOGUE_GELU;
  if (uses_bias && emu::elem_size(p->bias_type) == 0) return CUBLAS_STATUS_NOT_SUPPORTED;
  p->m = (int64_t)m, p->n = (int64_t)n, p->k = (int64_t)k, p->batch = dl->batch;
  return CUBLAS_STATUS_SUCCESS;
}

} // namespace

extern "C" {

cublasStatus_t CUBLASWINAPI cublasLtCreate(cublasLtHandle_t *handle) {
  if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
  *handle = new (std::nothrow) cublasLtContext{0};
  return *handle ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_ALLOC_FAILED;
}

cublasStatus_t CUBLASWINAPI cublasLtDestroy(cublasLtHandle_t handle) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *desc,
                                                     cublasComputeType_t computeType,
                                                     cudaDataType_t scaleType) {
  if (!desc) return CUBLAS_STATUS_INVALID_VALUE;
  matmul_desc *d = new (std::nothrow) matmul_desc{computeType, scaleType,
                                                  CUBLASLT_POINTER_MODE_HOST, CUBLAS_OP_N,
                                                  CUBLAS_OP_N, CUBLAS_OP_N,
                                                  CUBLASLT_EPILOGUE_DEFAULT, nullptr, -1, 0};
  *desc = reinterpret_cast<cublasLtMatmulDesc_t>(d);
  return d ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_ALLOC_FAILED;
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc) {
  delete of(desc);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc,
                                                           cublasLtMatmulDescAttributes_t attr,
                                                           const void *buf, size_t size) {
  if (!desc) return CUBLAS_STATUS_INVALID_VALUE;
  size_t field_size = 0;
  void *field = desc_field(of(desc), attr, &field_size);
  return field ? set_field(field, field_size, buf, size) : CUBLAS_STATUS_NOT_SUPPORTED;
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulDescGetAttribute(cublasLtMatmulDesc_t desc,
                                                           cublasLtMatmulDescAttributes_t attr,
                                                           void *buf, size_t size,
                                                           size_t *written) {
  if (!desc) return CUBLAS_STATUS_INVALID_VALUE;
  size_t field_size = 0;
  void *field = desc_field(of(desc), attr, &field_size);
  return field ? get_field(field, field_size, buf, size, written) : CUBLAS_STATUS_NOT_SUPPORTED;
}

cublasStatus_t CUBLASWINAPI cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *out,
                                                       cudaDataType type, uint64_t rows,
                                                       uint64_t cols, int64_t ld) {
  if (!out) return CUBLAS_STATUS_INVALID_VALUE;
  layout *l = new (std::nothrow) layout{(uint32_t)type, CUBLASLT_ORDER_COL, rows, cols, ld, 1, 0};
  *out = reinterpret_cast<cublasLtMatrixLayout_t>(l);
  return l ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_ALLOC_FAILED;
}

cublasStatus_t CUBLASWINAPI cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) {
  delete of(l);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t l,
                                                             cublasLtMatrixLayoutAttribute_t attr,
                                                             const void *buf, size_t size) {
  if (!l) return CUBLAS_STATUS_INVALID_VALUE;
  size_t field_size = 0;
  void *field = layout_field(of(l), attr, &field_size);
  return field ? set_field(field, field_size, buf, size) : CUBLAS_STATUS_NOT_SUPPORTED;
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *pref) {
  if (!pref) return CUBLAS_STATUS_INVALID_VALUE;
  preference *p = new (std::nothrow) preference{0};
  *pref = reinterpret_cast<cublasLtMatmulPreference_t>(p);
  return p ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_ALLOC_FAILED;
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
  delete of(pref);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulPreferenceSetAttribute(
    cublasLtMatmulPreference_t pref, cublasLtMatmulPreferenceAttributes_t attr, const void *buf,
    size_t size) {
  if (!pref) return CUBLAS_STATUS_INVALID_VALUE;
  if (attr != CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES) return CUBLAS_STATUS_NOT_SUPPORTED;
  return set_field(&of(pref)->max_workspace, sizeof(uint64_t), buf, size);
}

/* One algorithm for every supported problem: the reference GEMM, which needs no workspace. */
cublasStatus_t CUBLASWINAPI cublasLtMatmulAlgoGetHeuristic(
    cublasLtHandle_t handle, cublasLtMatmulDesc_t desc, cublasLtMatrixLayout_t a,
    cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d,
    cublasLtMatmulPreference_t pref, int requested, cublasLtMatmulHeuristicResult_t results[],
    int *returned) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (!pref || requested < 1 || !results || !returned) return CUBLAS_STATUS_INVALID_VALUE;
  *returned = 0;
  problem p;
  cublasStatus_t st = check(of(desc), of(a), of(b), of(c), of(d), &p);
  if (st != CUBLAS_STATUS_SUCCESS) return st;
  std::memset(&results[0], 0, sizeof results[0]);
  results[0].workspaceSize = 0;
  results[0].state = CUBLAS_STATUS_SUCCESS;
  results[0].wavesCount = 1.0f;
  *returned = 1;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasLtMatmul(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc,
                                           const void *alpha, const void *A,
                                           cublasLtMatrixLayout_t Adesc, const void *B,
                                           cublasLtMatrixLayout_t Bdesc, const void *beta,
                                           const void *C, cublasLtMatrixLayout_t Cdesc, void *D,
                                           cublasLtMatrixLayout_t Ddesc,
                                           const cublasLtMatmulAlgo_t *, void *, size_t,
                                           cudaStream_t) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  problem p;
  cublasStatus_t st = check(of(desc), of(Adesc), of(Bdesc), of(Cdesc), of(Ddesc), &p);
  if (st != CUBLAS_STATUS_SUCCESS) return st;
  const matmul_desc *md = of(desc);
  const layout *la = of(Adesc), *lb = of(Bdesc), *lc = of(Cdesc), *ld = of(Ddesc);
  if (!alpha || !beta || !D) return CUBLAS_STATUS_INVALID_VALUE;
  const float fb = *(const float *)beta;
  /* In place (C == D) needs C's layout to be D's; C is not read when beta is 0. */
  if ((C == D && (lc->ld != ld->ld || lc->stride != ld->stride)) || (fb != 0.0f && !C))
    return CUBLAS_STATUS_INVALID_VALUE;
  const uint32_t e = md->epilogue;
  const bool bgrad = e == CUBLASLT_EPILOGUE_BGRADB;
  const bool bias = e == CUBLASLT_EPILOGUE_BIAS || e == CUBLASLT_EPILOGUE_RELU_BIAS ||
                    e == CUBLASLT_EPILOGUE_GELU_BIAS;
  if ((bias || bgrad) && !md->bias) return CUBLAS_STATUS_INVALID_VALUE;
  if (p.m == 0 || p.n == 0) return CUBLAS_STATUS_SUCCESS;

  emu::gemm g{};
  g.m = p.m, g.n = p.n, g.k = p.k;
  g.alpha = *(const float *)alpha, g.beta = fb;
  g.a = {A, (cudaDataType)la->type, la->ld, md->transa != CUBLAS_OP_N};
  g.b = {B, (cudaDataType)lb->type, lb->ld, md->transb != CUBLAS_OP_N};
  g.c = {C, (cudaDataType)lc->type, lc->ld, false};
  g.d_type = (cudaDataType)ld->type, g.ldd = ld->ld;
  g.act = (e & CUBLASLT_EPILOGUE_RELU) ? emu::ACT_RELU
          : (e & CUBLASLT_EPILOGUE_GELU) ? emu::ACT_GELU
                                         : emu::ACT_NONE;
  g.bias_type = g.bgrad_type = p.bias_type;
  const size_t ea = emu::elem_size(g.a.type), eb = emu::elem_size(g.b.type);
  const size_t ec = emu::elem_size(g.c.type), ed = emu::elem_size(g.d_type);
  const size_t ebias = emu::elem_size(p.bias_type);
  bool ok = true;
  emu_host_access_begin();
  for (int32_t i = 0; i < p.batch && ok; ++i) {
    g.a.p = (const char *)A + i * la->stride * (int64_t)ea;
    g.b.p = (const char *)B + i * lb->stride * (int64_t)eb;
    g.c.p = C ? (const char *)C + i * lc->stride * (int64_t)ec : nullptr;
    g.d = (char *)D + i * ld->stride * (int64_t)ed;
    const char *bp =
        md->bias ? (const char *)md->bias + i * md->bias_batch_stride * (int64_t)ebias : nullptr;
    g.bias = bias ? bp : nullptr;
    g.bgrad_b = bgrad ? (void *)bp : nullptr;
    ok = emu::gemm_run(g);
  }
  emu_host_access_end();
  return ok ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_ALLOC_FAILED;
}

} // extern "C"
