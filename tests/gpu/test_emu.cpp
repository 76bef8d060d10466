/* The CUDA host emulation's own semantics (kernels/cuda/emu): thread/block indices over odd
 * grids and 3-D blocks, __syncthreads ordering (a shared-memory tree reduction), dynamic shared
 * memory and its garbage fill, warp shuffles and votes against hand-computed values (a partial
 * last warp included), atomics from many blocks, launch validation (cudaGetLastError), the
 * runtime's error paths, device-memory reuse, and two death tests in a child process: a host
 * read of device memory faults, and a barrier some threads never reach aborts instead of
 * hanging. Prints (does not assert) the time of a 1M-thread kernel and the cost of a switch. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <vector>

#include "kernels/cuda/common.cuh"

namespace emu {
long long switch_count(); /* fiber.cpp: fiber resumptions on this thread */
}

#define CHECK(cond, ...)                                                    \
  do {                                                                      \
    if (!(cond)) {                                                          \
      fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                         \
      fprintf(stderr, "\n");                                                \
      exit(1);                                                              \
    }                                                                       \
  } while (0)
#define CUDA_OK(call)                                                                   \
  do {                                                                                  \
    cudaError_t e_ = (call);                                                            \
    CHECK(e_ == cudaSuccess, "%s -> %s", #call, cudaGetErrorName(e_));                  \
  } while (0)

static double seconds() {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

template <class T>
static T *dev(size_t n) {
  void *p = nullptr;
  CUDA_OK(cudaMalloc(&p, n * sizeof(T)));
  return static_cast<T *>(p);
}
template <class T>
static std::vector<T> down(const T *d, size_t n) {
  std::vector<T> h(n);
  CUDA_OK(cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost));
  return h;
}

/* ---- kernels ---- */

__global__ void indices(int *out) {
  unsigned b = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  unsigned per = blockDim.x * blockDim.y * blockDim.z;
  out[b * per + t] = (int)(((blockIdx.z * 8 + blockIdx.y) * 8 + blockIdx.x) * 1000 +
                           (threadIdx.z * 16 + threadIdx.y) * 16 + threadIdx.x);
}

/* Block sums by a halving tree in static shared memory: wrong without every __syncthreads. */
__global__ void tree_sum(const int *x, int *sums) {
  __shared__ int buf[256];
  unsigned t = threadIdx.x;
  buf[t] = x[blockIdx.x * blockDim.x + t];
  __syncthreads();
  for (unsigned h = blockDim.x / 2; h > 0; h /= 2) {
    int v = t < h ? buf[t] + buf[t + h] : 0;
    __syncthreads(); /* every read of this level before any write */
    if (t < h) buf[t] = v;
    __syncthreads();
  }
  if (t == 0) sums[blockIdx.x] = buf[0];
}

/* Reverses each block's slice through dynamic shared memory; first reports what it read before
 * writing (the 0xCD fill). */
__global__ void reverse(const int *x, int *y, unsigned *garbage) {
  CH_DYNAMIC_SHARED(int, s);
  unsigned t = threadIdx.x, n = blockDim.x;
  if (blockIdx.x == 0 && t == 0) *garbage = (unsigned)s[n - 1];
  __syncthreads();
  s[t] = x[blockIdx.x * n + t];
  __syncthreads();
  y[blockIdx.x * n + t] = s[n - 1 - t];
}

/* Per thread: [0] butterfly warp sum, [1] shfl_down 1, [2] shfl_up 2, [3] broadcast of lane 3,
 * [4] ballot of lane % 3 == 0, [5] any(lane == 5), [6] all(value > 0), [7] xor in segments of 8. */
__global__ void warp_ops(int *out) {
  int t = (int)threadIdx.x, v = t + 1;
  int *o = out + 8 * t;
  o[0] = (int)warp_sum((float)v);
  o[1] = __shfl_down_sync(0xffffffffu, v, 1);
  o[2] = __shfl_up_sync(0xffffffffu, v, 2);
  o[3] = __shfl_sync(0xffffffffu, v, 3);
  o[4] = (int)__ballot_sync(0xffffffffu, (t % 32) % 3 == 0);
  o[5] = __any_sync(0xffffffffu, t % 32 == 5);
  o[6] = __all_sync(0xffffffffu, v > 0);
  o[7] = __shfl_xor_sync(0xffffffffu, v, 4, 8);
}

__global__ void atomics(int *count, float *bins, int *maxv, unsigned *cas_wins) {
  int g = (int)(blockIdx.x * blockDim.x + threadIdx.x);
  atomicAdd(count, 1);
  atomicAdd(bins + g % 7, 0.5f);
  atomicMax(maxv, (g * 37) % 1001);
  if (atomicCAS(cas_wins, 0u, (unsigned)g + 1) == 0u) atomicAdd(cas_wins + 1, 1u);
}

__global__ void set_flag(int *flag) { *flag = 1; }

__global__ void trivial(float *x, int64_t n) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) x[i] = 2.0f * x[i];
}

