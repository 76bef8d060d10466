/* TEMPORARY (removed as the issue-13 work lands): stubs for the ops not written yet, so that the
 * library links while the backend is assembled. Each returns CH_ERR_UNSUPPORTED. */
#include "kernels/cuda/ops.h"

#define PENDING(name) return CH_FAIL(CH_ERR_UNSUPPORTED, "CUDA op %s: not implemented yet", name)


