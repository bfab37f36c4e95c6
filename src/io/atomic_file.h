/* Atomic file writes: write to "<path>.tmp.<pid>", fsync, rename onto <path>.
 * On any failure the temporary is removed and <path> is untouched. */
#ifndef RQ_IO_ATOMIC_FILE_H
#define RQ_IO_ATOMIC_FILE_H

#include "base/status.h"

#include <stdio.h>

typedef struct rq_atomic_file {
    FILE *f;
    char *path;
    char *tmp_path;
} rq_atomic_file;

rq_status rq_atomic_file_open(rq_atomic_file *af, const char *path);
/* Write n bytes; RQ_EIO on short write. */
rq_status rq_atomic_file_write(rq_atomic_file *af, const void *data, size_t n);
/* Flush, fsync, close and rename. Frees the struct's strings either way. */
rq_status rq_atomic_file_commit(rq_atomic_file *af);
/* Close and remove the temporary. */
void rq_atomic_file_abort(rq_atomic_file *af);

#endif
