/* Device count, host <-> device copies and stream waits (the backend's memory ops use them);
 * CUDA errors as ch_status. */
#include "kernels/cuda/common.cuh"

ch_status cuda_fail(cudaError_t e, const char *file, int line, const char *what) {
  ch_status s = CH_ERR_INTERNAL;
  if (e == cudaErrorMemoryAllocation)
    s = CH_ERR_NOMEM;
  else if (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver)
    s = CH_ERR_UNSUPPORTED;
  else if (e == cudaErrorInvalidValue)
    s = CH_ERR_INVALID;
  return ch_error_set(s, file, line, "%s: %s (%s)", what, cudaGetErrorString(e),
                      cudaGetErrorName(e));
}

/* Without a driver cudaGetDeviceCount fails (cudaErrorInsufficientDriver) and leaves the count
 * unwritten, hence the 0 it starts from. cudaGetLastError clears the error it recorded, so the
 * next launch check does not report it. */
int ch_cuda_device_count(void) {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

/* cudaMemcpyAsync on `s` keeps the copy ordered after the stream's kernels (a plain cudaMemcpy
 * would not wait for a non-blocking stream); the sync makes the call complete on return. */
ch_status ch_cuda_upload(void *dev, const void *host, size_t bytes, ch_cuda_stream s) {
  if (!bytes) return CH_OK;
  CH_CUDA_TRY(cudaMemcpyAsync(dev, host, bytes, cudaMemcpyHostToDevice, s), "copy to device");
  CH_CUDA_TRY(cudaStreamSynchronize(s), "copy to device");
  return CH_OK;
}

ch_status ch_cuda_download(void *host, const void *dev, size_t bytes, ch_cuda_stream s) {
  if (!bytes) return CH_OK;
  CH_CUDA_TRY(cudaMemcpyAsync(host, dev, bytes, cudaMemcpyDeviceToHost, s), "copy to host");
  CH_CUDA_TRY(cudaStreamSynchronize(s), "copy to host");
  return CH_OK;
}

ch_status ch_cuda_stream_sync(ch_cuda_stream s) {
  CH_CUDA_TRY(cudaStreamSynchronize(s), "cudaStreamSynchronize");
  return CH_OK;
}
