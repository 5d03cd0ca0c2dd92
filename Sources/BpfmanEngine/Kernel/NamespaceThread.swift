internal import CBPF
internal import Glibc
package import SystemCalls

/// Work inside a network namespace on a dedicated, thread-pinned OS thread (SPEC §1.7, §4.16).
///
/// The engine never calls `setns` on a thread of the Swift executor: it starts a fresh pthread, enters the
/// namespace there, runs the body, and joins. The calling thread blocks for the duration.
package enum NamespaceThread {
    /// nsid of the namespace file at `path`: its inode. `nil` path = the daemon's own namespace.
    /// - Throws: INVALID_ARGUMENT `netns "<p>" is not a network namespace: <reason>`.
    package static func nsid(path: String?) throws(EngineError) -> UInt64 {
        guard let path else {
            guard case .success(let st) = Syscalls.stat("/proc/self/ns/net") else {
                throw .internal("cannot stat /proc/self/ns/net")
            }
            return UInt64(st.st_ino)
        }
        guard path.hasPrefix("/") else { throw notANamespace(path, "path is not absolute") }
        switch Syscalls.stat(path) {
        case .success(let st): return UInt64(st.st_ino)
        case .failure(let error): throw notANamespace(path, error.errno.description)
        }
    }

    static func notANamespace(_ path: String, _ reason: String) -> EngineError {
        .invalidArgument("netns \"\(path)\" is not a network namespace: \(reason)")
    }

    /// Runs `body` with the calling context switched to the namespace at `path` (`nil`: the current one,
    /// run inline).
    package static func run<R>(in path: String?, _ body: () throws(EngineError) -> R) throws(EngineError) -> R {
        guard let path else { return try body() }
        var result: Result<R, EngineError>?
        let failure = runOnThread(inNetns: path) { result = Result { () throws(EngineError) -> R in try body() } }
        switch failure {
        case .threadNotStarted(let error)?: throw .internal("cannot start a namespace thread: \(error)")
        case .cannotOpen(let error)?, .cannotEnter(let error)?: throw notANamespace(path, error.description)
        case nil: return try result!.get()
        }
    }

    /// Why `runOnThread` did not run its work.
    package enum EntryFailure: Error {
        case threadNotStarted(Errno)
        case cannotOpen(Errno)
        case cannotEnter(Errno)
    }

    /// Starts a thread that opens the netns file at `path`, enters it with `setns(CLONE_NEWNET)`, runs `work`
    /// and ends (its namespace goes with it: nothing to switch back); waits for it.
    /// - Returns: nil when `work` ran, else why it did not.
    package static func runOnThread(inNetns path: String, _ work: () -> Void) -> EntryFailure? {
        withoutActuallyEscaping(work) { escapable in
            let box = ThreadBox(path: path, work: escapable)
            let context = Unmanaged.passRetained(box).toOpaque()
            var thread = pthread_t()
            let started = pthread_create(
                &thread,
                nil,
                { raw in
                    Unmanaged<ThreadBox>.fromOpaque(raw!).takeRetainedValue().enterAndRun()
                    return nil
                },
                context
            )
            guard started == 0 else {
                Unmanaged<ThreadBox>.fromOpaque(context).release()
                return .threadNotStarted(Errno(rawValue: started))
            }
            pthread_join(thread, nil)
            return box.failure
        }
    }
}

/// Carries the work across `pthread_create`. Only the new thread touches it until `pthread_join` returns,
/// which orders the accesses; hence no lock.
private final class ThreadBox {
    let path: String
    let work: () -> Void
    /// Set when the namespace could not be entered (then `work` did not run).
    var failure: NamespaceThread.EntryFailure?

    init(path: String, work: @escaping () -> Void) {
        self.path = path
        self.work = work
    }

    func enterAndRun() {
        let namespaceFD: OwnedFD
        do { namespaceFD = try Syscalls.open(path, O_RDONLY) } catch {
            failure = .cannotOpen(error.errno)
            return
        }
        guard cbpf_setns_net(namespaceFD.rawValue) == 0 else {
            failure = .cannotEnter(Errno.current)
            return
        }
        work()
    }
}
