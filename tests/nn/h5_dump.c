/* HDF5 writing helpers of the reference dumpers (tests/nn/h5_dump.h). */
#include "h5_dump.h"

#include <string.h>

#include "testlib.h"

void h5d_write_array(hid_t loc, const char *name, hid_t type, int rank, const hsize_t *dims,
                     const void *data) {
  hid_t space = rank ? H5Screate_simple(rank, dims, NULL) : H5Screate(H5S_SCALAR);
  H5CK(space);
  hid_t d = H5Dcreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5CK(d);
  H5CK(H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data));
  H5CK(H5Dclose(d));
  H5CK(H5Sclose(space));
}

/* A scalar attribute of memory (and file) type `type` holding the value at v. */
static void attr_scalar(hid_t loc, const char *name, hid_t type, const void *v) {
  hid_t space = H5Screate(H5S_SCALAR);
  H5CK(space);
  hid_t a = H5Acreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  H5CK(a);
  H5CK(H5Awrite(a, type, v));
  H5CK(H5Aclose(a));
  H5CK(H5Sclose(space));
}

void h5d_attr_double(hid_t loc, const char *name, double v) {
  attr_scalar(loc, name, H5T_NATIVE_DOUBLE, &v);
}

void h5d_attr_int(hid_t loc, const char *name, long long v) {
  attr_scalar(loc, name, H5T_NATIVE_LLONG, &v);
}

void h5d_attr_string(hid_t loc, const char *name, const char *v) {
  hid_t type = H5Tcopy(H5T_C_S1);
  H5CK(type);
  H5CK(H5Tset_size(type, strlen(v)));
  attr_scalar(loc, name, type, v);
  H5CK(H5Tclose(type));
}

/* One group holding every parameter of `flat` as a dataset of its logical shape. */
void h5d_write_tensors(hid_t file, const char *group, const ch_layout *l, const float *flat) {
  hid_t g = H5Gcreate2(file, group, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5CK(g);
  for (int t = 0; t < l->nparams; t++) {
    const ch_param_spec *s = &l->params[t];
    hsize_t dims[CH_MAX_DIMS];
    for (int d = 0; d < s->ndim; d++) dims[d] = (hsize_t)s->shape[d];
    h5d_write_array(g, s->name, H5T_NATIVE_FLOAT, s->ndim, dims, flat + l->offsets[t]);
  }
  H5CK(H5Gclose(g));
}