__global__ void many_barriers(int *x, int rounds) {
  for (int r = 0; r < rounds; r++) __syncthreads();
  if (threadIdx.x == 0) *x = rounds;
}

/* Half of warp 0 at a shuffle, the other half at __syncthreads: can never complete. */
__global__ void bad_barrier(int *x) {
  if (threadIdx.x < 16)
    x[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1, 1);
  else
    __syncthreads();
}

/* ---- checks ---- */

static void test_indices() {
  dim3 grid(3, 2, 2), block(5, 3, 2);
  size_t n = 12 * 30;
  int *d = dev<int>(n);
  CH_LAUNCH(grid, block, 0, 0, indices)(d);
  CUDA_OK(cudaGetLastError());
  std::vector<int> h = down(d, n);
  size_t i = 0;
  for (unsigned bz = 0; bz < 2; bz++)
    for (unsigned by = 0; by < 2; by++)
      for (unsigned bx = 0; bx < 3; bx++)
        for (unsigned tz = 0; tz < 2; tz++)
          for (unsigned ty = 0; ty < 3; ty++)
            for (unsigned tx = 0; tx < 5; tx++, i++) {
              int want = (int)(((bz * 8 + by) * 8 + bx) * 1000 + (tz * 16 + ty) * 16 + tx);
              CHECK(h[i] == want, "index %zu: %d, want %d", i, h[i], want);
            }
  CUDA_OK(cudaFree(d));
  printf("indices: grid 3x2x2 of blocks 5x3x2 ok\n");
}

static void test_tree_and_dynamic_shared() {
  const int blocks = 5, threads = 256, n = blocks * threads;
  std::vector<int> x(n);
  for (int i = 0; i < n; i++) x[i] = (i * 7919) % 101 - 50;
  int *dx = dev<int>(n), *ds = dev<int>(blocks), *dy = dev<int>(n);
  unsigned *dg = dev<unsigned>(1);
  CUDA_OK(cudaMemcpy(dx, x.data(), n * sizeof(int), cudaMemcpyHostToDevice));
  CH_LAUNCH(blocks, threads, 0, 0, tree_sum)(dx, ds);
  CUDA_OK(cudaGetLastError());
  std::vector<int> s = down(ds, blocks);
  for (int b = 0; b < blocks; b++) {
    int want = 0;
    for (int t = 0; t < threads; t++) want += x[b * threads + t];
    CHECK(s[b] == want, "block %d sum %d, want %d", b, s[b], want);
  }
  CH_LAUNCH(blocks, threads, threads * sizeof(int), 0, reverse)(dx, dy, dg);
  CUDA_OK(cudaGetLastError());
  std::vector<int> y = down(dy, n);
  for (int i = 0; i < n; i++) {
    int b = i / threads, t = i % threads;
    CHECK(y[i] == x[b * threads + threads - 1 - t], "reverse %d", i);
  }
  unsigned g = down(dg, 1)[0];
  CHECK(g == 0xCDCDCDCDu, "dynamic shared memory before writes: %08x, want cdcdcdcd", g);
  for (void *p : {(void *)dx, (void *)ds, (void *)dy, (void *)dg}) CUDA_OK(cudaFree(p));
  printf("__syncthreads tree reduction, dynamic shared memory ok\n");
}

