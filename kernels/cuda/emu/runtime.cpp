/* The CUDA runtime API functions cohort calls, over the host: devices (COHORT_CUDA_EMU_DEVICES,
 * default 8, an H100-like record with 4 multiprocessors), memory (memory.cpp), streams and
 * events (synchronous: work runs when it is issued, so every stream is always idle, but the
 * handles are checked as CUDA checks them), the last error, and launch validation.
 *
 * cudaDeviceGetPCIBusId returns "ffff:00:<device>.0": PCI domain 0xffff exists on no machine,
 * so hwloc finds no such device and binding falls back to no GPU-local cores. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <atomic>
#include <mutex>
#include <set>

#include "kernels/cuda/emu/internal.h"

#undef warpSize /* device code's built-in; here it is cudaDeviceProp's field */

struct CUstream_st {
  unsigned flags;
};
struct CUevent_st {
  unsigned flags;
  bool recorded;
  double seconds; /* CLOCK_MONOTONIC at the last record */
};

namespace emu {
namespace {

thread_local cudaError_t last_error = cudaSuccess;
thread_local int device = 0;
std::atomic<size_t> shared_limit{kSharedPerBlock};

/* Live handles and pinned host blocks (a destroyed handle is no longer accepted). */
std::mutex mu;
std::set<const void *> &streams() {
  static auto *s = new std::set<const void *>();
  return *s;
}
std::set<const void *> &events() {
  static auto *s = new std::set<const void *>();
  return *s;
}
std::set<const void *> &pinned() {
  static auto *s = new std::set<const void *>();
  return *s;
}
bool live(std::set<const void *> &set, const void *p) {
  std::lock_guard<std::mutex> lock(mu);
  return set.count(p) != 0;
}

int device_count() {
  static int n = [] {
    const char *e = getenv("COHORT_CUDA_EMU_DEVICES");
    int v = e ? atoi(e) : 8;
    return v < 0 ? 0 : v;
  }();
  return n;
}

bool event_valid(cudaEvent_t e) { return e && live(events(), e); }

double now() {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* A device pointer range [p, p + n) must lie inside one allocation. */
bool range_ok(const void *p, size_t n, bool *is_device) {
  *is_device = device_of(p) >= 0;
  return !*is_device || emu_is_device_range(p, n);
}

cudaError_t copy(void *dst, const void *src, size_t n, cudaMemcpyKind kind, cudaStream_t s) {
  if (!stream_valid(s)) return record(cudaErrorInvalidResourceHandle);
  if (!n) return cudaSuccess;
  if (!dst || !src) return record(cudaErrorInvalidValue);
  bool dd, sd;
  if (!range_ok(dst, n, &dd) || !range_ok(src, n, &sd)) return record(cudaErrorInvalidValue);
  bool ok = kind == cudaMemcpyDefault || (kind == cudaMemcpyHostToDevice && dd && !sd) ||
            (kind == cudaMemcpyDeviceToHost && !dd && sd) ||
            (kind == cudaMemcpyDeviceToDevice && dd && sd) ||
            (kind == cudaMemcpyHostToHost && !dd && !sd);
  if (!ok) return record(cudaErrorInvalidValue);
  emu_host_access_begin();
  memmove(dst, src, n);
  emu_host_access_end();
  return cudaSuccess;
}

cudaError_t fill(void *dst, int value, size_t n, cudaStream_t s) {
  if (!stream_valid(s)) return record(cudaErrorInvalidResourceHandle);
  if (!n) return cudaSuccess;
  if (!emu_is_device_range(dst, n)) return record(cudaErrorInvalidValue);
  emu_host_access_begin();
  memset(dst, value, n);
  emu_host_access_end();
  return cudaSuccess;
}

} // namespace

cudaError_t record(cudaError_t e) {
  if (e != cudaSuccess) last_error = e;
  return e;
}

size_t dynamic_shared_limit() { return shared_limit.load(); }

int current_device() { return device; }

bool stream_valid(cudaStream_t s) {
  return s == nullptr || s == cudaStreamLegacy || s == cudaStreamPerThread || live(streams(), s);
}

bool launch_check(const launch_cfg &c) {
  const dim3 &b = c.block, &g = c.grid;
  unsigned long long threads = (unsigned long long)b.x * b.y * b.z;
  cudaError_t e = cudaSuccess;
  if (!b.x || !b.y || !b.z || b.x > 1024 || b.y > 1024 || b.z > 64 ||
      threads > (unsigned long long)kMaxThreadsPerBlock || !g.x || !g.y || !g.z ||
      g.x > 0x7fffffffu || g.y > 65535 || g.z > 65535 || c.smem > dynamic_shared_limit())
    e = cudaErrorInvalidConfiguration;
  else if (!stream_valid(c.stream))
    e = cudaErrorInvalidResourceHandle;
  record(e);
  return e == cudaSuccess;
}

} // namespace emu

using emu::record;

extern "C" {

/* ---- devices ---- */

cudaError_t cudaGetDeviceCount(int *count) {
  if (!count) return record(cudaErrorInvalidValue);
  int n = emu::device_count();
  if (!n) return record(cudaErrorNoDevice);
  *count = n;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int d) {
  if (d < 0 || d >= emu::device_count()) return record(cudaErrorInvalidDevice);
  emu::device = d;
  return cudaSuccess;
}

cudaError_t cudaGetDevice(int *d) {
  if (!d) return record(cudaErrorInvalidValue);
  if (!emu::device_count()) return record(cudaErrorNoDevice);
  *d = emu::device;
  return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int *value, enum cudaDeviceAttr attr, int d) {
  if (!value) return record(cudaErrorInvalidValue);
  if (d < 0 || d >= emu::device_count()) return record(cudaErrorInvalidDevice);
  int v;
  switch (attr) {
  case cudaDevAttrMultiProcessorCount: v = emu::kMultiprocessors; break;
  case cudaDevAttrWarpSize: v = 32; break;
  case cudaDevAttrMaxThreadsPerBlock: v = emu::kMaxThreadsPerBlock; break;
  case cudaDevAttrMaxBlockDimX: case cudaDevAttrMaxBlockDimY: v = 1024; break;
  case cudaDevAttrMaxBlockDimZ: v = 64; break;
  case cudaDevAttrMaxGridDimX: v = 0x7fffffff; break;
  case cudaDevAttrMaxGridDimY: case cudaDevAttrMaxGridDimZ: v = 65535; break;
  case cudaDevAttrMaxSharedMemoryPerBlock: v = (int)emu::kSharedPerBlock; break;
  case cudaDevAttrMaxSharedMemoryPerBlockOptin: v = (int)emu::kSharedPerBlockOptin; break;
  case cudaDevAttrMaxSharedMemoryPerMultiprocessor: v = (int)emu::kSharedPerBlockOptin + 1024; break;
  case cudaDevAttrMaxThreadsPerMultiProcessor: v = 2048; break;
  case cudaDevAttrComputeCapabilityMajor: v = 9; break;
  case cudaDevAttrComputeCapabilityMinor: v = 0; break;
  case cudaDevAttrL2CacheSize: v = 50 << 20; break;
  case cudaDevAttrUnifiedAddressing: case cudaDevAttrConcurrentKernels: v = 1; break;
  case cudaDevAttrPciDomainId: v = 0xffff; break;
  case cudaDevAttrPciBusId: v = 0; break;
  case cudaDevAttrPciDeviceId: v = d; break;
  default: return record(cudaErrorNotSupported); /* not modelled: say so rather than guess */
  }
  *value = v;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *p, int d) {
  if (!p) return record(cudaErrorInvalidValue);
  if (d < 0 || d >= emu::device_count()) return record(cudaErrorInvalidDevice);
  memset(p, 0, sizeof *p);
  snprintf(p->name, sizeof p->name, "cohort host emulation");
  p->totalGlobalMem = emu::kDeviceMemory;
  p->sharedMemPerBlock = emu::kSharedPerBlock;
  p->sharedMemPerBlockOptin = emu::kSharedPerBlockOptin;
  p->sharedMemPerMultiprocessor = emu::kSharedPerBlockOptin + 1024;
  p->regsPerBlock = 65536;
  p->regsPerMultiprocessor = 65536;
  p->warpSize = 32;
  p->maxThreadsPerBlock = emu::kMaxThreadsPerBlock;
  p->maxThreadsDim[0] = p->maxThreadsDim[1] = 1024;
  p->maxThreadsDim[2] = 64;
  p->maxGridSize[0] = 0x7fffffff;
  p->maxGridSize[1] = p->maxGridSize[2] = 65535;
  p->totalConstMem = 64 << 10;
  p->major = 9;
  p->minor = 0;
  p->multiProcessorCount = emu::kMultiprocessors;
  p->maxThreadsPerMultiProcessor = 2048;
  p->l2CacheSize = 50 << 20;
  p->unifiedAddressing = 1;
  p->concurrentKernels = 1;
  p->pciDomainID = 0xffff;
  p->pciBusID = 0;
  p->pciDeviceID = d;
  return cudaSuccess;
}

cudaError_t cudaDeviceGetPCIBusId(char *buf, int len, int d) {
  if (!buf || len <= 0) return record(cudaErrorInvalidValue);
  if (d < 0 || d >= emu::device_count()) return record(cudaErrorInvalidDevice);
  snprintf(buf, (size_t)len, "ffff:00:%02x.0", d);
  return cudaSuccess;
}

cudaError_t cudaDriverGetVersion(int *v) {
  if (!v) return record(cudaErrorInvalidValue);
  *v = CUDART_VERSION;
  return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int *v) {
  if (!v) return record(cudaErrorInvalidValue);
  *v = CUDART_VERSION;
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }

cudaError_t cudaFuncSetAttribute(const void *func, enum cudaFuncAttribute attr, int value) {
  if (!func) return record(cudaErrorInvalidDeviceFunction);
  if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
    if (value < 0 || (size_t)value > emu::kSharedPerBlockOptin) return record(cudaErrorInvalidValue);
    size_t v = (size_t)value, cur = emu::shared_limit.load();
    while (v > cur && !emu::shared_limit.compare_exchange_weak(cur, v)) {
    }
  }
  return cudaSuccess;
}

/* ---- errors ---- */

cudaError_t cudaGetLastError(void) {
  cudaError_t e = emu::last_error;
  emu::last_error = cudaSuccess;
  return e;
}

cudaError_t cudaPeekAtLastError(void) { return emu::last_error; }

/* ---- memory ---- */

cudaError_t cudaMalloc(void **p, size_t bytes) {
  if (!p) return record(cudaErrorInvalidValue);
  *p = emu::device_alloc(bytes, emu::device);
  return *p ? cudaSuccess : record(cudaErrorMemoryAllocation);
}

cudaError_t cudaFree(void *p) {
  if (!p) return cudaSuccess;
  return emu::device_free(p) ? cudaSuccess : record(cudaErrorInvalidValue);
}

cudaError_t cudaMallocHost(void **p, size_t bytes) {
  if (!p) return record(cudaErrorInvalidValue);
  *p = aligned_alloc(256, (bytes + 255) / 256 * 256 + 256 * !bytes);
  if (!*p) return record(cudaErrorMemoryAllocation);
  std::lock_guard<std::mutex> lock(emu::mu);
  emu::pinned().insert(*p);
  return cudaSuccess;
}

cudaError_t cudaFreeHost(void *p) {
  if (!p) return cudaSuccess;
  {
    std::lock_guard<std::mutex> lock(emu::mu);
    if (!emu::pinned().erase(p)) return record(cudaErrorInvalidValue);
  }
  free(p);
  return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total) {
  if (!free_bytes || !total) return record(cudaErrorInvalidValue);
  size_t used = emu::device_used();
  *total = emu::kDeviceMemory;
  *free_bytes = used < *total ? *total - used : 0;
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, enum cudaMemcpyKind kind) {
  return emu::copy(dst, src, n, kind, nullptr);
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, enum cudaMemcpyKind kind,
                            cudaStream_t s) {
  return emu::copy(dst, src, n, kind, s);
}

cudaError_t cudaMemset(void *dst, int value, size_t n) { return emu::fill(dst, value, n, nullptr); }

cudaError_t cudaMemsetAsync(void *dst, int value, size_t n, cudaStream_t s) {
  return emu::fill(dst, value, n, s);
}

cudaError_t cudaPointerGetAttributes(struct cudaPointerAttributes *a, const void *p) {
  if (!a) return record(cudaErrorInvalidValue);
  memset(a, 0, sizeof *a);
  int d = emu::device_of(p);
  if (d >= 0) {
    a->type = cudaMemoryTypeDevice;
    a->device = d;
    a->devicePointer = const_cast<void *>(p);
  } else if (p && emu::live(emu::pinned(), p)) {
    a->type = cudaMemoryTypeHost;
    a->device = emu::device;
    a->devicePointer = a->hostPointer = const_cast<void *>(p);
  } else {
    a->type = cudaMemoryTypeUnregistered;
    a->device = -2;
    a->hostPointer = const_cast<void *>(p);
  }
  return cudaSuccess;
}

/* ---- streams ---- */

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags) {
  if (!s || (flags & ~(unsigned)cudaStreamNonBlocking)) return record(cudaErrorInvalidValue);
  *s = new CUstream_st{flags};
  std::lock_guard<std::mutex> lock(emu::mu);
  emu::streams().insert(*s);
  return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t *s) { return cudaStreamCreateWithFlags(s, 0); }

