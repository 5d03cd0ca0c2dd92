internal import CBPF
internal import Logging
internal import Synchronization

/// Forwards libbpf's diagnostics to a `Logger` (STYLE convention 13).
///
/// libbpf's print callback is process-global and receives a `va_list`; it is installed once, the first time
/// an `Engine` starts, and formats into a stack buffer with `vsnprintf` (through `cbpf_vformat`).
package enum LibbpfLog {
    private static let logger = Mutex<Logger?>(nil)

    /// Installs the callback (idempotent) and makes `logger` the destination.
    static func install(_ logger: Logger) {
        let first = self.logger.withLock { current -> Bool in
            defer { current = logger }
            return current == nil
        }
        if first { _ = libbpf_set_print(libbpfPrint) }
    }

    fileprivate static func emit(level: libbpf_print_level, message: String) {
        guard let logger = logger.withLock({ $0 }) else { return }
        switch level {
        case LIBBPF_WARN: logger.warning("\(message)", metadata: ["source": "libbpf"])
        case LIBBPF_INFO: logger.debug("\(message)", metadata: ["source": "libbpf"])
        default: logger.trace("\(message)", metadata: ["source": "libbpf"])
        }
    }
}

/// The C callback: formats libbpf's message and hands it to `LibbpfLog`.
private func libbpfPrint(
    _ level: libbpf_print_level, _ format: UnsafePointer<CChar>?, _ args: CVaListPointer?
) -> Int32 {
    guard let format, let args else { return 0 }
    var buffer = [CChar](repeating: 0, count: 1024)
    let written = buffer.withUnsafeMutableBufferPointer { cbpf_vformat($0.baseAddress, $0.count, format, args) }
    var message = String(cString: buffer)
    while message.last == "\n" { message.removeLast() }
    LibbpfLog.emit(level: level, message: message)
    return written
}
