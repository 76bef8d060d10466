/* TensorBoard's event file format, encoded by hand (src/train/tfevents.c): TFRecord framing with
 * masked CRC32C and the few fields of the Event and Summary protobufs that scalars need.
 * Pure functions over caller-owned buffers; no I/O (the writer is src/train/tensorboard.c). */
#pragma once
#include <stddef.h>
#include <stdint.h>

/* CRC32C (Castagnoli, reflected polynomial 0x82F63B78, initial and final XOR 0xFFFFFFFF) of n
 * bytes: CRC32C("123456789") = 0xE3069283. Not zlib's CRC-32 (another polynomial). */
uint32_t tfevents_crc32c(const void *data, size_t n);

/* TFRecord's masked CRC: ((crc >> 15) | (crc << 17)) + 0xa282ead8. */
uint32_t tfevents_mask_crc(uint32_t crc);

/* One TFRecord around n bytes of `data`: uint64 LE length, uint32 LE masked CRC32C of those 8
 * length bytes, the data, uint32 LE masked CRC32C of the data. Writes at most
 * TFEVENTS_RECORD_OVERHEAD + n bytes to `out` (NULL: only counts) and returns that count. */
#define TFEVENTS_RECORD_OVERHEAD 16
size_t tfevents_record(const void *data, size_t n, uint8_t *out);

/* One scalar of an Event's Summary: Summary.Value { tag = 1; simple_value = 2 (float) }. */
typedef struct tfevents_scalar {
  const char *tag;
  float value;
} tfevents_scalar;

/* An Event (tensorflow/core/util/event.proto) without its framing: wall_time (field 1, double
 * seconds), step (2, varint), and either file_version (3, string; when `file_version` is not
 * NULL), or session_log START (7; when `session_start`), or a summary (5) of n `scalars`.
 * Writes to `out` (NULL: only counts) and returns the byte count. */
size_t tfevents_event(double wall_time, int64_t step, const char *file_version, int session_start,
                      const tfevents_scalar *scalars, int n, uint8_t *out);
