/* Element ranges of row-major tensors as HDF5 hyperslab unions, and whole-tensor CRC-32s
 * combined from the ranks' pieces. A rank's part of the flat layout cuts tensors at arbitrary
 * elements (ZeRO shards do too), so a piece is a partial first row, whole rows, and a partial
 * last row, recursively per dimension. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "ckpt/ckpt_internal.h"

typedef struct box_ctx {
  hid_t space;
  int ndim, nboxes;
  const int64_t *shape;
  hsize_t start[CH_MAX_DIMS], count[CH_MAX_DIMS];
} box_ctx;

static herr_t add_box(box_ctx *c) {
  H5S_seloper_t op = c->nboxes++ ? H5S_SELECT_OR : H5S_SELECT_SET;
  return H5Sselect_hyperslab(c->space, op, c->start, NULL, c->count, NULL);
}

/* Elements [a, b) of the sub-tensor at dimension d (indices of dims < d fixed in c->start). */
static herr_t select_sub(box_ctx *c, int d, int64_t a, int64_t b) {
  if (a >= b) return 0;
  int64_t inner = 1;
  for (int i = d + 1; i < c->ndim; i++) inner *= c->shape[i];
  for (int i = d + 1; i < c->ndim; i++) c->start[i] = 0, c->count[i] = (hsize_t)c->shape[i];
  int64_t r0 = a / inner, r1 = b / inner;
  if (d == c->ndim - 1 || (a % inner == 0 && b % inner == 0)) {
    c->start[d] = (hsize_t)r0;
    c->count[d] = (hsize_t)(r1 - r0);
    return add_box(c);
  }
  if (r0 == r1) {
    c->start[d] = (hsize_t)r0;
    c->count[d] = 1;
    return select_sub(c, d + 1, a - r0 * inner, b - r0 * inner);
  }
  if (a % inner) { /* partial first row */
    c->start[d] = (hsize_t)r0;
    c->count[d] = 1;
    if (select_sub(c, d + 1, a % inner, inner) < 0) return -1;
    r0++;
  }
  if (r1 > r0) { /* whole rows */
    for (int i = d + 1; i < c->ndim; i++) c->start[i] = 0, c->count[i] = (hsize_t)c->shape[i];
    c->start[d] = (hsize_t)r0;
    c->count[d] = (hsize_t)(r1 - r0);
    if (add_box(c) < 0) return -1;
  }
  if (b % inner) { /* partial last row */
    c->start[d] = (hsize_t)r1;
    c->count[d] = 1;
    if (select_sub(c, d + 1, 0, b % inner) < 0) return -1;
  }
  return 0;
}

herr_t ckpt_select_range(hid_t space, int ndim, const int64_t *shape, int64_t a, int64_t b) {
  if (a >= b) return H5Sselect_none(space);
  box_ctx c = {.space = space, .ndim = ndim, .shape = shape};
  return select_sub(&c, 0, a, b);
}

void ckpt_dataset_path(const ch_param_spec *p, const char *kind, char *out, size_t size) {
  if (kind) snprintf(out, size, "/optim/%s/%s", p->name, kind);
  else snprintf(out, size, "/model/%s", p->name);
}

static int cmp_piece(const void *x, const void *y) {
  const ckpt_piece *a = x, *b = y;
  return (a->a > b->a) - (a->a < b->a);
}

ch_status ckpt_combine_crcs(const ch_group *g, const ckpt_piece *mine, int k,
                            const int64_t *numel, uint32_t *crc, int *covered) {
  int n = g->size;
  size_t per = (size_t)k * 3;
  int64_t *all = calloc(per * (size_t)n + 1, sizeof *all);
  ckpt_piece *row = malloc(sizeof *row * (size_t)n);
  ch_status st = CH_OK;
  if (!all || !row) {
    st = CH_FAIL(CH_ERR_NOMEM, "checksum exchange");
    goto done;
  }
  for (int i = 0; i < k; i++) {
    all[per * (size_t)g->rank + 3 * (size_t)i] = mine[i].a;
    all[per * (size_t)g->rank + 3 * (size_t)i + 1] = mine[i].len;
    all[per * (size_t)g->rank + 3 * (size_t)i + 2] = mine[i].crc;
  }
  st = ch_comm_allgather(g, all + per * (size_t)g->rank, all, per * (size_t)n, CH_I64, NULL);
  if (st != CH_OK) goto done;
  for (int i = 0; i < k; i++) {
    int m = 0;
    for (int r = 0; r < n; r++) {
      const int64_t *p = all + per * (size_t)r + 3 * (size_t)i;
      if (p[1] > 0) row[m++] = (ckpt_piece){p[0], p[1], p[2]};
    }
    qsort(row, (size_t)m, sizeof *row, cmp_piece);
    /* CRC-32 of A||B = crc32_combine(crc(A), crc(B), len(B)): pieces fold left in order. */
    uLong c = crc32(0L, Z_NULL, 0);
    int64_t at = 0;
    for (int j = 0; j < m && row[j].a == at; j++) {
      c = crc32_combine(c, (uLong)row[j].crc, (z_off_t)(row[j].len * (int64_t)sizeof(float)));
      at += row[j].len;
    }
    crc[i] = (uint32_t)c;
    covered[i] = at == numel[i];
  }
done:
  free(all);
  free(row);
  return st;
}

ch_status ch_ckpt_resolve(const char *path, char *out, size_t size) {
  struct stat sb;
  if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
    snprintf(out, size, "%s", path); /* a missing file is reported by whoever opens it */
    return CH_OK;
  }
  char pointer[CH_PATH_MAX * 2 + 16], name[CH_PATH_MAX] = "";
  snprintf(pointer, sizeof pointer, "%s/latest", path);
  FILE *f = fopen(pointer, "r");
  int ok = f && fgets(name, sizeof name, f);
  if (f) fclose(f);
  if (!ok)
    return CH_FAIL(CH_ERR_IO, "%s is a directory without a readable `latest` file (no committed "
                   "checkpoint?)", path);
  name[strcspn(name, "\r\n")] = '\0';
  if (!name[0]) return CH_FAIL(CH_ERR_FORMAT, "%s is empty", pointer);
  if (name[0] == '/') snprintf(out, size, "%s", name);
  else snprintf(out, size, "%s/%s", path, name);
  return CH_OK;
}
