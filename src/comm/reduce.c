/* Local arithmetic of the MPI backend: the MPI datatype and op of a cohort dtype and redop,
 * elementwise reduction of a received segment into an accumulator (the ring), and AVG's final
 * division. */
#include "comm/mpi_impl.h"

MPI_Datatype comm_mpi_type(ch_dtype t) {
  switch (t) {
    case CH_F32: return MPI_FLOAT;
    case CH_F64: return MPI_DOUBLE;
    case CH_I32: return MPI_INT32_T;
    case CH_I64: return MPI_INT64_T;
    case CH_U8: return MPI_UINT8_T;
    case CH_BF16: return MPI_DATATYPE_NULL; /* reductions on bf16 belong to the NCCL backend */
  }
  return MPI_DATATYPE_NULL;
}

MPI_Op comm_mpi_op(ch_redop op) {
  switch (op) {
    case CH_SUM: case CH_AVG: return MPI_SUM;
    case CH_MAX: return MPI_MAX;
    case CH_MIN: return MPI_MIN;
  }
  return MPI_OP_NULL;
}

ch_status comm_mpi_fail(int rc, const char *what) {
  char msg[MPI_MAX_ERROR_STRING] = "";
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  return CH_FAIL(CH_ERR_MPI, "%s failed: %s", what, msg);
}

/* One loop per (type, op): plain loops the compiler vectorises (restrict: dst and src never
 * overlap; the ring reduces a received buffer into its own accumulator). Integer sums are
 * done in the unsigned type U: they wrap like MPI's instead of overflowing (undefined). */
#define REDUCE_LOOPS(T, U)                                                      \
  do {                                                                         \
    T *restrict d = dst;                                                       \
    const T *restrict s = src;                                                 \
    if (op == CH_MAX)                                                          \
      for (size_t i = 0; i < n; i++) d[i] = s[i] > d[i] ? s[i] : d[i];         \
    else if (op == CH_MIN)                                                     \
      for (size_t i = 0; i < n; i++) d[i] = s[i] < d[i] ? s[i] : d[i];         \
    else                                                                       \
      for (size_t i = 0; i < n; i++) d[i] = (T)((U)d[i] + (U)s[i]);            \
  } while (0)

void comm_reduce_local(void *dst, const void *src, size_t n, ch_dtype t, ch_redop op) {
  switch (t) {
    case CH_F32: REDUCE_LOOPS(float, float); break;
    case CH_F64: REDUCE_LOOPS(double, double); break;
    case CH_I32: REDUCE_LOOPS(int32_t, uint32_t); break;
    case CH_I64: REDUCE_LOOPS(int64_t, uint64_t); break;
    case CH_U8: REDUCE_LOOPS(uint8_t, uint32_t); break;
    case CH_BF16: break; /* rejected before any collective starts */
  }
}

void comm_scale_avg(void *buf, size_t count, ch_dtype t, int n) {
  if (t == CH_F32) {
    float s = 1.0f / (float)n, *x = buf;
    for (size_t i = 0; i < count; i++) x[i] *= s;
  } else if (t == CH_F64) {
    double s = 1.0 / n, *x = buf;
    for (size_t i = 0; i < count; i++) x[i] *= s;
  } else if (t == CH_I32) {
    int32_t *x = buf;
    for (size_t i = 0; i < count; i++) x[i] /= n;
  } else if (t == CH_I64) {
    int64_t *x = buf;
    for (size_t i = 0; i < count; i++) x[i] /= n;
  } else if (t == CH_U8) {
    uint8_t *x = buf;
    for (size_t i = 0; i < count; i++) x[i] = (uint8_t)(x[i] / n);
  }
}
