/* Atomic file writes: every output of rotquant is written to the temporary
 * "<path>.tmp.<pid>" in the same directory, flushed, fsync'ed, closed (each checked)
 * and renamed onto <path>. On any failure the temporary is removed and <path> is
 * untouched.
 *
 * Only regular files are written: <path> must be absent or a regular file. A symbolic
 * link (not followed), a device node, a FIFO, a socket or a directory is refused with
 * "PATH: is a KIND; rotquant writes only regular files", before and again at the rename.
 *
 * A process killed during a write leaves its temporary behind; opening or checking a
 * path removes the temporaries "<path>.tmp.<pid>" of processes that no longer exist
 * (regular files owned by the caller's user only).
 *
 * Testing: the environment variable RQ_DEBUG_WRITE_STOP=N makes the process stop itself
 * (SIGSTOP) once a temporary holds N bytes or more (tests/sh_kill_write.sh). */
#ifndef RQ_IO_ATOMIC_FILE_H
#define RQ_IO_ATOMIC_FILE_H

#include "base/status.h"

#include <stdio.h>

typedef struct rq_atomic_file {
    FILE *f;
    char *path;      /* owned */
    char *tmp_path;  /* owned */
    int64_t written; /* bytes given to the stream */
    int err;         /* errno of the first failed write (sticky), 0 if none */
} rq_atomic_file;

/* Check, before any long work, that path can be written: it is absent or a regular file,
 * and a temporary can be created beside it (created and removed again). Also removes
 * stale temporaries of path. Errors: RQ_EIO naming path and the reason. */
rq_status rq_atomic_file_check(const char *path);
/* Start writing path (checks as above). On error nothing is left to free. */
rq_status rq_atomic_file_open(rq_atomic_file *af, const char *path);
/* Write n bytes; RQ_EIO on a short write. A failed write also makes commit fail. */
rq_status rq_atomic_file_write(rq_atomic_file *af, const void *data, size_t n);
/* printf into the file; errors as rq_atomic_file_write. */
rq_status rq_atomic_file_printf(rq_atomic_file *af, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Flush, fsync, close and rename (each checked; any earlier write error fails it too).
 * Frees the struct's strings either way; on failure the temporary is removed. */
rq_status rq_atomic_file_commit(rq_atomic_file *af);
/* Close and remove the temporary (no-op on a zeroed or already finished struct). */
void rq_atomic_file_abort(rq_atomic_file *af);

#endif
