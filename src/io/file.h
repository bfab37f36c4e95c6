/* Whole-file reads of the text inputs (prompts, calibration text, token id lists, task
 * files). */
#ifndef RQ_IO_FILE_H
#define RQ_IO_FILE_H

#include "base/status.h"

#include <stdint.h>

/* The largest file rq_file_read reads (1 GiB): text inputs are far smaller. */
#define RQ_FILE_READ_MAX (INT64_C(1) << 30)

#include <sys/stat.h>

/* What a non-regular file is, for messages: "symbolic link", "character device", "FIFO",
 * "socket", "directory", ... */
const char *rq_file_kind_name(mode_t mode);

/* Open path for reading without blocking (a FIFO would block in open) and check that it
 * is a regular file of at most max_bytes bytes (-1: any size); returns the descriptor
 * (O_NONBLOCK cleared) and its size. Errors: RQ_EIO "cannot open 'PATH': REASON",
 * "'PATH' is not a regular file (a KIND)", "'PATH' has N bytes, more than the limit of
 * M"; the descriptor is closed then. */
rq_status rq_file_open_regular(const char *path, int64_t max_bytes, int *fd, int64_t *size);

/* Read the whole regular file at path (at most RQ_FILE_READ_MAX bytes) into *data
 * (NUL-terminated, *len bytes without the NUL; owned by the caller, rq_free). Errors:
 * those of rq_file_open_regular, RQ_ENOMEM, RQ_EIO "cannot read 'PATH': REASON"; *data
 * is NULL then. */
rq_status rq_file_read(const char *path, char **data, int64_t *len);

#endif
