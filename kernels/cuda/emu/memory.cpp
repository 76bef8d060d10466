/* Emulated device memory: one reserved range of address space (PROT_NONE, no swap reserved),
 * carved by a first-fit allocator with coalescing free lists, and the guard that keeps it
 * unreadable by host code outside kernels, copies and emulated library calls.
 *
 * The guard is one mprotect of the range's used extent (its high-water mark, page-rounded)
 * when the process-wide access count goes 0 -> 1 (read/write) and 1 -> 0 (none). All devices
 * share the range; each allocation remembers its device. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <iterator>
#include <map>
#include <mutex>

#include "kernels/cuda/emu/internal.h"

namespace emu {
namespace {

struct block {
  size_t size;
  int device;
};

struct pool {
  std::mutex mu;
  char *base = nullptr;
  size_t size = 0;
  size_t top = 0;   /* page-rounded end of everything ever allocated */
  size_t used = 0;
  int access = 0;   /* open host-access windows (kernels, copies, library calls) */
  bool guard = true;
  std::map<size_t, size_t> free_; /* offset -> size, coalesced */
  std::map<size_t, block> live;   /* offset -> allocation */

  pool() {
    const char *g = getenv("COHORT_CUDA_EMU_GUARD");
    guard = !(g && strcmp(g, "0") == 0);
    /* 64 GiB of address space; less where the address-space limit forbids it. */
    for (size = kDeviceMemory; size >= ((size_t)1 << 30); size /= 2) {
      void *m = mmap(nullptr, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (m != MAP_FAILED) {
        base = static_cast<char *>(m);
        break;
      }
    }
    if (!base) {
      perror("cohort CUDA emulation: reserving device memory");
      abort();
    }
    free_[0] = size;
  }

  void protect(size_t from, size_t to, bool open) {
    if (to > from) (void)mprotect(base + from, to - from, open ? PROT_READ | PROT_WRITE : PROT_NONE);
  }
  bool open() const { return access > 0 || !guard; }
};

pool &mem() {
  static pool *p = new pool(); /* never destroyed: device memory outlives static destructors */
  return *p;
}

size_t round_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

void insert_free(pool &p, size_t off, size_t size) {
  auto next = p.free_.lower_bound(off);
  if (next != p.free_.end() && off + size == next->first) { /* merge with the block after */
    size += next->second;
    next = p.free_.erase(next);
  }
  if (next != p.free_.begin()) { /* and the one before */
    auto prev = std::prev(next);
    if (prev->first + prev->second == off) {
      prev->second += size;
      return;
    }
  }
  p.free_[off] = size;
}

/* The live allocation containing p, or live.end(). Caller holds mu. */
std::map<size_t, block>::iterator find(pool &p, const void *ptr) {
  const char *c = static_cast<const char *>(ptr);
  if (c < p.base || c >= p.base + p.size) return p.live.end();
  size_t off = (size_t)(c - p.base);
  auto it = p.live.upper_bound(off);
  if (it == p.live.begin()) return p.live.end();
  --it;
  return off < it->first + it->second.size ? it : p.live.end();
}

} // namespace

void *device_alloc(size_t bytes, int device) {
  pool &p = mem();
  size_t need = round_up(bytes ? bytes : 1, kDeviceAlign);
  std::lock_guard<std::mutex> lock(p.mu);
  auto it = p.free_.begin();
  while (it != p.free_.end() && it->second < need) ++it;
  if (it == p.free_.end()) return nullptr;
  size_t off = it->first, rest = it->second - need;
  p.free_.erase(it);
  if (rest) p.free_[off + need] = rest;
  p.live[off] = block{need, device};
  p.used += need;
  size_t page = (size_t)sysconf(_SC_PAGESIZE), end = round_up(off + need, page);
  if (end > p.top) {
    if (p.open()) p.protect(p.top, end, true);
    p.top = end;
  }
  /* Never-written device memory reads as NaN (0xFF bytes), not as the host's zero pages. */
  if (!p.open()) p.protect(off - off % page, end, true);
  memset(p.base + off, 0xFF, need);
  if (!p.open()) p.protect(off - off % page, end, false);
  return p.base + off;
}

bool device_free(void *ptr) {
  pool &p = mem();
  std::lock_guard<std::mutex> lock(p.mu);
  auto it = find(p, ptr);
  if (it == p.live.end() || p.base + it->first != ptr) return false;
  size_t off = it->first, size = it->second.size;
  p.live.erase(it);
  p.used -= size;
  /* Give large blocks' pages back to the system (they read as zero when reused, and
   * device_alloc fills them anyway). */
  size_t page = (size_t)sysconf(_SC_PAGESIZE), lo = round_up(off, page), hi = (off + size) / page * page;
  if (size >= ((size_t)1 << 20) && hi > lo) (void)madvise(p.base + lo, hi - lo, MADV_DONTNEED);
  insert_free(p, off, size);
  return true;
}

int device_of(const void *ptr) {
  pool &p = mem();
  std::lock_guard<std::mutex> lock(p.mu);
  auto it = find(p, ptr);
  return it == p.live.end() ? -1 : it->second.device;
}

size_t device_used() {
  pool &p = mem();
  std::lock_guard<std::mutex> lock(p.mu);
  return p.used;
}

} // namespace emu

using emu::mem;

extern "C" int emu_is_device_range(const void *ptr, size_t bytes) {
  emu::pool &p = mem();
  std::lock_guard<std::mutex> lock(p.mu);
  auto it = emu::find(p, ptr);
  if (it == p.live.end()) return 0;
  size_t off = (size_t)(static_cast<const char *>(ptr) - p.base);
  return off + bytes <= it->first + it->second.size;
}

extern "C" void emu_host_access_begin(void) {
  emu::pool &p = mem();
  std::lock_guard<std::mutex> lock(p.mu);
  if (p.access++ == 0 && p.guard) p.protect(0, p.top, true);
}

extern "C" void emu_host_access_end(void) {
  emu::pool &p = mem();
  std::lock_guard<std::mutex> lock(p.mu);
  if (--p.access == 0 && p.guard) p.protect(0, p.top, false);
}
