// Debian's libbpf-dev (1.1), libxdp-dev (1.3) and libelf-dev, plus the kernel UAPI headers.
// Macros, variadics and ERR_PTR checks become `static inline` helpers prefixed `cbpf_`.
#ifndef CBPF_SHIM_H
#define CBPF_SHIM_H

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <bpf/btf.h>
#include <xdp/libxdp.h>

/// libbpf's version as "major.minor".
static inline unsigned cbpf_libbpf_major(void) { return libbpf_major_version(); }
static inline unsigned cbpf_libbpf_minor(void) { return libbpf_minor_version(); }

/// libbpf's object openers may return an ERR_PTR-encoded pointer; this turns one into NULL + errno.
static inline struct bpf_object *cbpf_object_checked(struct bpf_object *obj) {
    long err = libbpf_get_error(obj);
    if (err) {
        errno = (int)-err;
        return NULL;
    }
    return obj;
}

/// Opens an object file with default options. Returns NULL and sets errno on failure.
static inline struct bpf_object *cbpf_object_open(const char *path) {
    return cbpf_object_checked(bpf_object__open_file(path, NULL));
}

/// libxdp returns ERR_PTR-encoded pointers; this turns one into NULL + errno.
static inline void *cbpf_xdp_unwrap(void *ptr) {
    long err = libxdp_get_error(ptr);
    if (err) {
        errno = (int)-err;
        return NULL;
    }
    return ptr;
}

/// The raw bpf(2) system call, for commands libbpf 1.1 does not wrap (TCX links).
static inline int cbpf_sys_bpf(int cmd, union bpf_attr *attr, unsigned int size) {
    return (int)syscall(__NR_bpf, cmd, attr, size);
}

/// libbpf's print callback receives a va_list; Swift formats it through this helper.
static inline int cbpf_vformat(char *buf, size_t len, const char *fmt, va_list args) {
    return vsnprintf(buf, len, fmt, args);
}

// ---- engine helpers (BpfmanEngine/Kernel) ----
#include <linux/perf_event.h>
#include <sys/ioctl.h>

/// perf_event_open(2) for a tracepoint id (PERF_TYPE_TRACEPOINT), all processes, close-on-exec.
/// Returns the fd, or -1 with errno set.
static inline int cbpf_perf_open_tracepoint(unsigned long long id) {
    struct perf_event_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.type = PERF_TYPE_TRACEPOINT;
    attr.size = sizeof(attr);
    attr.config = id;
    return (int)syscall(__NR_perf_event_open, &attr, -1, 0, -1, PERF_FLAG_FD_CLOEXEC);
}

/// perf_event_open(2) on a dynamic probe PMU (kprobe or uprobe): `type` from
/// /sys/bus/event_source/devices/<pmu>/type, `config` carries the retprobe bit, `name` is the function
/// (kprobe) or file path (uprobe), `offset` the offset within it. pid > 0 limits a uprobe to that process.
static inline int cbpf_perf_open_probe(unsigned int type, unsigned long long config, const char *name,
                                       unsigned long long offset, int pid) {
    struct perf_event_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.type = type;
    attr.size = sizeof(attr);
    attr.config = config;
    attr.config1 = (unsigned long long)(unsigned long)name;
    attr.config2 = offset;
    return (int)syscall(__NR_perf_event_open, &attr, pid > 0 ? pid : -1, pid > 0 ? -1 : 0, -1,
                        PERF_FLAG_FD_CLOEXEC);
}

/// Options for opening an object: libbpf's pin root for PIN_BY_NAME maps. LIBBPF_OPTS does not import.
static inline struct bpf_object *cbpf_object_open_pinned(const char *path, const char *pin_root) {
    LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = pin_root);
    return cbpf_object_checked(bpf_object__open_file(path, &opts));
}

/// Opens an object from `size` bytes at `buf` (which must outlive the object) under `name`, the name libbpf
/// would derive from the file's path; PIN_BY_NAME maps use `pin_root`. NULL with errno on failure.
static inline struct bpf_object *cbpf_object_open_memory(const void *buf, size_t size, const char *name,
                                                         const char *pin_root) {
    LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = name, .pin_root_path = pin_root);
    return cbpf_object_checked(bpf_object__open_mem(buf, size, &opts));
}
#include <sys/vfs.h>

/// 1 when `path` is on a bpffs mount (statfs magic 0xcafe4a11), 0 when not, -1 with errno on error.
static inline int cbpf_is_bpffs(const char *path) {
    struct statfs st;
    if (statfs(path, &st) != 0) return -1;
    return st.f_type == 0xcafe4a11 ? 1 : 0;
}

/// setns(2) for any namespace type (the bpfman-ns helper enters mount namespaces with it).
#define CBPF_CLONE_NEWNS 0x00020000
static inline int cbpf_setns(int fd, int nstype) { return (int)syscall(__NR_setns, fd, nstype); }
// ---- end engine helpers ----

// ---- dispatcher helpers (BpfmanEngine/Dispatch) ----
#include <sys/ioctl.h>
/// setns(2) into a network namespace (CLONE_NEWNET = 0x40000000) for the calling thread only.
/// Returns 0, or -1 with errno set. Glibc's setns needs _GNU_SOURCE, hence the raw syscall.
static inline int cbpf_setns_net(int fd) {
    return (int)syscall(__NR_setns, fd, 0x40000000);
}
/// The namespace type of a namespace file (ioctl NS_GET_NSTYPE), or -1 with errno set.
static inline int cbpf_ns_type(int fd) {
    return ioctl(fd, 0xb703);
}
/// 1 when `type` (from cbpf_ns_type) is a network namespace.
static inline int cbpf_ns_is_net(int type) { return type == 0x40000000; }
// ---- end dispatcher helpers ----


#endif
