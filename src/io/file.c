#include "io/file.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *rq_file_kind_name(mode_t m) {
    if (S_ISLNK(m)) return "symbolic link";
    if (S_ISCHR(m)) return "character device";
    if (S_ISBLK(m)) return "block device";
    if (S_ISFIFO(m)) return "FIFO";
    if (S_ISSOCK(m)) return "socket";
    if (S_ISDIR(m)) return "directory";
    return "special file";
}

rq_status rq_file_open_regular(const char *path, int64_t max_bytes, int *fd_out, int64_t *size) {
    *fd_out = -1;
    *size = 0;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return rq_errorf(RQ_EIO, "cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    rq_status s = RQ_OK;
    if (fstat(fd, &st) != 0) s = rq_errorf(RQ_EIO, "cannot open '%s': %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        s = rq_errorf(RQ_EIO, "'%s' is not a regular file (a %s)", path, rq_file_kind_name(st.st_mode));
    else if (max_bytes >= 0 && (int64_t)st.st_size > max_bytes)
        s = rq_errorf(RQ_EIO, "'%s' has %lld bytes, more than the limit of %lld", path, (long long)st.st_size,
                      (long long)max_bytes);
    else if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0)
        s = rq_errorf(RQ_EIO, "cannot open '%s': %s", path, strerror(errno));
    if (s != RQ_OK) {
        close(fd);
        return s;
    }
    *fd_out = fd;
    *size = (int64_t)st.st_size;
    return RQ_OK;
}

rq_status rq_file_read(const char *path, char **data, int64_t *len) {
    *data = NULL;
    *len = 0;
    int fd;
    int64_t size;
    RQ_TRY(rq_file_open_regular(path, RQ_FILE_READ_MAX, &fd, &size));
    char *buf = rq_alloc(size + 1);
    if (!buf) {
        close(fd);
        return rq_error_prefix(RQ_ENOMEM, path);
    }
    /* read what fstat promised; a file that shrank meanwhile gives what is there */
    int64_t n = 0;
    while (n < size) {
        ssize_t r = read(fd, buf + n, (size_t)(size - n));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            rq_status s = rq_errorf(RQ_EIO, "cannot read '%s': %s", path, strerror(errno));
            close(fd);
            rq_free(buf);
            return s;
        }
        if (r == 0) break;
        n += r;
    }
    close(fd);
    buf[n] = 0;
    *data = buf;
    *len = n;
    return RQ_OK;
}
