// Daemon benchmark anchor (issue 8): the kernel reads SPEC §3.8 requires of every List answer, and nothing else.
// For each program id given on the command line: BPF_PROG_GET_FD_BY_ID, BPF_OBJ_GET_INFO_BY_FD (with room for
// 64 map ids, as the engine asks) and close. One pass over all ids is what a List of those programs must spend
// in the kernel however the daemon is written; the pass is repeated and its p50 printed as "p50us=X".
// Usage: reads ITERATIONS ID...
#include <bpf/bpf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double micros(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int ascending(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s ITERATIONS ID...\n", argv[0]);
        return 2;
    }
    int iterations = atoi(argv[1]);
    int count = argc - 2;
    unsigned *ids = calloc(count, sizeof *ids);
    double *passes = calloc(iterations, sizeof *passes);
    if (iterations < 1 || !ids || !passes) return 2;
    for (int i = 0; i < count; i++) ids[i] = (unsigned)strtoul(argv[i + 2], NULL, 10);
    unsigned mapIDs[64];
    for (int pass = -iterations / 10; pass < iterations; pass++) {  // the first tenth warms up, untimed
        double start = micros();
        for (int i = 0; i < count; i++) {
            int fd = bpf_prog_get_fd_by_id(ids[i]);
            if (fd < 0) {
                fprintf(stderr, "program %u: %s\n", ids[i], strerror(errno));
                return 1;
            }
            struct bpf_prog_info info;
            memset(&info, 0, sizeof info);
            info.nr_map_ids = 64;
            info.map_ids = (unsigned long)mapIDs;
            unsigned length = sizeof info;
            if (bpf_obj_get_info_by_fd(fd, &info, &length) != 0) {
                fprintf(stderr, "program %u info: %s\n", ids[i], strerror(errno));
                return 1;
            }
            close(fd);
        }
        if (pass >= 0) passes[pass] = micros() - start;
    }
    qsort(passes, iterations, sizeof *passes, ascending);
    printf("programs=%d p50us=%.1f p99us=%.1f\n", count, passes[iterations / 2], passes[iterations * 99 / 100]);
    return 0;
}
