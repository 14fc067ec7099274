// Typed wrappers for the Linux calls the disk tier needs and Swift cannot reach: syscall(2) is
// variadic (openat2), preadv2(2) is declared only under _GNU_SOURCE, and fstatfs(2) is not in
// Swift's Glibc module. The first two report ENOSYS where the platform lacks them, so the caller
// falls back (to a walk of the path one folder at a time, to its thread pool). Only the tier's
// system-call layer (FileSystem.swift) calls them.
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
#define CTIERCACHEDISK_RESOLVE_NO_SYMLINKS 0x04
#define CTIERCACHEDISK_RESOLVE_BENEATH 0x08
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

/// Opens `path`, relative to the open folder `directory`, with `flags`, through openat2(2) with
/// RESOLVE_BENEATH and RESOLVE_NO_SYMLINKS: the path cannot leave `directory` and no component of
/// it may be a symbolic link (ELOOP), so a link planted anywhere on the way is refused rather than
/// followed. With `cached_only` non-zero, also RESOLVE_CACHED: the call fails with EAGAIN rather
/// than read the disk to look a component up, so it cannot block on I/O. Fails with
/// ENOSYS/EINVAL/EPERM/E2BIG where openat2 or a flag is unavailable (kernels before 5.6, or 5.12
/// for RESOLVE_CACHED; sandboxes that refuse the call).
static inline int ctiercachedisk_openat_beneath(int directory, const char *path, int flags, int cached_only) {
#if defined(__linux__)
    struct ctiercachedisk_open_how how = {0};
    how.flags = (uint64_t)(unsigned)flags;
    how.resolve = CTIERCACHEDISK_RESOLVE_BENEATH | CTIERCACHEDISK_RESOLVE_NO_SYMLINKS
        | (cached_only ? CTIERCACHEDISK_RESOLVE_CACHED : 0);
    return (int)syscall(CTIERCACHEDISK_SYS_OPENAT2, directory, path, &how, sizeof how);
#else
    (void)directory; (void)path; (void)flags; (void)cached_only;
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
