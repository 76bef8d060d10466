/* CUDA threads as fibers: the launch, the scheduler, barriers and warp exchange.
 *
 * A launch runs its blocks one after another on the calling OS thread. A block's threads are
 * fibers (ucontext), scheduled round-robin: each runs until it exits or reaches a barrier.
 * A block barrier (__syncthreads) releases when every thread of the block that has not exited
 * is waiting at it; a warp barrier (shuffle, vote, __syncwarp) when the lanes its callers'
 * masks name that have not exited are there. When no fiber can run and no barrier can release,
 * the kernel has a real bug (e.g. __syncthreads inside a branch that some threads of a warp
 * skip, or half a warp at a shuffle while the other half waits at __syncthreads): the
 * emulation prints the kernel and the block and aborts instead of hanging.
 *
 * Stacks: a pool per OS thread, taken when a fiber first runs and returned when it exits, so a
 * kernel without barriers runs every thread on the same (cache-hot) stack. Each stack has a
 * PROT_NONE guard page below it. Under AddressSanitizer the switches are announced with
 * __sanitizer_start/finish_switch_fiber, so ASan checks every kernel's memory accesses. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <memory>
#include <vector>

#include "kernels/cuda/emu/internal.h"

#if defined(__SANITIZE_ADDRESS__)
#define EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EMU_ASAN 1
#endif
#endif
#ifdef EMU_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

namespace emu {

thread_local const thread_ids *cur_thread;
thread_local block_ids cur_block;

namespace {

#ifdef EMU_ASAN
constexpr size_t kStack = 256 << 10; /* ASan's redzones make frames larger */
#else
constexpr size_t kStack = 64 << 10;
#endif

enum { RUNNABLE, WAITING_BLOCK, WAITING_WARP, EXITED };

struct fiber {
  thread_ids ids;
  ucontext_t ctx;
  int state;
  int stack;     /* index in the pool, -1 before it first runs */
  unsigned lane, warp;
  unsigned mask; /* the warp operation's mask while WAITING_WARP */
  void *fake_stack;
};

struct warp_rec {
  unsigned live;      /* lanes that exist and have not exited */
  unsigned arrived;   /* lanes waiting at the current warp barrier */
  unsigned group[2];  /* the lanes released together by the barrier of each parity */
  unsigned gen;       /* barriers released so far: values go to slot[gen & 1] */
  uint64_t slot[2][32];
};

/* One per OS thread that launches kernels. */
struct scheduler {
  ucontext_t main;
  void *main_fake = nullptr;
  const void *main_bottom = nullptr;
  size_t main_size = 0;
  std::vector<fiber> fibers;
  std::vector<warp_rec> warps;
  fiber *cur = nullptr;
  int live = 0, at_block = 0;
  char *stacks = nullptr; /* kMaxThreadsPerBlock stacks, each above a guard page */
  size_t stride = 0;
  std::vector<int> free_stacks;
  unsigned char *shared = nullptr; /* dynamic shared memory */
  void (*body)(void *) = nullptr;
  void *arg = nullptr;
  const char *name = nullptr;
  bool running = false;
  long long switches = 0;

  scheduler() {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    stride = kStack + page;
    void *m = mmap(nullptr, stride * kMaxThreadsPerBlock, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) {
      perror("cohort CUDA emulation: fiber stacks");
      abort();
    }
    stacks = static_cast<char *>(m);
    for (int i = kMaxThreadsPerBlock - 1; i >= 0; i--) {
      (void)mprotect(stacks + (size_t)i * stride, page, PROT_NONE);
      free_stacks.push_back(i);
    }
    shared = static_cast<unsigned char *>(aligned_alloc(256, kSharedPerBlockOptin));
    fibers.resize(kMaxThreadsPerBlock);
    warps.resize(kMaxThreadsPerBlock / 32);
    for (fiber &f : fibers) getcontext(&f.ctx); /* once: makecontext reuses it per block */
  }
  ~scheduler() {
    munmap(stacks, stride * kMaxThreadsPerBlock);
    free(shared);
  }
  char *stack_base(int i) const { return stacks + (size_t)i * stride + (stride - kStack); }
};

thread_local std::unique_ptr<scheduler> tls_sched;

scheduler &sched() {
  if (!tls_sched) tls_sched.reset(new scheduler());
  return *tls_sched;
}

