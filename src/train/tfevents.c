/* TensorBoard's event file encoding: TFRecord framing and the Event / Summary protobuf fields
 * for scalars, written by hand (protobuf's wire format: a key varint (field << 3 | wire type),
 * then a varint (type 0), 8 LE bytes (type 1), a length varint and bytes (type 2) or 4 LE bytes
 * (type 5)). */
#include "train/tfevents.h"

#include <string.h>

uint32_t tfevents_crc32c(const void *data, size_t n) {
  /* Bit by bit: a record is a few hundred bytes once per logged step, so a table buys nothing. */
  const uint8_t *p = data;
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; i++) {
    crc ^= p[i];
    for (int b = 0; b < 8; b++) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
  }
  return crc ^ 0xFFFFFFFFu;
}

uint32_t tfevents_mask_crc(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

/* An output cursor that only counts when p is NULL. */
typedef struct out {
  uint8_t *p;
  size_t n;
} out;

static void put(out *o, const void *x, size_t k) {
  if (o->p) memcpy(o->p + o->n, x, k);
  o->n += k;
}

static void put_le(out *o, uint64_t v, int bytes) {
  uint8_t c[8];
  for (int i = 0; i < bytes; i++) c[i] = (uint8_t)(v >> (8 * i));
  put(o, c, (size_t)bytes);
}

static void put_varint(out *o, uint64_t v) {
  uint8_t c[10];
  size_t k = 0;
  do {
    c[k] = (uint8_t)(v & 0x7f);
    v >>= 7;
    if (v) c[k] |= 0x80;
    k++;
  } while (v);
  put(o, c, k);
}

enum { WIRE_VARINT = 0, WIRE_I64 = 1, WIRE_LEN = 2, WIRE_I32 = 5 };

static void put_key(out *o, unsigned field, unsigned wire) { put_varint(o, field << 3 | wire); }

static void put_len_field(out *o, unsigned field, const void *x, size_t k) {
  put_key(o, field, WIRE_LEN);
  put_varint(o, k);
  put(o, x, k);
}

size_t tfevents_record(const void *data, size_t n, uint8_t *dst) {
  out o = {dst, 0};
  uint8_t len[8];
  for (int i = 0; i < 8; i++) len[i] = (uint8_t)((uint64_t)n >> (8 * i));
  put(&o, len, 8);
  put_le(&o, tfevents_mask_crc(tfevents_crc32c(len, 8)), 4);
  put(&o, data, n);
  put_le(&o, tfevents_mask_crc(tfevents_crc32c(data, n)), 4);
  return o.n;
}

/* Summary.Value { string tag = 1; float simple_value = 2; } */
static void put_value(out *o, const tfevents_scalar *s) {
  uint32_t bits;
  memcpy(&bits, &s->value, 4);
  put_len_field(o, 1, s->tag, strlen(s->tag));
  put_key(o, 2, WIRE_I32);
  put_le(o, bits, 4);
}

static size_t value_size(const tfevents_scalar *s) {
  out o = {NULL, 0};
  put_value(&o, s);
  return o.n;
}

size_t tfevents_event(double wall_time, int64_t step, const char *file_version, int session_start,
                      const tfevents_scalar *scalars, int n, uint8_t *dst) {
  out o = {dst, 0};
  uint64_t bits;
  memcpy(&bits, &wall_time, 8);
  put_key(&o, 1, WIRE_I64);
  put_le(&o, bits, 8);
  put_key(&o, 2, WIRE_VARINT);
  put_varint(&o, (uint64_t)step); /* int64: a negative step takes ten bytes, as protobuf's */
  if (file_version) {
    put_len_field(&o, 3, file_version, strlen(file_version));
  } else if (session_start) {
    static const uint8_t start[2] = {0x08, 0x01}; /* SessionLog { status = START (1) } */
    put_len_field(&o, 7, start, sizeof start);
  } else {
    /* Summary { repeated Value value = 1; } */
    size_t summary = 0;
    for (int i = 0; i < n; i++) {
      out c = {NULL, 0};
      size_t v = value_size(&scalars[i]);
      put_key(&c, 1, WIRE_LEN);
      put_varint(&c, v);
      summary += c.n + v;
    }
    put_key(&o, 5, WIRE_LEN);
    put_varint(&o, summary);
    for (int i = 0; i < n; i++) {
      put_key(&o, 1, WIRE_LEN);
      put_varint(&o, value_size(&scalars[i]));
      put_value(&o, &scalars[i]);
    }
  }
  return o.n;
}
