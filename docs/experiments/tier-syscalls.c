// The system calls of one disk-tier get against the baseline's, with nothing else around them
// (docs/benchmarks.md, "Reading the figures"): the tier opens relative to its kept `ns` folder with
// openat2(RESOLVE_CACHED), fstats, reads header / payload / checksum with one preadv2(RWF_NOWAIT)
// and closes; the baseline opens the whole path, fstats, preads and closes. Not part of the build:
//   gcc -O2 docs/experiments/tier-syscalls.c -o /tmp/tier-syscalls && /tmp/tier-syscalls
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

struct open_how_v0 { uint64_t flags, mode, resolve; };  // <linux/openat2.h>
#define RESOLVE_CACHED_FLAG 0x20

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(void) {
    // The bench's layouts: <base>/tier/ns/<namespace>/<xx>/<fingerprint> and <base>/posix/<fingerprint>.
    const char *name = "a1b39f93fc8420763df8f599491089c6";
    if (system("mkdir -p /tmp/tier-syscalls/tier/ns/bench/a1 /tmp/tier-syscalls/posix") != 0) return 1;
    char tierPath[256], posixPath[256], relative[128];
    snprintf(tierPath, sizeof tierPath, "/tmp/tier-syscalls/tier/ns/bench/a1/%s", name);
    snprintf(posixPath, sizeof posixPath, "/tmp/tier-syscalls/posix/%s", name);
    snprintf(relative, sizeof relative, "bench/a1/%s", name);
    enum { header = 72, payload = 4096, size = header + payload + 8 };
    static unsigned char data[size];
    for (int i = 0; i < size; i++) data[i] = (unsigned char)i;
    const char *paths[] = {tierPath, posixPath};
    for (int p = 0; p < 2; p++) {
        int fd = open(paths[p], O_CREAT | O_WRONLY | O_TRUNC, 0600);
        if (write(fd, data, size) != size) return 1;
        close(fd);
    }
    int ns = open("/tmp/tier-syscalls/tier/ns", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct open_how_v0 how = {O_RDONLY | O_CLOEXEC, 0, RESOLVE_CACHED_FLAG};
    unsigned char head[header], checksum[8];
    struct stat st;
    int iterations = 500000;
    for (int round = 0; round < 3; round++) {
        double start = now_ns();
        for (int i = 0; i < iterations; i++) {
            int fd = (int)syscall(SYS_openat2, ns, relative, &how, sizeof how);
            fstat(fd, &st);
            unsigned char *body = malloc(payload);
            struct iovec vectors[3] = {{head, header}, {body, payload}, {checksum, 8}};
            preadv2(fd, vectors, 3, 0, RWF_NOWAIT);
            close(fd);
            free(body);
        }
        double tier = (now_ns() - start) / iterations;
        start = now_ns();
        for (int i = 0; i < iterations; i++) {
            int fd = open(posixPath, O_RDONLY | O_CLOEXEC);
            fstat(fd, &st);
            unsigned char *body = malloc(st.st_size);
            pread(fd, body, st.st_size, 0);
            close(fd);
            free(body);
        }
        double posix = (now_ns() - start) / iterations;
        printf("4 KiB entry: tier's calls %.0f ns, baseline's calls %.0f ns\n", tier, posix);
    }
    return system("rm -rf /tmp/tier-syscalls") != 0;
}