[[noreturn]] void fail(const scheduler &s, const char *what) {
  const uint3 &b = cur_block.bid;
  fprintf(stderr, "cohort CUDA emulation: kernel %s, block (%u,%u,%u): %s\n",
          s.name ? s.name : "?", b.x, b.y, b.z, what);
  abort();
}

/* ---- switching ---- */

void fiber_main();

void resume(scheduler &s, fiber &f) {
  if (f.stack < 0) { /* first run: a stack from the pool and a fresh context */
    f.stack = s.free_stacks.back();
    s.free_stacks.pop_back();
#ifdef EMU_ASAN
    ASAN_UNPOISON_MEMORY_REGION(s.stack_base(f.stack), kStack); /* frames of an earlier fiber */
#endif
    f.ctx.uc_stack.ss_sp = s.stack_base(f.stack);
    f.ctx.uc_stack.ss_size = kStack;
    f.ctx.uc_link = nullptr;
    makecontext(&f.ctx, fiber_main, 0);
  }
  s.cur = &f;
  cur_thread = &f.ids;
  s.switches++;
#ifdef EMU_ASAN
  __sanitizer_start_switch_fiber(&s.main_fake, s.stack_base(f.stack), kStack);
#endif
  swapcontext(&s.main, &f.ctx);
#ifdef EMU_ASAN
  __sanitizer_finish_switch_fiber(s.main_fake, nullptr, nullptr);
#endif
}

/* From a fiber: back to the scheduler in `state`; returns when the scheduler resumes it. */
void yield(scheduler &s, int state) {
  fiber &f = *s.cur;
  f.state = state;
#ifdef EMU_ASAN
  __sanitizer_start_switch_fiber(&f.fake_stack, s.main_bottom, s.main_size);
#endif
  swapcontext(&f.ctx, &s.main);
#ifdef EMU_ASAN
  __sanitizer_finish_switch_fiber(f.fake_stack, nullptr, nullptr);
#endif
}

void fiber_main() {
  scheduler &s = sched();
#ifdef EMU_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &s.main_bottom, &s.main_size);
#endif
  s.body(s.arg);
  s.cur->state = EXITED;
#ifdef EMU_ASAN
  __sanitizer_start_switch_fiber(nullptr, s.main_bottom, s.main_size); /* this stack is done */
#endif
  setcontext(&s.main);
}

/* ---- barriers (scheduler side) ---- */

void release_block(scheduler &s, int n) {
  if (s.at_block == 0 || s.at_block != s.live) return;
  for (int i = 0; i < n; i++)
    if (s.fibers[i].state == WAITING_BLOCK) s.fibers[i].state = RUNNABLE;
  s.at_block = 0;
}

void release_warp(scheduler &s, unsigned w) {
  warp_rec &r = s.warps[w];
  if (!r.arrived) return;
  unsigned want = 0;
  for (unsigned l = 0; l < 32; l++)
    if (r.arrived >> l & 1) want |= s.fibers[w * 32 + l].mask;
  want &= r.live;
  if ((r.arrived & want) != want) return;
  r.group[r.gen & 1] = r.arrived;
  for (unsigned l = 0; l < 32; l++)
    if (r.arrived >> l & 1) s.fibers[w * 32 + l].state = RUNNABLE;
  r.arrived = 0;
  r.gen++;
}

[[noreturn]] void deadlock(scheduler &s, int n) {
  int block = 0, warp = 0;
  for (int i = 0; i < n; i++) {
    block += s.fibers[i].state == WAITING_BLOCK;
    warp += s.fibers[i].state == WAITING_WARP;
  }
  char msg[256];
  snprintf(msg, sizeof msg,
           "deadlock: of %d threads, %d wait at __syncthreads, %d at warp operations, %d exited "
           "(a barrier some threads never reach)",
           n, block, warp, n - s.live);
  fail(s, msg);
}

