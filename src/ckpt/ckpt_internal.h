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
/* A string attribute (variable or fixed length) as a malloc'ed copy. Errors: CH_ERR_FORMAT
 * naming the attribute (missing, not a string), CH_ERR_NOMEM. */
ch_status ckpt_attr_read_str(hid_t obj, const char *path, const char *name, char **out);
/* CH_ERR_FORMAT "PATH: attribute 'NAME': WHAT[: the HDF5 message]". */
ch_status ckpt_attr_fail(const char *path, const char *name, const char *what);

/* The class names of `info` as the JSON array of attribute data_class_names (malloc'ed), and
 * back into `info` (one string per class, else CH_ERR_FORMAT naming the attribute); class_names.c. */
ch_status ckpt_class_names_json(const ch_ckpt_model_info *info, char **out);
ch_status ckpt_class_names_parse(const char *path, const char *json, ch_ckpt_model_info *info);

/* The root attributes' checksum (attrs_crc.c). ckpt_attrs_seal: writes attrs_crc32 over every
 * other root attribute (call after the last one; collective like any attribute write). */
ch_status ckpt_attrs_seal(hid_t file, const char *path);
/* Verifies attrs_crc32 whenever the file has it (any version: a flipped format_version must not
 * switch the check off); *verified says whether it did. A file of format version >= 3 must
 * have it. Errors: CH_ERR_FORMAT naming the attribute checksum (mismatch, missing). */
ch_status ckpt_attrs_verify(hid_t file, const char *path, int64_t version, int *verified);

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

/* Test hooks (fault.c), driven by COHORT_FAULT_CKPT=<fault>:<step>. ckpt_fault_is: that fault is
 * asked for the checkpoint of `step`. ckpt_fault_fill: fills the file system of `path` when the
 * checkpoint of `step` reaches `point` (fault fill-<point> or fill-<point>-unreserved); call it
 * on one rank. Both do nothing without the variable. */
int ckpt_fault_is(int64_t step, const char *fault);
void ckpt_fault_fill(const char *path, int64_t step, const char *point);

/* Disk space of a checkpoint file (space.c; the order of the steps is explained there).
 * ckpt_space_need: bytes a file of `tensor_bytes` of tensors needs (tensors, HDF5 metadata,
 * alignment), as estimated by every step below. */
double ckpt_space_need(double tensor_bytes);
/* statvfs preflight of directory `dir`; CH_ERR_IO naming it when the estimate does not fit. */
ch_status ckpt_space_check(const char *dir, double tensor_bytes);
/* Rank 0, before H5Fcreate: creates `path` and allocates `bytes` (the file is truncated by the
 * create). CH_ERR_IO naming the path and the errno ("No space left on device") when that fails;
 * a file system without fallocate counts as success. */
ch_status ckpt_space_probe(const char *path, double bytes);
/* Rank 0, after H5Fcreate and before any HDF5 write: reserves `bytes` beyond the end of file
 * (FALLOC_FL_KEEP_SIZE). Errors as ckpt_space_probe. */
ch_status ckpt_space_reserve(const char *path, double bytes);
/* Rank 0: allocates [0, bytes) (the datasets' exact extent) and sets the size; on failure the
 * file is extended sparsely and the error returned. */
ch_status ckpt_space_extend(const char *path, double bytes);
/* Rank 0, after a successful close: frees the reserved blocks beyond the end of file. */
void ckpt_space_release(const char *path);
/* Why a write of `path` may have failed, for messages: " (no space left on the device: 0.0 MiB
 * free on its file system)" or " (12.5 MiB free ...)"; "" when unknown. */
void ckpt_space_hint(const char *path, char *buf, size_t size);
/* Rank 0, after an agreed failure and before the close: frees the file's blocks (truncates it
 * to 0; it is deleted afterwards) so that HDF5's flush at close finds room. */
void ckpt_space_discard(const char *path);

/* Deadline of a close after a failed save (deadline.c): unless disarmed within `seconds`
 * (rank 0; other ranks 5 s more), rank 0 removes `path` and the job ends (ch_runtime_fatal)
 * with a message naming `path` and `why`. NULL when no thread could be started (no deadline). */
typedef struct ckpt_deadline ckpt_deadline;
ckpt_deadline *ckpt_deadline_arm(const char *path, int rank, double seconds, const char *why);
/* Cancels the deadline and frees it (NULL: nothing). */
void ckpt_deadline_disarm(ckpt_deadline *d);
