internal import CBPF
internal import Glibc

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
        return try withoutActuallyEscaping(body) { (escapable) throws(EngineError) -> R in
            let box = NamespaceThreadBox<R>(body: escapable, path: path)
            let context = Unmanaged.passRetained(box).toOpaque()
            var thread = pthread_t()
            let rc = pthread_create(&thread, nil, namespaceThreadEntry, context)
            guard rc == 0 else {
                Unmanaged<NamespaceThreadBox<R>>.fromOpaque(context).release()
                throw .internal("cannot start a namespace thread: \(Errno(rawValue: rc))")
            }
            pthread_join(thread, nil)
            Unmanaged<NamespaceThreadBox<R>>.fromOpaque(context).release()
            if let setnsError = box.setnsError { throw notANamespace(path, setnsError.description) }
            switch box.result {
            case .success(let value)?: return value
            case .failure(let error)?: throw error
            case nil: throw .internal("namespace thread produced no result")
            }
        }
    }
}

/// State handed to the namespace thread: it runs `body` and stores the outcome. The box is retained for the
/// thread's lifetime and only read after `pthread_join`, so no two threads touch it at once.
private final class NamespaceThreadBox<R> {
    let body: () throws(EngineError) -> R
    let path: String
    var result: Result<R, EngineError>?
    var setnsError: Errno?

    init(body: @escaping () throws(EngineError) -> R, path: String) {
        self.body = body
        self.path = path
    }

    func main() {
        let namespaceFD: OwnedFD
        do { namespaceFD = try Syscalls.open(path, O_RDONLY) } catch {
            setnsError = error.errno
            return
        }
        guard cbpf_setns_net(namespaceFD.rawValue) == 0 else {
            setnsError = Errno.current
            return
        }
        // The thread exits right after; its namespace dies with it, so no switch back is needed.
        do throws(EngineError) { result = .success(try body()) } catch { result = .failure(error) }
    }
}

private protocol NamespaceThreadMain: AnyObject { func main() }
extension NamespaceThreadBox: NamespaceThreadMain {}

private func namespaceThreadEntry(_ context: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    guard let context else { return nil }
    let box = Unmanaged<AnyObject>.fromOpaque(context).takeUnretainedValue() as! any NamespaceThreadMain
    box.main()
    return nil
}
