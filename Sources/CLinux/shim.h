// Linux calls that Swift's Glibc module does not declare (they need _GNU_SOURCE), as `clinux_` helpers.
#ifndef CLINUX_SHIM_H
#define CLINUX_SHIM_H

#include <linux/fs.h>
#include <sys/prctl.h>

// pipe2 without fcntl.h (see clinux_rename_exchange); 02000000 is O_CLOEXEC.
extern int pipe2(int fds[2], int flags);
#include <sys/syscall.h>
#include <unistd.h>

/// Swaps two paths atomically (renameat2 with RENAME_EXCHANGE): readers see one or the other, never neither.
static inline int clinux_rename_exchange(const char *first, const char *second) {
    // AT_FDCWD (-100) is spelled out: fcntl.h would make this module a second owner of struct stat.
    return (int)syscall(SYS_renameat2, -100, first, -100, second, RENAME_EXCHANGE);
}

/// pipe2(fds, O_CLOEXEC): a pipe whose ends no other spawned process inherits.
static inline int clinux_pipe_cloexec(int fds[2]) { return pipe2(fds, 02000000); }

/// prctl(PR_SET_NO_NEW_PRIVS, 1): no exec of this process or its children can gain privileges again.
static inline int clinux_set_no_new_privs(void) { return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); }

#endif
