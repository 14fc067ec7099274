// Typed wrappers for the two Linux calls the disk tier's non-blocking read path needs and Swift
// cannot reach: syscall(2) is variadic, and preadv2(2) is declared only under _GNU_SOURCE.
// Both report ENOSYS where the platform lacks them, so the caller falls back to its thread pool.
#ifndef CTIERCACHEDISK_SHIM_H
#define CTIERCACHEDISK_SHIM_H

#include <errno.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#if defined(__linux__)
// From <linux/openat2.h> (Linux 5.6; RESOLVE_CACHED since 5.12), spelled out so that the shim does
// not depend on the installed kernel headers.
struct ctiercachedisk_open_how {
    uint64_t flags;
    uint64_t mode;
    uint64_t resolve;
};
#define CTIERCACHEDISK_SYS_OPENAT2 437
// <fcntl.h> is left out so that its types stay in Glibc's module; these values are the same on
// every Linux architecture Swift supports (x86_64, aarch64).
#define CTIERCACHEDISK_O_RDONLY 0
#define CTIERCACHEDISK_O_CLOEXEC 02000000
#define CTIERCACHEDISK_AT_FDCWD (-100)
#define CTIERCACHEDISK_RESOLVE_CACHED 0x20
#define CTIERCACHEDISK_RWF_NOWAIT 0x00000008
extern ssize_t preadv2(int fd, const struct iovec *iov, int iovcnt, off_t offset, int flags);
#endif

/// Opens `path` read-only only if every path component is in the kernel's lookup cache, so the
/// call cannot block on disk I/O: openat2(RESOLVE_CACHED). Fails with EAGAIN when it would have
/// to read the disk, ENOSYS/EINVAL/EPERM where openat2 or the flag is unavailable.
static inline int ctiercachedisk_open_cached(const char *path) {
#if defined(__linux__)
    struct ctiercachedisk_open_how how = {0};
    how.flags = CTIERCACHEDISK_O_RDONLY | CTIERCACHEDISK_O_CLOEXEC;
    how.resolve = CTIERCACHEDISK_RESOLVE_CACHED;
    return (int)syscall(CTIERCACHEDISK_SYS_OPENAT2, CTIERCACHEDISK_AT_FDCWD, path, &how, sizeof how);
#else
    (void)path;
    errno = ENOSYS;
    return -1;
#endif
}

/// Reads from the page cache only: preadv2(RWF_NOWAIT). Returns fewer bytes than asked, or fails
/// with EAGAIN, when the rest would need disk I/O; ENOSYS/EOPNOTSUPP where unsupported.
static inline ssize_t ctiercachedisk_pread_nowait(int fd, void *buffer, size_t count, off_t offset) {
#if defined(__linux__)
    struct iovec vector;
    vector.iov_base = buffer;
    vector.iov_len = count;
    return preadv2(fd, &vector, 1, offset, CTIERCACHEDISK_RWF_NOWAIT);
#else
    (void)fd; (void)buffer; (void)count; (void)offset;
    errno = ENOSYS;
    return -1;
#endif
}

/// preadv(2), or preadv2(RWF_NOWAIT) when `nowait` is non-zero (page cache only, as
/// ctiercachedisk_pread_nowait): one call fills several buffers, e.g. an entry's header, its
/// payload's own array and its checksum.
static inline ssize_t ctiercachedisk_preadv(int fd, const struct iovec *vectors, int count, off_t offset, int nowait) {
#if defined(__linux__)
    return preadv2(fd, vectors, count, offset, nowait ? CTIERCACHEDISK_RWF_NOWAIT : 0);
#else
    if (nowait) {
        errno = ENOSYS;
        return -1;
    }
    return preadv(fd, vectors, count, offset);
#endif
}

#endif
