/* File-system helpers with the durability rules checkpoints and run files rely on. */
#pragma once
#include <stddef.h>
#include "cohort/status.h"

/* Creates `path` and its parents (like mkdir -p). Errors: CH_ERR_IO naming the path. */
CH_API ch_status ch_mkdir_p(const char *path);

/* fsync of the directory that holds `path`, which makes a rename or unlink in it durable.
 * File systems that cannot sync directories (EINVAL) count as success. Errors: CH_ERR_IO. */
CH_API ch_status ch_fsync_parent_dir(const char *path);

/* Replaces `path` atomically with `len` bytes of `data`: writes `path`.tmp, fsyncs it, renames
 * it over `path`, fsyncs the directory. On error the temporary file is removed and `path` is
 * untouched. Errors: CH_ERR_IO naming the file, CH_ERR_INVALID (path too long). */
CH_API ch_status ch_write_file_atomic(const char *path, const void *data, size_t len);
