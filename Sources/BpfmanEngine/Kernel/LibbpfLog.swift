internal import CBPF
package import Logging
internal import Synchronization

/// Forwards libbpf's diagnostics to a `Logger` (STYLE convention 13).
///
/// libbpf's print callback is process-global and receives a `va_list`; it is installed once, by the first
/// `install` (the daemon's start-up, before its freplace probe, or an `Engine`'s). Until then libbpf prints to
/// stderr itself. libbpf prints dozens of debug lines per object opened and loaded, so the callback first
/// compares the line's level with the destination logger's and returns at once when it would be dropped; only
/// lines that will be logged are formatted (`vsnprintf`, through `cbpf_vformat`).
package enum LibbpfLog {
    private static let logger = Mutex<Logger?>(nil)
    /// The most verbose libbpf level the destination logs (`LIBBPF_WARN` 0, `INFO` 1, `DEBUG` 2; -1 none),
    /// normally and while `quietly` runs, read by the callback without the lock.
    private static let mostVerbose = Atomic<Int>(-1)
    private static let mostVerboseQuietly = Atomic<Int>(-1)
    /// How many `quietly` bodies are running.
    private static let quiet = Atomic<Int>(0)

    /// Installs the callback (idempotent) and makes `logger` the destination.
    package static func install(_ logger: Logger) {
        let first = self.logger.withLock { current -> Bool in
            defer {
                current = logger
                mostVerbose.store(threshold(for: logger, quietly: false), ordering: .relaxed)
                mostVerboseQuietly.store(threshold(for: logger, quietly: true), ordering: .relaxed)
            }
            return current == nil
        }
        if first { _ = libbpf_set_print(libbpfPrint) }
    }

    /// Runs `body` with libbpf's warnings logged at debug level (and its other lines at trace): for work whose
    /// failure is expected and reported by the caller, such as the freplace probe, which fails on every kernel
    /// that refuses freplace. The callback is process-global, so this is meant for start-up, before other
    /// threads use libbpf.
    package static func quietly<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        quiet.add(1, ordering: .relaxed)
        defer { quiet.subtract(1, ordering: .relaxed) }
        return try body()
    }

    private static func threshold(for logger: Logger, quietly: Bool) -> Int {
        let logged = [LIBBPF_WARN, LIBBPF_INFO, LIBBPF_DEBUG].filter { level($0, quietly: quietly) >= logger.logLevel }
        return logged.map { Int($0.rawValue) }.max() ?? -1
    }

    /// The logger level a libbpf level is logged at.
    fileprivate static func level(_ level: libbpf_print_level, quietly: Bool) -> Logger.Level {
        switch level {
        case LIBBPF_WARN: quietly ? .debug : .warning
        case LIBBPF_INFO: quietly ? .trace : .debug
        default: .trace
        }
    }

    fileprivate static var isQuiet: Bool { quiet.load(ordering: .relaxed) > 0 }

    /// Whether a line of libbpf `level` would reach the destination: an atomic load and a comparison.
    fileprivate static func wants(_ level: libbpf_print_level, quietly: Bool) -> Bool {
        let threshold = quietly ? mostVerboseQuietly.load(ordering: .relaxed) : mostVerbose.load(ordering: .relaxed)
        return Int(level.rawValue) <= threshold
    }

    fileprivate static func emit(level: libbpf_print_level, quietly: Bool, message: String) {
        guard let logger = logger.withLock({ $0 }) else { return }
        logger.log(level: self.level(level, quietly: quietly), "\(message)", metadata: ["source": "libbpf"])
    }
}

/// The C callback: formats libbpf's message and hands it to `LibbpfLog`.
private func libbpfPrint(
    _ level: libbpf_print_level,
    _ format: UnsafePointer<CChar>?,
    _ args: CVaListPointer?
) -> Int32 {
    let quietly = LibbpfLog.isQuiet
    guard let format, let args, LibbpfLog.wants(level, quietly: quietly) else { return 0 }
    let (written, formatted) = withUnsafeTemporaryAllocation(of: CChar.self, capacity: 1024) { buffer in
        let written = cbpf_vformat(buffer.baseAddress, buffer.count, format, args)
        return (written, String(cString: buffer.baseAddress!))
    }
    var message = formatted
    while message.last == "\n" { message.removeLast() }
    LibbpfLog.emit(level: level, quietly: quietly, message: message)
    return written
}