void run_block(scheduler &s, int n) {
  const dim3 &bd = cur_block.bdim;
  for (int i = 0; i < n; i++) {
    fiber &f = s.fibers[i];
    f.ids.tid = uint3{i % bd.x, i / bd.x % bd.y, i / (bd.x * bd.y)};
    f.state = RUNNABLE;
    f.stack = -1;
    f.lane = (unsigned)i % 32;
    f.warp = (unsigned)i / 32;
  }
  for (int w = 0; w * 32 < n; w++) {
    int lanes = n - w * 32 < 32 ? n - w * 32 : 32;
    warp_rec &r = s.warps[w];
    r.live = lanes == 32 ? ~0u : (1u << lanes) - 1;
    r.arrived = 0;
    r.group[0] = r.group[1] = 0;
    r.gen = 0;
  }
  s.live = n;
  s.at_block = 0;
  while (s.live > 0) {
    bool ran = false;
    for (int i = 0; i < n; i++) {
      fiber &f = s.fibers[i];
      if (f.state != RUNNABLE) continue;
      ran = true;
      resume(s, f);
      switch (f.state) {
      case EXITED:
        s.free_stacks.push_back(f.stack);
        s.live--;
        s.warps[f.warp].live &= ~(1u << f.lane);
        release_warp(s, f.warp);
        release_block(s, n);
        break;
      case WAITING_WARP:
        release_warp(s, f.warp);
        break;
      case WAITING_BLOCK:
        s.at_block++;
        release_block(s, n);
        break;
      default:
        break;
      }
    }
    if (!ran) deadlock(s, n);
  }
}

/* From a fiber: join the current warp barrier of this lane's warp with `mask`. */
unsigned warp_wait(scheduler &s, unsigned mask) {
  fiber &f = *s.cur;
  if (!(mask >> f.lane & 1)) fail(s, "a warp operation's mask does not name the calling lane");
  warp_rec &r = s.warps[f.warp];
  unsigned parity = r.gen & 1;
  f.mask = mask;
  r.arrived |= 1u << f.lane;
  yield(s, WAITING_WARP);
  return parity;
}

scheduler &device_side(const char *op) {
  scheduler &s = sched();
  if (!s.running || !s.cur) {
    fprintf(stderr, "cohort CUDA emulation: %s called outside a kernel\n", op);
    abort();
  }
  return s;
}

} // namespace

/* ---- device side ---- */

void sync_block() {
  scheduler &s = device_side("__syncthreads");
  yield(s, WAITING_BLOCK);
}

void sync_warp(unsigned mask) {
  scheduler &s = device_side("__syncwarp");
  (void)warp_wait(s, mask);
}

unsigned lane_id() { return device_side("a warp operation").cur->lane; }

uint64_t warp_exchange(unsigned mask, uint64_t mine, int src) {
  scheduler &s = device_side("a shuffle");
  fiber &f = *s.cur;
  warp_rec &r = s.warps[f.warp];
  /* Double-buffered by barrier parity: a lane cannot write the next-but-one exchange's slot
   * before every lane of this one has passed the next barrier, i.e. has read this one. */
  r.slot[r.gen & 1][f.lane] = mine;
  unsigned p = warp_wait(s, mask);
  if (src < 0 || src > 31 || !(r.group[p] >> src & 1)) return mine;
  return r.slot[p][src];
}

unsigned warp_ballot(unsigned mask, bool pred, unsigned *members) {
  scheduler &s = device_side("a vote");
  fiber &f = *s.cur;
  warp_rec &r = s.warps[f.warp];
  r.slot[r.gen & 1][f.lane] = pred;
  unsigned p = warp_wait(s, mask), bits = 0, group = r.group[p] & mask;
  for (unsigned l = 0; l < 32; l++)
    if ((group >> l & 1) && r.slot[p][l]) bits |= 1u << l;
  if (members) *members = group;
  return bits;
}

/* ---- host side ---- */

void launch_run(const launch_cfg &c, void (*body)(void *), void *arg) {
  scheduler &s = sched();
  if (s.running) {
    fprintf(stderr, "cohort CUDA emulation: kernel %s launched from device code (dynamic "
                    "parallelism is not emulated)\n", c.name);
    abort();
  }
  int n = (int)(c.block.x * c.block.y * c.block.z);
  s.body = body;
  s.arg = arg;
  s.name = c.name;
  s.running = true;
  cur_block.bdim = c.block;
  cur_block.gdim = c.grid;
  emu_host_access_begin();
  for (unsigned z = 0; z < c.grid.z; z++)
    for (unsigned y = 0; y < c.grid.y; y++)
      for (unsigned x = 0; x < c.grid.x; x++) {
        cur_block.bid = uint3{x, y, z};
        if (c.smem) memset(s.shared, 0xCD, c.smem);
        run_block(s, n);
      }
  emu_host_access_end();
  s.running = false;
  s.cur = nullptr;
  cur_thread = nullptr;
}

/* Context switches since this thread's first launch (for the emulator's own test). */
long long switch_count() { return tls_sched ? tls_sched->switches : 0; }

} // namespace emu

void *emu_dynamic_shared() { return emu::device_side("emu_dynamic_shared").shared; }
