/* Pieces of the checkpoint layer shared between src/ckpt files (not installed). */
#pragma once
#include <hdf5.h>
#include <stdint.h>
#include "cohort/ckpt.h"

/* Selects elements [a, b) (row-major order) of a dataset of `shape` in `space`: a union of at
 * most 2 ndim - 1 boxes; a == b selects nothing. Returns < 0 on an HDF5 error. */
herr_t ckpt_select_range(hid_t space, int ndim, const int64_t *shape, int64_t a, int64_t b);

/* Dataset path of a parameter for a buffer kind: /model/<name> or /optim/<name>/<kind>. */
void ckpt_dataset_path(const ch_param_spec *p, const char *kind, char *out, size_t size);

/* Root attributes: writes every field of `m` (collective: same values on every rank). */
ch_status ckpt_write_meta(hid_t file, const char *path, const ch_ckpt_meta *m);
/* Reads and checks the format attributes, then fills `m` (config and losses malloc'ed). */
ch_status ckpt_read_meta(hid_t file, const char *path, ch_ckpt_meta *m);

/* Scalar attribute helpers (also used by `cohort ckpt inspect`). */
ch_status ckpt_attr_write_u32(hid_t obj, const char *name, uint32_t v);
ch_status ckpt_attr_read_u32(hid_t obj, const char *name, uint32_t *v);

/* One rank's piece of one tensor: elements [a, a + len) with their CRC-32. */
typedef struct ckpt_piece {
  int64_t a, len, crc;
} ckpt_piece;

/* Gathers every rank's pieces (k per rank, same order everywhere) and combines, for each of
 * the k tensors of numel[i] elements, the CRC-32 of the whole tensor into crc[i]; covered[i] is
 * 0 when the pieces do not tile the tensor. Collective. Errors: CH_ERR_MPI, CH_ERR_NOMEM. */
ch_status ckpt_combine_crcs(const ch_group *g, const ckpt_piece *mine, int k,
                            const int64_t *numel, uint32_t *crc, int *covered);

/* Dataset transfers of this process so far, by the mode HDF5 actually used
 * (H5Pget_mpio_actual_io_mode): tests check that checkpoint I/O really is collective. */
typedef struct ckpt_io_stats {
  int64_t collective, independent;
} ckpt_io_stats;
ckpt_io_stats ckpt_get_io_stats(void);