cudaError_t cudaStreamDestroy(cudaStream_t s) {
  {
    std::lock_guard<std::mutex> lock(emu::mu);
    if (!s || !emu::streams().erase(s)) return record(cudaErrorInvalidResourceHandle);
  }
  delete s;
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  return emu::stream_valid(s) ? cudaSuccess : record(cudaErrorInvalidResourceHandle);
}

cudaError_t cudaStreamQuery(cudaStream_t s) {
  return emu::stream_valid(s) ? cudaSuccess : record(cudaErrorInvalidResourceHandle);
}

cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned flags) {
  if (!emu::stream_valid(s) || !emu::event_valid(e)) return record(cudaErrorInvalidResourceHandle);
  return flags & ~(unsigned)cudaEventWaitExternal ? record(cudaErrorInvalidValue) : cudaSuccess;
}

/* ---- events ---- */

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags) {
  unsigned known = cudaEventBlockingSync | cudaEventDisableTiming | cudaEventInterprocess;
  if (!e || (flags & ~known)) return record(cudaErrorInvalidValue);
  *e = new CUevent_st{flags, false, 0.0};
  std::lock_guard<std::mutex> lock(emu::mu);
  emu::events().insert(*e);
  return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t *e) { return cudaEventCreateWithFlags(e, 0); }

cudaError_t cudaEventDestroy(cudaEvent_t e) {
  {
    std::lock_guard<std::mutex> lock(emu::mu);
    if (!e || !emu::events().erase(e)) return record(cudaErrorInvalidResourceHandle);
  }
  delete e;
  return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
  if (!emu::event_valid(e) || !emu::stream_valid(s)) return record(cudaErrorInvalidResourceHandle);
  e->recorded = true;
  e->seconds = emu::now();
  return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t e) {
  return emu::event_valid(e) ? cudaSuccess : record(cudaErrorInvalidResourceHandle);
}

cudaError_t cudaEventQuery(cudaEvent_t e) {
  return emu::event_valid(e) ? cudaSuccess : record(cudaErrorInvalidResourceHandle);
}

cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end) {
  if (!ms) return record(cudaErrorInvalidValue);
  if (!emu::event_valid(start) || !emu::event_valid(end) || !start->recorded || !end->recorded ||
      ((start->flags | end->flags) & cudaEventDisableTiming))
    return record(cudaErrorInvalidResourceHandle);
  *ms = (float)((end->seconds - start->seconds) * 1e3);
  return cudaSuccess;
}

} // extern "C"
