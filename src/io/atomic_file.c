#include "io/atomic_file.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void af_clear(rq_atomic_file *af) {
    rq_free(af->path);
    rq_free(af->tmp_path);
    af->path = af->tmp_path = NULL;
    af->f = NULL;
}

rq_status rq_atomic_file_open(rq_atomic_file *af, const char *path) {
    memset(af, 0, sizeof *af);
    size_t n = strlen(path) + 32;
    af->path = rq_strdup(path);
    af->tmp_path = rq_xalloc((int64_t)n);
    snprintf(af->tmp_path, n, "%s.tmp.%ld", path, (long)getpid());
    af->f = fopen(af->tmp_path, "wb");
    if (!af->f) {
        rq_status s = rq_errorf(RQ_EIO, "%s: cannot create: %s", af->tmp_path, strerror(errno));
        af_clear(af);
        return s;
    }
    return RQ_OK;
}

rq_status rq_atomic_file_write(rq_atomic_file *af, const void *data, size_t n) {
    if (n && fwrite(data, 1, n, af->f) != n)
        return rq_errorf(RQ_EIO, "%s: write failed: %s", af->tmp_path, strerror(errno));
    return RQ_OK;
}

rq_status rq_atomic_file_commit(rq_atomic_file *af) {
    rq_status s = RQ_OK;
    if (fflush(af->f) != 0 || fsync(fileno(af->f)) != 0)
        s = rq_errorf(RQ_EIO, "%s: flush failed: %s", af->tmp_path, strerror(errno));
    if (fclose(af->f) != 0 && s == RQ_OK)
        s = rq_errorf(RQ_EIO, "%s: close failed: %s", af->tmp_path, strerror(errno));
    af->f = NULL;
    if (s == RQ_OK && rename(af->tmp_path, af->path) != 0)
        s = rq_errorf(RQ_EIO, "%s: cannot rename to %s: %s", af->tmp_path, af->path, strerror(errno));
    if (s != RQ_OK) unlink(af->tmp_path);
    af_clear(af);
    return s;
}

void rq_atomic_file_abort(rq_atomic_file *af) {
    if (af->f) fclose(af->f);
    if (af->tmp_path) unlink(af->tmp_path);
    af_clear(af);
}
