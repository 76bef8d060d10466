/* Private helpers for HDF5 calls in the data and checkpoint layers (not installed).
 * HDF5 prints its whole error stack to stderr by default; cohort reports errors itself, so the
 * data functions silence the automatic printing while they run and turn the innermost HDF5
 * message into the ch_status message instead. */
#pragma once
#include <hdf5.h>
#include <stdio.h>
#include <string.h>

typedef struct h5_quiet {
  H5E_auto2_t func;
  void *data;
} h5_quiet;

/* Turns off HDF5's automatic error printing, remembering the previous handler. */
static inline void h5_quiet_begin(h5_quiet *q) {
  q->func = NULL;
  q->data = NULL;
  H5Eget_auto2(H5E_DEFAULT, &q->func, &q->data);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

/* Restores the handler saved by h5_quiet_begin. */
static inline void h5_quiet_end(const h5_quiet *q) { H5Eset_auto2(H5E_DEFAULT, q->func, q->data); }

static inline herr_t h5_walk_first_(unsigned n, const H5E_error2_t *e, void *buf) {
  if (n == 0 && e->desc) snprintf(buf, 256, "%s", e->desc);
  return 0;
}

/* The most specific message of this thread's HDF5 error stack ("" when empty), in `buf`
 * (256 bytes). Call right after the failing HDF5 call: the next HDF5 call clears the stack. */
static inline const char *h5_error(char buf[256]) {
  buf[0] = '\0';
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, h5_walk_first_, buf);
  return buf;
}
