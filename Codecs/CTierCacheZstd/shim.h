// The C surface of libzstd that TierCacheZstd uses, through the stable (non-static) API only, so
// that any libzstd >= 1.4.0 of the system links. Macros get typed `static inline` wrappers
// prefixed with the module name.
#ifndef CTIERCACHE_ZSTD_SHIM_H
#define CTIERCACHE_ZSTD_SHIM_H

#include <stddef.h>
#include <zstd.h>
#include <zstd_errors.h>
#include <zdict.h>

/// ZSTD_CONTENTSIZE_UNKNOWN: the frame does not declare its decompressed size.
static inline unsigned long long CTierCacheZstd_contentSizeUnknown(void) {
    return ZSTD_CONTENTSIZE_UNKNOWN;
}

/// ZSTD_CONTENTSIZE_ERROR: the bytes are not a valid frame header.
static inline unsigned long long CTierCacheZstd_contentSizeError(void) {
    return ZSTD_CONTENTSIZE_ERROR;
}

/// ZSTD_COMPRESSBOUND as a function of a size_t (the macro is not importable).
static inline size_t CTierCacheZstd_compressBound(size_t size) {
    return ZSTD_COMPRESSBOUND(size);
}

/// ZSTD_VERSION_NUMBER of the headers compiled against.
static inline unsigned CTierCacheZstd_headerVersionNumber(void) {
    return ZSTD_VERSION_NUMBER;
}

#endif
