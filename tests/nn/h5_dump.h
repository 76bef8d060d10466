/* HDF5 writing helpers of the reference dumpers (mlp_dump.c, gpt_dump.c); serial, default
 * property lists; any failure ends the test (CHT_ASSERT). */
#pragma once
#include <hdf5.h>
#include "cohort/tensor.h"
#include "testlib.h"

/* HDF5 calls return a negative value on failure (and print their own error stack). */
#define H5CK(expr) CHT_ASSERT((expr) >= 0, "HDF5 call failed: %s", #expr)

/* Dataset `name` in loc of `rank` dims (0: scalar) holding `data` of HDF5 type `type`. */
void h5d_write_array(hid_t loc, const char *name, hid_t type, int rank, const hsize_t *dims,
                     const void *data);
/* Scalar attributes of loc. */
void h5d_attr_double(hid_t loc, const char *name, double v);
void h5d_attr_int(hid_t loc, const char *name, long long v);
void h5d_attr_string(hid_t loc, const char *name, const char *v);
/* Group `group` holding every parameter of `flat` as a dataset of its logical shape. */
void h5d_write_tensors(hid_t file, const char *group, const ch_layout *l, const float *flat);
