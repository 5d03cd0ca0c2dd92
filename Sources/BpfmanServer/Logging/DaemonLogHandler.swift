internal import Glibc
package import Logging
internal import Synchronization

/// The daemon's log handler: one line per record on stderr, as text or as a JSON object (SPEC §1.8, §1.10).
///
/// Text: `2026-11-21T11:43:03.123Z INFO bpfman: loaded program program_id=42`.
/// JSON: `{"timestamp":"...","level":"info","target":"bpfman","message":"loaded program","program_id":"42"}`.
/// Writes go through one process-wide lock so lines from concurrent tasks never interleave.
package struct DaemonLogHandler: LogHandler {
    package enum Format: Sendable {
        case text, json
    }

    package var logLevel: Logger.Level
    package var metadata: Logger.Metadata = [:]
    package var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let format: Format
    private let sink: LogSink

    /// - Parameters:
    ///   - label: the logger's label, printed as the record's target.
    ///   - level: the lowest level written.
    ///   - format: text or JSON lines.
    ///   - sink: where lines go; standard error unless a test captures them.
    package init(label: String, level: Logger.Level, format: Format, sink: LogSink = .standardError) {
        self.label = label
        self.logLevel = level
        self.format = format
        self.sink = sink
    }

    package subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    package func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        let line: String
        switch format {
        case .text: line = textLine(event.level, "\(event.message)", merged)
        case .json: line = jsonLine(event.level, "\(event.message)", merged)
        }
        sink.write(line + "\n")
    }

    private func textLine(_ level: Logger.Level, _ message: String, _ metadata: Logger.Metadata) -> String {
        var line = "\(Self.timestamp()) \(level.displayName) \(label): \(message)"
        for key in metadata.keys.sorted() {
            line += " \(key)=\(metadata[key]!)"
        }
        return line
    }

    private func jsonLine(_ level: Logger.Level, _ message: String, _ metadata: Logger.Metadata) -> String {
        var line = "{\"timestamp\":\"\(Self.timestamp())\",\"level\":\"\(level.rawValue)\""
        line += ",\"target\":\(jsonString(label)),\"message\":\(jsonString(message))"
        for key in metadata.keys.sorted() {
            // A metadata key named like one of the line's own fields would make the object's keys ambiguous.
            let name = Self.lineFields.contains(key) ? "metadata." + key : key
            line += ",\(jsonString(name)):\(jsonString("\(metadata[key]!)"))"
        }
        return line + "}"
    }

    /// The keys every JSON line has before its metadata.
    private static let lineFields: Set<String> = ["timestamp", "level", "target", "message"]

    /// UTC wall-clock time with milliseconds, RFC 3339.
    private static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var parts = tm()
        var seconds = now.tv_sec
        gmtime_r(&seconds, &parts)
        func pad(_ v: Int32, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2))."
            + "\(pad(Int32(now.tv_nsec / 1_000_000), 3))Z"
    }
}

/// Escapes `s` as a JSON string literal.
func jsonString(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case _ where scalar.value < 0x20:
            let hex = String(scalar.value, radix: 16)
            out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}

extension Logger.Level {
    fileprivate var displayName: String {
        switch self {
        case .trace: "TRACE"
        case .debug: "DEBUG"
        case .info: "INFO"
        case .notice: "NOTICE"
        case .warning: "WARN"
        case .error: "ERROR"
        case .critical: "CRITICAL"
        }
    }
}

/// Where log lines go. Lines are written whole under one lock.
package final class LogSink: Sendable {
    private let fd: Int32
    private let capturing: Bool
    /// Serialises writes; for a capturing sink it also holds the lines.
    private let state = Mutex<[String]>([])

    private init(fd: Int32, capturing: Bool) {
        self.fd = fd
        self.capturing = capturing
    }

    /// Standard error, shared by every handler of the process.
    package static let standardError = LogSink(fd: 2, capturing: false)

    /// A sink that keeps lines in memory, for tests.
    package static func capturing() -> LogSink { LogSink(fd: -1, capturing: true) }

    /// The lines written so far (capturing sinks only).
    package var lines: [String] { state.withLock { $0 } }

    func write(_ line: String) {
        state.withLock { lines in
            if capturing {
                lines.append(line)
                return
            }
            var bytes = Array(line.utf8)
            var offset = 0
            while offset < bytes.count {
                let n = bytes.withUnsafeMutableBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return }  // stderr is gone; dropping the line is all we can do
                offset += n
            }
        }
    }
}

extension DaemonConfig.LogLevel {
    /// The swift-log level for this configured level.
    package var loggerLevel: Logger.Level {
        switch self {
        case .error: .error
        case .warn: .warning
        case .info: .info
        case .debug: .debug
        case .trace: .trace
        }
    }
}
