/* Opening this rank's device (cohort/device.h): the CPU backend, or the CUDA backend library
 * loaded with dlopen, its GPU chosen by local rank and the rank bound to the cores nearest it. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/cuda.h"
#include "cohort/device.h"
#include "cohort/log.h"
#include "cohort/runtime.h"
#include "kernels/cpu/cpu_kernels.h"

struct ch_device {
  ch_device_cfg cfg;
  const ch_backend *be;
  ch_backend *owned; /* the CUDA backend, freed through the plugin */
  void *dl;
  const ch_cuda_plugin *plugin;
  char desc[64];
};

/* The library's file: COHORT_CUDA_LIBRARY, else libcohort_cuda[_emu].so beside libcohort (this
 * file's own object), else the name alone for the dynamic loader's search path. */
static void *open_library(char *tried, size_t size) {
  const char *env = getenv("COHORT_CUDA_LIBRARY"), *emu = getenv("COHORT_CUDA_EMULATE");
  const char *name = emu && strcmp(emu, "1") == 0 ? "libcohort_cuda_emu.so" : "libcohort_cuda.so";
  char path[4096];
  tried[0] = 0;
  if (env && *env) {
    snprintf(tried, size, "%s", env);
    return dlopen(env, RTLD_NOW | RTLD_LOCAL);
  }
  Dl_info info;
  if (dladdr((void *)open_library, &info) && info.dli_fname) {
    const char *slash = strrchr(info.dli_fname, '/');
    if (slash) {
      snprintf(path, sizeof path, "%.*s/%s", (int)(slash - info.dli_fname), info.dli_fname, name);
      void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
      snprintf(tried, size, "%s", path);
      if (h) return h;
    }
  }
  size_t used = strlen(tried);
  snprintf(tried + used, size - used, "%s%s", used ? ", " : "", name);
  return dlopen(name, RTLD_NOW | RTLD_LOCAL);
}

static ch_status load_plugin(ch_device *d) {
  char tried[8192];
  d->dl = open_library(tried, sizeof tried);
  if (!d->dl)
    return CH_FAIL(CH_ERR_UNSUPPORTED, "device=cuda: cannot load the CUDA backend (tried %s): %s "
                   "(build with the CUDA toolkit, set COHORT_CUDA_LIBRARY, or "
                   "COHORT_CUDA_EMULATE=1 for the host emulation)", tried, dlerror());
  const ch_cuda_plugin *(*entry)(void) =
      (const ch_cuda_plugin *(*)(void))dlsym(d->dl, "cohort_cuda_plugin");
  if (!entry) return CH_FAIL(CH_ERR_UNSUPPORTED, "%s is not a cohort CUDA library", tried);
  d->plugin = entry();
  if (!d->plugin || d->plugin->abi != CH_CUDA_PLUGIN_ABI)
    return CH_FAIL(CH_ERR_UNSUPPORTED, "%s: plugin ABI %d, this libcohort needs %d", tried,
                   d->plugin ? d->plugin->abi : -1, CH_CUDA_PLUGIN_ABI);
  return CH_OK;
}

/* GPU local_rank of the node; a per-rank CUDA_VISIBLE_DEVICES of one GPU (srun --gpus-per-task)
 * is device 0 of every rank. */
static ch_status pick_gpu(const ch_device *d, int *gpu) {
  const ch_runtime *rt = ch_runtime_get();
  int lr = rt ? rt->local_rank : 0, ls = rt ? rt->local_size : 1;
  int n = d->plugin->device_count();
  const char *vis = getenv("CUDA_VISIBLE_DEVICES");
  if (n <= 0)
    return CH_FAIL(CH_ERR_UNSUPPORTED, "device=cuda: no CUDA device visible to this rank "
                   "(CUDA_VISIBLE_DEVICES=%s)", vis ? vis : "unset");
  if (n == 1 && ls > 1 && vis && *vis) {
    *gpu = 0;
    return CH_OK;
  }
  if (n < ls)
    return CH_FAIL(CH_ERR_UNSUPPORTED, "device=cuda: this node has %d GPU%s for %d local ranks: "
                   "start at most %d rank%s per node (one GPU each)", n, n == 1 ? "" : "s", ls, n,
                   n == 1 ? "" : "s");
  *gpu = lr;
  return CH_OK;
}

ch_status ch_device_open(const ch_device_cfg *cfg, ch_device **out) {
  *out = NULL;
  /* bf16 on the CPU is cohort's AVX-512 BF16 GEMM (kernels/cpu/gemm_bf16.c); a CPU without
   * it is refused here rather than emulated, which would run slower than fp32. */
  if (cfg->kind == CH_DEVICE_CPU && cfg->precision == CH_PRECISION_BF16 && !cpu_has_avx512bf16())
    return CH_FAIL(CH_ERR_CONFIG, "precision=bf16 on device=cpu needs a CPU with AVX-512 BF16 "
                   "(avx512_bf16: Intel Cooper Lake, Sapphire Rapids or later, AMD Zen 4 or "
                   "later), which this one lacks: use precision=fp32, or device=cuda");
  ch_device *d = calloc(1, sizeof *d);
  if (!d) return CH_FAIL(CH_ERR_NOMEM, "device");
  d->cfg = *cfg;
  if (cfg->kind == CH_DEVICE_CPU) {
    int bf16 = cfg->precision == CH_PRECISION_BF16;
    d->be = bf16 ? ch_backend_cpu_bf16() : ch_backend_cpu();
    snprintf(d->desc, sizeof d->desc, bf16 ? "cpu bf16" : "cpu");
    *out = d;
    return CH_OK;
  }
  int gpu = 0;
  ch_status st = load_plugin(d);
  if (st == CH_OK) st = pick_gpu(d, &gpu);
  if (st == CH_OK) st = d->plugin->backend_create(gpu, cfg->precision, &d->owned);
  if (st != CH_OK) {
    ch_device_close(d);
    return st;
  }
  d->be = d->owned;
  char bus[32] = "";
  if (d->plugin->pci_bus_id(gpu, bus, sizeof bus) == CH_OK) ch_runtime_bind_near(bus);
  snprintf(d->desc, sizeof d->desc, "%s:%d%s", d->plugin->flavor, gpu,
           cfg->precision == CH_PRECISION_BF16 ? " bf16" : "");
  *out = d;
  return CH_OK;
}

void ch_device_close(ch_device *d) {
  if (!d) return;
  if (d->owned) d->plugin->backend_destroy(d->owned);
  /* The library stays loaded: NCCL and the CUDA runtime keep threads and atexit handlers. */
  free(d);
}

const ch_backend *ch_device_backend(const ch_device *d) { return d->be; }
const char *ch_device_describe(const ch_device *d) { return d->desc; }

ch_status ch_device_group(ch_device *d, const ch_group *host, ch_group *out) {
  if (!d->owned) return ch_group_split(host, 0, host->rank, out); /* host memory: the same ranks */
  return d->plugin->group_create(host, d->be, out);
}
