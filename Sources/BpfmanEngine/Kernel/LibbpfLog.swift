internal import CBPF
internal import Logging
internal import Synchronization

/// Forwards libbpf's diagnostics to a `Logger` (STYLE convention 13).
///
/// libbpf's print callback is process-global and receives a `va_list`; it is installed once, the first time
/// an `Engine` starts. libbpf prints dozens of debug lines per object opened and loaded, so the callback first
/// compares the line's level with the destination logger's and returns at once when it would be dropped; only
/// lines that will be logged are formatted (`vsnprintf`, through `cbpf_vformat`).
package enum LibbpfLog {
    private static let logger = Mutex<Logger?>(nil)
    /// The most verbose libbpf level the destination logs (`LIBBPF_WARN` 0, `INFO` 1, `DEBUG` 2; -1 none),
    /// read by the callback without the lock.
    private static let mostVerbose = Atomic<Int>(-1)

    /// Installs the callback (idempotent) and makes `logger` the destination.
    static func install(_ logger: Logger) {
        let first = self.logger.withLock { current -> Bool in
            defer {
                current = logger
                let logged = [LIBBPF_WARN, LIBBPF_INFO, LIBBPF_DEBUG].filter { level($0) >= logger.logLevel }
                mostVerbose.store(logged.map { Int($0.rawValue) }.max() ?? -1, ordering: .relaxed)
            }
            return current == nil
        }
        if first { _ = libbpf_set_print(libbpfPrint) }
    }

    /// The logger level a libbpf level is logged at.
    fileprivate static func level(_ level: libbpf_print_level) -> Logger.Level {
        switch level {
        case LIBBPF_WARN: .warning
        case LIBBPF_INFO: .debug
        default: .trace
        }
    }

    /// Whether a line of libbpf `level` would reach the destination: one atomic load and a comparison.
    fileprivate static func wants(_ level: libbpf_print_level) -> Bool {
        Int(level.rawValue) <= mostVerbose.load(ordering: .relaxed)
    }

    fileprivate static func emit(level: libbpf_print_level, message: String) {
        guard let logger = logger.withLock({ $0 }) else { return }
        logger.log(level: self.level(level), "\(message)", metadata: ["source": "libbpf"])
    }
}

/// The C callback: formats libbpf's message and hands it to `LibbpfLog`.
private func libbpfPrint(
    _ level: libbpf_print_level,
    _ format: UnsafePointer<CChar>?,
    _ args: CVaListPointer?
) -> Int32 {
    guard let format, let args, LibbpfLog.wants(level) else { return 0 }
    let (written, formatted) = withUnsafeTemporaryAllocation(of: CChar.self, capacity: 1024) { buffer in
        let written = cbpf_vformat(buffer.baseAddress, buffer.count, format, args)
        return (written, String(cString: buffer.baseAddress!))
    }
    var message = formatted
    while message.last == "\n" { message.removeLast() }
    LibbpfLog.emit(level: level, message: message)
    return written
}
