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

/// Opens an object file with default options. Returns NULL and sets errno on failure.
static inline struct bpf_object *cbpf_object_open(const char *path) {
    struct bpf_object *obj = bpf_object__open_file(path, NULL);
    long err = libbpf_get_error(obj);
    if (err) {
        errno = (int)-err;
        return NULL;
    }
    return obj;
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
