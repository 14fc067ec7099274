// What a second pass over a cached file costs: open + pread + close of a file in the page cache,
// alone and followed by XXH64 or XXH3 over the bytes (docs/benchmarks.md, decisions note 11).
// Not part of the build. Needs libxxhash-dev (for xxhash.h):
//   gcc -O3 -mavx2 docs/experiments/read-then-hash.c -o /tmp/read-then-hash && /tmp/read-then-hash
#define XXH_INLINE_ALL
#include <xxhash.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

enum { none, xxh64, xxh3 };

// ns per read of `path` (`size` bytes), then hashed as `hash` says.
static double per_read(const char *path, size_t size, int hash, unsigned long long *sink) {
    int iterations = (int)((64u << 20) / size);
    double start = now_ns();
    for (int i = 0; i < iterations; i++) {
        int fd = open(path, O_RDONLY);
        unsigned char *buffer = malloc(size);
        if (pread(fd, buffer, size, 0) != (ssize_t)size) abort();
        close(fd);
        *sink += hash == xxh64 ? XXH64(buffer, size, 0) : hash == xxh3 ? XXH3_64bits(buffer, size) : buffer[7];
        free(buffer);
    }
    return (now_ns() - start) / iterations;
}

int main(void) {
    size_t sizes[] = {4 << 10, 64 << 10, 1 << 20};
    unsigned long long sink = 0;
    for (int s = 0; s < 3; s++) {
        size_t size = sizes[s];
        char path[64];
        snprintf(path, sizeof path, "/tmp/read-then-hash-%zu", size);
        unsigned char *bytes = malloc(size);
        for (size_t i = 0; i < size; i++) bytes[i] = (unsigned char)(i * 2654435761u >> 13);
        int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
        if (write(fd, bytes, size) != (ssize_t)size) abort();
        close(fd);
        for (int round = 0; round < 3; round++) {
            double read = per_read(path, size, none, &sink);
            double with64 = per_read(path, size, xxh64, &sink);
            double with3 = per_read(path, size, xxh3, &sink);
            printf("%7zu B: read %.0f ns, + XXH64 %.0f ns, + XXH3 %.0f ns; read/(read+XXH3) %.2f\n",
                   size, read, with64, with3, read / with3);
        }
        unlink(path);
        free(bytes);
    }
    return sink == 42;
}
