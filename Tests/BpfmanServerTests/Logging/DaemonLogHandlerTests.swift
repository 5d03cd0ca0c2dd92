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

    @Test func configuredLevelsMapOntoSwiftLog() {
        #expect(DaemonConfig.LogLevel.warn.loggerLevel == .warning)
        #expect(DaemonConfig.LogLevel.trace.loggerLevel == .trace)
    }
}
