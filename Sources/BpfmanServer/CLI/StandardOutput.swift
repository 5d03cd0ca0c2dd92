internal import Glibc
internal import Synchronization

/// The CLI's standard output: text is buffered and written with write(2), so that a failed write (`> /dev/full`,
/// a full disk) is seen and the command exits 1 instead of losing its output silently (SPEC §9).
enum StandardOutput {
    private struct State {
        var buffer: [UInt8] = []
        /// The first write error's errno.
        var failure: Int32?
    }

    private static let state = Mutex(State())
    private static let flushThreshold = 64 * 1024

    /// Appends `text` and a newline; writes out once a good amount is pending.
    static func line(_ text: String) {
        state.withLock { s in
            s.buffer.append(contentsOf: text.utf8)
            s.buffer.append(0x0A)
            if s.buffer.count >= flushThreshold { writeOut(&s) }
        }
    }

    /// Writes everything pending; the errno of the first failed write, now or earlier, else nil.
    static func flush() -> Int32? {
        state.withLock { s in
            writeOut(&s)
            return s.failure
        }
    }

    private static func writeOut(_ s: inout State) {
        defer { s.buffer.removeAll(keepingCapacity: true) }
        guard s.failure == nil else { return }
        var offset = 0
        while offset < s.buffer.count {
            let written = s.buffer.withUnsafeBytes { Glibc.write(1, $0.baseAddress! + offset, $0.count - offset) }
            if written < 0 {
                if errno == EINTR { continue }
                s.failure = errno
                return
            }
            offset += written
        }
    }
}

/// Prints one line of command output (see `StandardOutput`).
func emit(_ text: String) {
    StandardOutput.line(text)
}
