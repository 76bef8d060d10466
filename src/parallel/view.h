/* The transient whole-layout views of zero2/3 (zero.c) and the bound estimate.c puts on them. */
#pragma once
#include <stddef.h>
#include <unistd.h>

#include "cohort/tensor.h"

#define CH_HUGE ((size_t)2 << 20) /* a transparent huge page on x86-64 and aarch64 (4K base) */

/* The page a view is made of: transparent huge pages when units average 8 MiB or more (one
 * fault per 2 MiB instead of 512 makes dropping a unit and gathering it again cheap: zero3 on a
 * 109 MiB model went from 1.41x to 1.08x ddp's step time), else the base page, so that small
 * models do not keep a huge page per unit resident. A dropped unit can leave one such page at
 * each end resident (it is shared with a neighbour). */
static inline size_t dp_view_granule(const ch_layout *l) {
  size_t mean = l->nunits ? l->numel * sizeof(float) / (size_t)l->nunits : 0;
  return mean >= 4 * CH_HUGE ? CH_HUGE : (size_t)sysconf(_SC_PAGESIZE);
}
