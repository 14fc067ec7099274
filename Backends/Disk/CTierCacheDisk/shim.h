// Typed wrappers for the Linux calls the disk tier's read path needs and Swift cannot reach:
// syscall(2) is variadic, preadv2(2) is declared only under _GNU_SOURCE, and fstatfs(2) is not
// in Swift's Glibc module. The first two report ENOSYS where the platform lacks them, so the
// caller falls back to its thread pool.
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
#define CTIERCACHEDISK_RESOLVE_CACHED 0x20
#define CTIERCACHEDISK_RWF_NOWAIT 0x00000008
extern ssize_t preadv2(int fd, const struct iovec *iov, int iovcnt, off_t offset, int flags);
#include <sys/vfs.h>
#endif

/// The type of the file system holding the open file or folder `fd` (`statfs`'s `f_type`, a
/// magic number from <linux/magic.h>), or -1 when it cannot be told. Swift's Glibc module does
/// not export `fstatfs`.
static inline int64_t ctiercachedisk_filesystem_type(int fd) {
#if defined(__linux__)
    struct statfs info;
    if (fstatfs(fd, &info) != 0) return -1;
    return (int64_t)(uint32_t)info.f_type;
#else
    (void)fd;
    return -1;
#endif
}

/// Opens `path` (relative to the folder `directory` unless absolute) with `flags` only if every
/// path component is in the kernel's lookup cache, so the call cannot block on disk I/O:
/// openat2(RESOLVE_CACHED). Fails with EAGAIN when it would have to read the disk,
/// ENOSYS/EINVAL/EPERM where openat2 or the flag is unavailable.
static inline int ctiercachedisk_openat_cached(int directory, const char *path, int flags) {
#if defined(__linux__)
    struct ctiercachedisk_open_how how = {0};
    how.flags = (uint64_t)(unsigned)flags;
    how.resolve = CTIERCACHEDISK_RESOLVE_CACHED;
    return (int)syscall(CTIERCACHEDISK_SYS_OPENAT2, directory, path, &how, sizeof how);
#else
    (void)directory; (void)path; (void)flags;
    errno = ENOSYS;
    return -1;
#endif
}

/// preadv(2), or preadv2(RWF_NOWAIT) when `nowait` is non-zero: reads from the page cache only,
/// returning fewer bytes than asked, or failing with EAGAIN, when the rest would need disk I/O
/// (ENOSYS/EOPNOTSUPP where unsupported). One call fills several buffers, e.g. an entry's header,
/// its payload's own array and its checksum.
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
