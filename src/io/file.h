/* Whole-file reads. */
#ifndef RQ_IO_FILE_H
#define RQ_IO_FILE_H

#include "base/status.h"

#include <stdint.h>

/* Read the whole file at path into *data (NUL-terminated, *len bytes without the NUL;
 * owned by the caller, rq_free). Errors: RQ_EIO "cannot open 'PATH': REASON" or
 * "cannot read 'PATH'"; *data is NULL then. */
rq_status rq_file_read(const char *path, char **data, int64_t *len);

#endif