static void test_warp_ops() {
  const int threads = 80; /* warps of 32, 32 and 16 lanes */
  int *d = dev<int>(8 * threads);
  CH_LAUNCH(1, threads, 0, 0, warp_ops)(d);
  CUDA_OK(cudaGetLastError());
  std::vector<int> h = down(d, 8 * threads);
  for (int t = 0; t < threads; t++) {
    int w = t / 32, lane = t % 32, lanes = threads - 32 * w < 32 ? threads - 32 * w : 32;
    int v = t + 1, sum = 0;
    unsigned ballot = 0;
    for (int l = 0; l < lanes; l++) {
      sum += 32 * w + l + 1;
      if (l % 3 == 0) ballot |= 1u << l;
    }
    const int *o = &h[8 * t];
    /* (a butterfly over a partial warp reads missing lanes: undefined on a GPU, not checked) */
    CHECK(lanes < 32 || o[0] == sum, "warp sum t %d: %d want %d", t, o[0], sum);
    CHECK(o[1] == (lane + 1 < lanes ? v + 1 : v), "shfl_down t %d: %d", t, o[1]);
    CHECK(o[2] == (lane >= 2 ? v - 2 : v), "shfl_up t %d: %d", t, o[2]);
    CHECK(o[3] == 32 * w + 4, "shfl t %d: %d", t, o[3]);
    CHECK((unsigned)o[4] == ballot, "ballot t %d: %x want %x", t, o[4], ballot);
    CHECK(o[5] == (lanes > 5), "any t %d", t);
    CHECK(o[6] == 1, "all t %d", t);
    /* xor 4 stays inside each segment of 8; a missing partner lane leaves the own value */
    int partner = (lane ^ 4) < lanes ? 32 * w + (lane ^ 4) + 1 : v;
    CHECK(o[7] == partner, "xor in segments t %d: %d want %d", t, o[7], partner);
  }
  CUDA_OK(cudaFree(d));
  printf("warp shuffles, ballot, any, all (partial last warp) ok\n");
}

static void test_atomics() {
  const int blocks = 64, threads = 128, n = blocks * threads;
  int *count = dev<int>(1), *maxv = dev<int>(1);
  float *bins = dev<float>(7);
  unsigned *cas = dev<unsigned>(2);
  CUDA_OK(cudaMemset(count, 0, sizeof(int)));
  CUDA_OK(cudaMemset(maxv, 0, sizeof(int)));
  CUDA_OK(cudaMemset(bins, 0, 7 * sizeof(float)));
  CUDA_OK(cudaMemset(cas, 0, 2 * sizeof(unsigned)));
  CH_LAUNCH(blocks, threads, 0, 0, atomics)(count, bins, maxv, cas);
  CUDA_OK(cudaGetLastError());
  CHECK(down(count, 1)[0] == n, "count %d", down(count, 1)[0]);
  std::vector<float> b = down(bins, 7);
  for (int k = 0; k < 7; k++) {
    int members = n / 7 + (k < n % 7);
    CHECK(b[k] == 0.5f * (float)members, "bin %d: %g", k, b[k]);
  }
  int want = 0;
  for (int g = 0; g < n; g++) want = (g * 37) % 1001 > want ? (g * 37) % 1001 : want;
  CHECK(down(maxv, 1)[0] == want, "max");
  std::vector<unsigned> c = down(cas, 2);
  CHECK(c[0] != 0 && c[1] == 1, "CAS: value %u, winners %u", c[0], c[1]);
  for (void *p : {(void *)count, (void *)maxv, (void *)bins, (void *)cas}) CUDA_OK(cudaFree(p));
  printf("atomics from %d blocks ok\n", blocks);
}

static void test_launch_checks() {
  int *flag = dev<int>(1);
  CUDA_OK(cudaMemset(flag, 0, sizeof(int)));
  CUDA_OK(cudaGetLastError());
  CH_LAUNCH(1, 1025, 0, 0, set_flag)(flag);
  CHECK(cudaPeekAtLastError() == cudaErrorInvalidConfiguration, "1025 threads");
  CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration, "1025 threads");
  CHECK(cudaGetLastError() == cudaSuccess, "the error is cleared once read");
  CH_LAUNCH(dim3(1, 1, 1), dim3(8, 8, 65), 0, 0, set_flag)(flag);
  CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration, "block z 65");
  CH_LAUNCH(0, 32, 0, 0, set_flag)(flag);
  CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration, "empty grid");
  CH_LAUNCH(1, 32, 64 << 10, 0, set_flag)(flag);
  CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration, "64 KiB dynamic shared memory");
  CHECK(down(flag, 1)[0] == 0, "an invalid launch ran");
  CHECK(cudaFuncSetAttribute((const void *)set_flag, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             300 << 10) == cudaErrorInvalidValue, "300 KiB opt-in");
  CHECK(cudaGetLastError() == cudaErrorInvalidValue, "a failed call is the last error");
  CUDA_OK(cudaFuncSetAttribute((const void *)set_flag, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               100 << 10));
  CH_LAUNCH(1, 32, 64 << 10, 0, set_flag)(flag);
  CUDA_OK(cudaGetLastError());
  CHECK(down(flag, 1)[0] == 1, "opted-in launch did not run");
  cudaStream_t s;
  CUDA_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  CUDA_OK(cudaStreamDestroy(s));
  CH_LAUNCH(1, 32, 0, s, set_flag)(flag);
  CHECK(cudaGetLastError() == cudaErrorInvalidResourceHandle, "launch on a destroyed stream");
  CUDA_OK(cudaFree(flag));
  printf("launch validation ok\n");
}

