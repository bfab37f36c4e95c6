#include "io/file.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

rq_status rq_file_read(const char *path, char **data, int64_t *len) {
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return rq_errorf(RQ_EIO, "cannot open '%s': %s", path, strerror(errno));
    int64_t cap = 1 << 16, n = 0;
    char *buf = rq_xalloc(cap + 1);
    for (;;) {
        if (n == cap) {
            char *b2 = rq_xalloc(2 * cap + 1);
            memcpy(b2, buf, (size_t)n);
            rq_free(buf);
            buf = b2;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, (size_t)(cap - n), f);
        if (r == 0) break;
        n += (int64_t)r;
    }
    bool err = ferror(f);
    fclose(f);
    if (err) {
        rq_free(buf);
        return rq_errorf(RQ_EIO, "cannot read '%s'", path);
    }
    buf[n] = 0;
    *data = buf;
    *len = n;
    return RQ_OK;
}
