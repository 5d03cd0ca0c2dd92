// Linux calls that Swift's Glibc module does not declare (they need _GNU_SOURCE), as `clinux_` helpers.
#ifndef CLINUX_SHIM_H
#define CLINUX_SHIM_H

#include <linux/fs.h>
#include <sys/syscall.h>
#include <unistd.h>

/// Swaps two paths atomically (renameat2 with RENAME_EXCHANGE): readers see one or the other, never neither.
static inline int clinux_rename_exchange(const char *first, const char *second) {
    // AT_FDCWD (-100) is spelled out: fcntl.h would make this module a second owner of struct stat.
    return (int)syscall(SYS_renameat2, -100, first, -100, second, RENAME_EXCHANGE);
}

#endif