static void test_runtime() {
  int n = 0, v = 0;
  CUDA_OK(cudaGetDeviceCount(&n));
  CHECK(n >= 1, "devices %d", n);
  CHECK(cudaSetDevice(n) == cudaErrorInvalidDevice, "device %d", n);
  CUDA_OK(cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, 0));
  CHECK(v == 4, "multiprocessors %d", v);
  cudaDeviceProp p;
  CUDA_OK(cudaGetDeviceProperties(&p, 0));
  CHECK(strcmp(p.name, "cohort host emulation") == 0 && p.major == 9, "properties");
  char bus[32];
  CUDA_OK(cudaDeviceGetPCIBusId(bus, sizeof bus, 1));
  CHECK(strcmp(bus, "ffff:00:01.0") == 0, "bus id %s", bus);

  /* Memory: reuse after free, bounds, copy kinds, pointer attributes. */
  void *a, *b, *c;
  CUDA_OK(cudaMalloc(&a, 1000));
  CUDA_OK(cudaMalloc(&b, 1 << 20));
  CHECK(((uintptr_t)a & 255) == 0 && ((uintptr_t)b & 255) == 0, "alignment");
  CUDA_OK(cudaFree(a));
  CUDA_OK(cudaMalloc(&c, 512));
  CHECK(c == a, "freed memory is reused (%p, %p)", c, a);
  CHECK(cudaFree((char *)b + 256) == cudaErrorInvalidValue, "free of an interior pointer");
  char host[2048] = {0};
  CHECK(cudaMemcpy(c, host, 1024, cudaMemcpyHostToDevice) == cudaErrorInvalidValue, "overrun");
  CHECK(cudaMemcpy(host, c, 16, cudaMemcpyHostToDevice) == cudaErrorInvalidValue, "wrong kind");
  CUDA_OK(cudaMemcpy(c, host, 512, cudaMemcpyHostToDevice));
  CUDA_OK(cudaMemcpy(b, c, 512, cudaMemcpyDeviceToDevice));
  cudaPointerAttributes at;
  CUDA_OK(cudaPointerGetAttributes(&at, (char *)b + 100));
  CHECK(at.type == cudaMemoryTypeDevice && at.device == 0, "device pointer attributes");
  CUDA_OK(cudaPointerGetAttributes(&at, host));
  CHECK(at.type == cudaMemoryTypeUnregistered, "host pointer attributes");
  size_t free_b, total;
  CUDA_OK(cudaMemGetInfo(&free_b, &total));
  CHECK(free_b < total, "memory info");
  CUDA_OK(cudaFree(b));
  CUDA_OK(cudaFree(c));
  CHECK(cudaFree(c) == cudaErrorInvalidValue, "double free");
  (void)cudaGetLastError();

  /* Streams and events: synchronous, with CUDA's handle checks. */
  cudaStream_t s;
  cudaEvent_t e0, e1;
  CUDA_OK(cudaStreamCreate(&s));
  CUDA_OK(cudaEventCreate(&e0));
  CUDA_OK(cudaEventCreateWithFlags(&e1, cudaEventDisableTiming));
  float ms;
  CHECK(cudaEventElapsedTime(&ms, e0, e0) == cudaErrorInvalidResourceHandle, "unrecorded event");
  CUDA_OK(cudaEventRecord(e0, s));
  CUDA_OK(cudaEventRecord(e1, s));
  CUDA_OK(cudaStreamWaitEvent(s, e1, 0));
  CUDA_OK(cudaEventElapsedTime(&ms, e0, e0));
  CHECK(cudaEventElapsedTime(&ms, e0, e1) == cudaErrorInvalidResourceHandle, "timing disabled");
  CUDA_OK(cudaStreamQuery(s));
  CUDA_OK(cudaEventSynchronize(e0));
  CUDA_OK(cudaEventDestroy(e1));
  CHECK(cudaEventDestroy(e1) == cudaErrorInvalidResourceHandle, "event destroyed twice");
  CHECK(cudaEventRecord(e1, s) == cudaErrorInvalidResourceHandle, "destroyed event");
  CUDA_OK(cudaEventDestroy(e0));
  CUDA_OK(cudaStreamDestroy(s));
  CHECK(cudaStreamSynchronize(s) == cudaErrorInvalidResourceHandle, "destroyed stream");
  CHECK(strcmp(cudaGetErrorName(cudaErrorInvalidValue), "cudaErrorInvalidValue") == 0, "name");
  (void)cudaGetLastError();
  printf("runtime: devices, memory, streams, events, error paths ok\n");
}

