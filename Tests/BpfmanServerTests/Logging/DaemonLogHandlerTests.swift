import Logging
import Testing

@testable import BpfmanServer

@Suite struct DaemonLogHandlerTests {
    @Test func textLinesCarryLevelLabelMessageAndSortedMetadata() {
        let sink = LogSink.capturing()
        var logger = Logger(label: "bpfman") { DaemonLogHandler(label: $0, level: .info, format: .text, sink: sink) }
        logger[metadataKey: "rpc"] = "Load"
        logger.info("loaded program", metadata: ["program_id": "42"])
        logger.debug("not written at info")
        #expect(sink.lines.count == 1)
        let line = sink.lines[0]
        #expect(line.hasSuffix(" INFO bpfman: loaded program program_id=42 rpc=Load\n"), "\(line)")
        #expect(line.wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z .*\n/) != nil, "\(line)")
    }

    @Test func jsonLinesAreOneEscapedObjectEach() {
        let sink = LogSink.capturing()
        let logger = Logger(label: "bpfman") { DaemonLogHandler(label: $0, level: .debug, format: .json, sink: sink) }
        logger.warning("bad \"quote\"\nnext", metadata: ["path": "/tmp/a"])
        #expect(sink.lines.count == 1)
        let line = sink.lines[0]
        #expect(line.hasPrefix("{\"timestamp\":\""))
        #expect(
            line.hasSuffix(
                "\"level\":\"warning\",\"target\":\"bpfman\",\"message\":\"bad \\\"quote\\\"\\nnext\",\"path\":\"/tmp/a\"}\n"
            ),
            "\(line)"
        )
    }

    /// A failed RPC's line carries the status message as metadata; no metadata key may repeat one of the line's
    /// own keys, or a log shipper reading the object keeps one of the two at random.
    @Test func jsonLinesNeverRepeatAKeyWhenMetadataIsNamedLikeALineField() throws {
        let sink = LogSink.capturing()
        let logger = Logger(label: "bpfman") { DaemonLogHandler(label: $0, level: .debug, format: .json, sink: sink) }
        logger.info("rpc failed", metadata: ["message": "program 7 not found", "level": "x", "rpc": "Get"])
        let line = try #require(sink.lines.first)
        #expect(line.ranges(of: "\"message\":").count == 1, "\(line)")
        #expect(line.ranges(of: "\"level\":").count == 1, "\(line)")
        #expect(line.contains("\"message\":\"rpc failed\""), "\(line)")
        #expect(line.contains("\"metadata.level\":\"x\""), "\(line)")
        #expect(line.hasSuffix("\"metadata.message\":\"program 7 not found\",\"rpc\":\"Get\"}\n"), "\(line)")
    }

    @Test func configuredLevelsMapOntoSwiftLog() {
        #expect(DaemonConfig.LogLevel.warn.loggerLevel == .warning)
        #expect(DaemonConfig.LogLevel.trace.loggerLevel == .trace)
    }
}
