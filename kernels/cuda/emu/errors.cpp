/* cudaGetErrorName / cudaGetErrorString for the codes the emulation returns and the common
 * ones callers test for (the strings are CUDA's own wording). */
#include "kernels/cuda/emu/internal.h"

namespace {

struct entry {
  cudaError_t code;
  const char *name, *text;
};

#define E(code, text) {code, #code, text}
const entry kErrors[] = {
    E(cudaSuccess, "no error"),
    E(cudaErrorInvalidValue, "invalid argument"),
    E(cudaErrorMemoryAllocation, "out of memory"),
    E(cudaErrorInitializationError, "initialization error"),
    E(cudaErrorLaunchFailure, "unspecified launch failure"),
    E(cudaErrorInvalidConfiguration, "invalid configuration argument"),
    E(cudaErrorInvalidDevicePointer, "invalid device pointer"),
    E(cudaErrorInvalidDeviceFunction, "invalid device function"),
    E(cudaErrorInvalidDevice, "invalid device ordinal"),
    E(cudaErrorInvalidResourceHandle, "invalid resource handle"),
    E(cudaErrorNotReady, "device not ready"),
    E(cudaErrorNoDevice, "no CUDA-capable device is detected"),
    E(cudaErrorInsufficientDriver, "CUDA driver version is insufficient for CUDA runtime version"),
    E(cudaErrorIllegalAddress, "an illegal memory access was encountered"),
    E(cudaErrorNotSupported, "operation not supported"),
    E(cudaErrorUnknown, "unknown error"),
};
#undef E

const entry *find(cudaError_t e) {
  for (const entry &x : kErrors)
    if (x.code == e) return &x;
  return nullptr;
}

} // namespace

extern "C" const char *cudaGetErrorName(cudaError_t e) {
  const entry *x = find(e);
  return x ? x->name : "cudaErrorUnknown";
}

extern "C" const char *cudaGetErrorString(cudaError_t e) {
  const entry *x = find(e);
  return x ? x->text : "unrecognized error code";
}