/* A CUDA error through CH_CUDA_TRY becomes a ch_status with CUDA's wording (device.cu). */
static ch_status bad_device() {
  CH_CUDA_TRY(cudaSetDevice(-1), "choosing device -1");
  return CH_OK;
}
static void test_status() {
  CHECK(bad_device() == CH_ERR_INTERNAL, "status");
  CHECK(strstr(ch_error_message(), "invalid device ordinal (cudaErrorInvalidDevice)"), "message: %s",
        ch_error_message());
  (void)cudaGetLastError();
  printf("CUDA errors as ch_status ok\n");
}

/* Runs f in a child; returns the signal that ended it (0 if it exited). */
static int in_child(void (*f)()) {
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  CHECK(pid >= 0, "fork");
  if (pid == 0) {
    f();
    _exit(42);
  }
  int st = 0;
  CHECK(waitpid(pid, &st, 0) == pid, "waitpid");
  if (WIFSIGNALED(st)) return WTERMSIG(st);
  CHECK(WIFEXITED(st), "child status %d", st);
  return WEXITSTATUS(st) == 42 ? 0 : -WEXITSTATUS(st);
}

static float *g_dev;
static void touch_device() {
  signal(SIGSEGV, SIG_DFL);
  volatile float v = g_dev[0]; /* must fault */
  (void)v;
}
static void deadlocked_kernel() {
  int *x = dev<int>(64);
  CH_LAUNCH(1, 64, 0, 0, bad_barrier)(x);
}

static void test_death() {
  g_dev = dev<float>(16);
  int sig = in_child(touch_device);
  /* SIGSEGV, or a non-zero exit where a sanitizer's handler reports the fault first. */
  CHECK(sig == SIGSEGV || sig == SIGBUS || sig < 0, "host read of device memory: signal %d", sig);
  emu_host_access_begin();
  g_dev[0] = 1.0f; /* inside an access window the host may touch it */
  emu_host_access_end();
  CUDA_OK(cudaFree(g_dev));
  fprintf(stderr, "(the deadlock report below is expected)\n");
  sig = in_child(deadlocked_kernel);
  CHECK(sig == SIGABRT || sig < 0, "deadlocked kernel: signal %d", sig);
  printf("death tests: host access faults, deadlock aborts ok\n");
}

static void timings() {
  const int64_t n = 1 << 20;
  float *x = dev<float>(n);
  CUDA_OK(cudaMemset(x, 0, n * sizeof(float)));
  long long s0 = emu::switch_count();
  double t0 = seconds();
  CH_LAUNCH((unsigned)(n / 256), 256, 0, 0, trivial)(x, n);
  double t1 = seconds();
  CUDA_OK(cudaGetLastError());
  printf("1M-thread trivial kernel: %.1f ms (%.0f ns per thread, %lld fiber resumptions)\n",
         1e3 * (t1 - t0), 1e9 * (t1 - t0) / (double)n, emu::switch_count() - s0);
  int *r = dev<int>(1);
  const int rounds = 200, threads = 256;
  s0 = emu::switch_count();
  t0 = seconds();
  CH_LAUNCH(1, threads, 0, 0, many_barriers)(r, rounds);
  t1 = seconds();
  long long k = emu::switch_count() - s0;
  CHECK(down(r, 1)[0] == rounds, "barrier kernel");
  printf("barriers: %d x %d threads: %.1f ms, %lld resumptions, %.0f ns per switch pair\n",
         rounds, threads, 1e3 * (t1 - t0), k, 1e9 * (t1 - t0) / (double)k);
  CUDA_OK(cudaFree(x));
  CUDA_OK(cudaFree(r));
}

int main() {
  test_runtime();
  test_status();
  test_indices();
  test_tree_and_dynamic_shared();
  test_warp_ops();
  test_atomics();
  test_launch_checks();
  test_death();
  timings();
  printf("test_emu: all ok\n");
  return 0;
}
