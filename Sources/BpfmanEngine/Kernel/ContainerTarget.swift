internal import Glibc
package import SystemCalls

/// Opens a uprobe target inside a container's mount namespace through the single-threaded `bpfman-ns`
/// helper (SPEC §4.14): `setns(CLONE_NEWNS)` is impossible in this multi-threaded process.
package enum ContainerTarget {
    /// The resolved path (as seen in the container) and an fd of the file, received over SCM_RIGHTS.
    package struct Opened: ~Copyable {
        package var path: String
        package var fd: OwnedFD
    }

    /// Runs `bpfman-ns open-target --container-pid <c> --target <t> [--pid <p>] --sock-fd 3`, waits at most
    /// 10 s, and returns what it sent.
    /// - Throws: INTERNAL `unable to attach uprobe in container with pid <c>: <reason>`.
    package static func open(
        containerPid: Int32,
        target: String,
        pid: Int32,
        helper: String
    ) throws(EngineError)
        -> Opened
    {
        func failure(_ reason: String) -> EngineError {
            .internal("unable to attach uprobe in container with pid \(containerPid): \(reason)")
        }
        var pair: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
            throw failure("socketpair: \(Errno.current)")
        }
        let ours = OwnedFD(taking: pair[0])
        let theirs = OwnedFD(taking: pair[1])
        // stderr of the helper comes back through a pipe for the error message.
        var errorPipe: [Int32] = [-1, -1]
        guard pipe(&errorPipe) == 0 else { throw failure("pipe: \(Errno.current)") }
        let errorRead = OwnedFD(taking: errorPipe[0])
        let errorWrite = OwnedFD(taking: errorPipe[1])
        _ = fcntl(errorRead.rawValue, F_SETFD, FD_CLOEXEC)
        _ = fcntl(errorWrite.rawValue, F_SETFD, FD_CLOEXEC)

        var arguments = ["bpfman-ns", "open-target", "--container-pid", "\(containerPid)", "--target", target]
        if pid > 0 { arguments += ["--pid", "\(pid)"] }
        arguments += ["--sock-fd", "3"]
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, theirs.rawValue, 3)
        posix_spawn_file_actions_adddup2(&actions, errorWrite.rawValue, 2)
        var child: pid_t = 0
        let argv = arguments.map { strdup($0) } + [nil]
        defer { for argument in argv { free(argument) } }
        let rc = posix_spawn(&child, helper, &actions, nil, argv, environ)
        guard rc == 0 else { throw failure("cannot run \(helper): \(Errno(rawValue: rc))") }
        _ = consume theirs
        _ = consume errorWrite

        // Wait for the message (10 s), then reap the helper.
        var poll = pollfd(fd: ours.rawValue, events: Int16(POLLIN), revents: 0)
        let ready = Glibc.poll(&poll, 1, 10_000)
        if ready <= 0 {
            kill(child, SIGKILL)
            var status: Int32 = 0
            waitpid(child, &status, 0)
            throw failure("the helper did not answer within 10 s")
        }
        var message = try? Syscalls.receiveDescriptor(on: ours.rawValue, limit: 4096)
        var status: Int32 = 0
        waitpid(child, &status, 0)
        guard let fd = message?.descriptor.take() else {
            let stderrText = Syscalls.readAll(errorRead.rawValue).map { String(decoding: $0, as: UTF8.self) } ?? ""
            var reason = stderrText.trimmingWhitespace()
            if reason.isEmpty { reason = "the helper exited with status \(status)" }
            throw failure(reason)
        }
        let path = String(decoding: (message?.bytes ?? []).prefix { $0 != 0 }, as: UTF8.self)
        return Opened(path: path, fd: fd)
    }
}
