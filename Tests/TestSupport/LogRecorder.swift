public import Logging
import Synchronization

/// Log records kept in memory, with their metadata as given, so a test can check what was (or must never be)
/// logged.
public final class LogRecorder: Sendable {
    public struct Record: Sendable {
        public var level: Logger.Level
        public var message: String
        public var metadata: Logger.Metadata
    }

    private let storage = Mutex<[Record]>([])

    public init() {}

    public var records: [Record] { storage.withLock { $0 } }

    /// Each record as one line: level, message and the sorted metadata.
    public var all: [String] {
        records.map { record in
            "\(record.level) \(record.message) \(record.metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" })"
        }
    }

    /// A logger at trace level writing here.
    public func makeLogger(label: String = "test") -> Logger {
        Logger(label: label) { _ in RecordingLogHandler(recorder: self) }
    }

    fileprivate func append(_ record: Record) { storage.withLock { $0.append(record) } }
}

private struct RecordingLogHandler: LogHandler {
    let recorder: LogRecorder
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        recorder.append(LogRecorder.Record(level: event.level, message: "\(event.message)", metadata: merged))
    }
}
