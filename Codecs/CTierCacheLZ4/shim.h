// The C surface of liblz4 that TierCacheLZ4 uses: the block API (lz4.h) and its HC variant
// (lz4hc.h), through symbols the shared library exports. Macros get typed `static inline`
// wrappers prefixed with the module name.
#ifndef CTIERCACHE_LZ4_SHIM_H
#define CTIERCACHE_LZ4_SHIM_H

#include <lz4.h>
#include <lz4hc.h>

/// LZ4_MAX_INPUT_SIZE: the largest input the block API accepts.
static inline int CTierCacheLZ4_maxInputSize(void) {
    return LZ4_MAX_INPUT_SIZE;
}

/// LZ4_COMPRESSBOUND as a function (the macro is not importable).
static inline int CTierCacheLZ4_compressBound(int size) {
    return LZ4_COMPRESSBOUND(size);
}

/// LZ4HC_CLEVEL_MIN, LZ4HC_CLEVEL_DEFAULT, LZ4HC_CLEVEL_MAX.
static inline int CTierCacheLZ4_hcLevelMin(void) { return LZ4HC_CLEVEL_MIN; }
static inline int CTierCacheLZ4_hcLevelDefault(void) { return LZ4HC_CLEVEL_DEFAULT; }
static inline int CTierCacheLZ4_hcLevelMax(void) { return LZ4HC_CLEVEL_MAX; }

/// The largest acceleration lz4 honours (LZ4_ACCELERATION_MAX, defined in lz4.c, not the header);
/// lz4 >= 1.9.3 replaces larger values by it.
static inline int CTierCacheLZ4_accelerationMax(void) { return 65537; }

#endif
