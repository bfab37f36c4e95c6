#include "io/atomic_file.h"

#include "io/file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* path must be absent or a regular file (links not followed) */
static rq_status check_target(const char *path) {
    if (!*path) return rq_errorf(RQ_EIO, "empty output path");
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT) return RQ_OK;
        return rq_errorf(RQ_EIO, "%s: cannot write: %s", path, strerror(errno));
    }
    if (!S_ISREG(st.st_mode))
        return rq_errorf(RQ_EIO, "%s: is a %s; rotquant writes only regular files (refusing to replace it)", path,
                         rq_file_kind_name(st.st_mode));
    return RQ_OK;
}

/* "<path>.tmp.<pid>" */
static char *tmp_name(const char *path, long pid) {
    size_t n = strlen(path) + 32;
    char *t = rq_xalloc((int64_t)n);
    snprintf(t, n, "%s.tmp.%ld", path, pid);
    return t;
}

/* Remove "<path>.tmp.<pid>" left by processes that no longer exist. Best effort: a
 * directory that cannot be listed is left alone (creating the temporary will say why). */
static void remove_stale(const char *path) {
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t dlen = slash ? (size_t)(slash - path) + 1 : 0, blen = strlen(base);
    char *dir = rq_xalloc((int64_t)dlen + 2);
    if (slash) memcpy(dir, path, dlen), dir[dlen] = 0;
    else strcpy(dir, ".");
    DIR *d = opendir(dir);
    if (!d) {
        rq_free(dir);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *nm = e->d_name;
        if (strncmp(nm, base, blen) != 0 || strncmp(nm + blen, ".tmp.", 5) != 0) continue;
        const char *digits = nm + blen + 5;
        size_t nd = strspn(digits, "0123456789");
        if (nd == 0 || nd > 9 || digits[nd] != 0) continue;
        long pid = strtol(digits, NULL, 10);
        if (pid <= 0 || pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        char *full = tmp_name(path, pid);
        struct stat st;
        if (lstat(full, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid()) unlink(full);
        rq_free(full);
    }
    closedir(d);
    rq_free(dir);
}

/* Create the temporary exclusively. One of our own pid left by an earlier boot (no
 * process of ours is writing it) is replaced. */
static int create_tmp(const char *tmp) {
    int flags = O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW;
    int fd = open(tmp, flags, 0666);
    if (fd < 0 && errno == EEXIST) {
        struct stat st;
        if (lstat(tmp, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() && unlink(tmp) == 0)
            fd = open(tmp, flags, 0666);
        else errno = EEXIST;
    }
    return fd;
}

static void af_clear(rq_atomic_file *af) {
    rq_free(af->path);
    rq_free(af->tmp_path);
    memset(af, 0, sizeof *af);
}

rq_status rq_atomic_file_check(const char *path) {
    RQ_TRY(check_target(path));
    remove_stale(path);
    char *tmp = tmp_name(path, (long)getpid());
    int fd = create_tmp(tmp);
    rq_status s = RQ_OK;
    if (fd < 0) s = rq_errorf(RQ_EIO, "%s: cannot create a file there (%s): %s", path, tmp, strerror(errno));
    else close(fd), unlink(tmp);
    rq_free(tmp);
    return s;
}

rq_status rq_atomic_file_open(rq_atomic_file *af, const char *path) {
    memset(af, 0, sizeof *af);
    RQ_TRY(check_target(path));
    remove_stale(path);
    af->path = rq_strdup(path);
    af->tmp_path = tmp_name(path, (long)getpid());
    int fd = create_tmp(af->tmp_path);
    if (fd < 0 || !(af->f = fdopen(fd, "wb"))) {
        rq_status s = rq_errorf(RQ_EIO, "%s: cannot create: %s", af->tmp_path, strerror(errno));
        if (fd >= 0) close(fd), unlink(af->tmp_path);
        af_clear(af);
        return s;
    }
    return RQ_OK;
}

/* RQ_DEBUG_WRITE_STOP (header): stop once `written` reaches it */
static void debug_stop(const rq_atomic_file *af) {
    static int64_t stop_at = -2;
    if (stop_at == -2) {
        const char *e = getenv("RQ_DEBUG_WRITE_STOP");
        stop_at = e && *e ? strtoll(e, NULL, 10) : -1;
    }
    if (stop_at >= 0 && af->written >= stop_at) {
        fflush(af->f);
        raise(SIGSTOP);
    }
}

rq_status rq_atomic_file_write(rq_atomic_file *af, const void *data, size_t n) {
    RQ_ASSERT(af->f);
    if (n && fwrite(data, 1, n, af->f) != n) {
        if (!af->err) af->err = errno ? errno : EIO;
        return rq_errorf(RQ_EIO, "%s: write failed: %s", af->tmp_path, strerror(af->err));
    }
    af->written += (int64_t)n;
    debug_stop(af);
    return RQ_OK;
}

rq_status rq_atomic_file_printf(rq_atomic_file *af, const char *fmt, ...) {
    RQ_ASSERT(af->f);
    va_list ap;
    va_start(ap, fmt);
    int r = vfprintf(af->f, fmt, ap);
    va_end(ap);
    if (r < 0) {
        if (!af->err) af->err = errno ? errno : EIO;
        return rq_errorf(RQ_EIO, "%s: write failed: %s", af->tmp_path, strerror(af->err));
    }
    af->written += r;
    debug_stop(af);
    return RQ_OK;
}

rq_status rq_atomic_file_commit(rq_atomic_file *af) {
    RQ_ASSERT(af->f);
    rq_status s = RQ_OK;
    errno = 0;
    if (af->err) s = rq_errorf(RQ_EIO, "%s: write failed: %s", af->tmp_path, strerror(af->err));
    else if (fflush(af->f) != 0 || ferror(af->f) || fsync(fileno(af->f)) != 0)
        s = rq_errorf(RQ_EIO, "%s: write failed: %s", af->tmp_path, strerror(errno ? errno : EIO));
    if (fclose(af->f) != 0 && s == RQ_OK) s = rq_errorf(RQ_EIO, "%s: close failed: %s", af->tmp_path, strerror(errno));
    af->f = NULL;
    if (s == RQ_OK) s = check_target(af->path); /* it may have changed during the work */
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
