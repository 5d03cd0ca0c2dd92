// The TOML reader and the daemon's configuration (bpfman.toml). Input: the file's text.
//
// What must hold: a document that parses prints (as TOML, below) to text that parses to the same document, every
// entry's line lies inside the text, and the daemon's configuration either builds or fails with a ConfigError that
// names the file. Nothing else may happen to a configuration file, however malformed.
internal import FuzzSupport

@testable internal import BpfmanServer

private func quoted(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case _ where scalar.value < 0x20 || scalar.value == 0x7f:
            let hex = String(scalar.value, radix: 16)
            out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}

private func render(_ value: TOMLValue) -> String {
    switch value {
    case .string(let text): return quoted(text)
    case .integer(let number): return String(number)
    case .float(let number):
        if number.isNaN { return "nan" }
        if number.isInfinite { return number < 0 ? "-inf" : "inf" }
        let text = "\(number)"
        return text.contains(".") || text.contains("e") ? text : text + ".0"
    case .boolean(let flag): return flag ? "true" : "false"
    case .array(let values): return "[" + values.map(render).joined(separator: ", ") + "]"
    case .table(let table):
        return "{"
            + table.entries.map { quoted($0.key) + " = " + render($0.value) }
            .joined(separator: ", ") + "}"
    }
}

/// One `key = value` line per top-level entry.
private func render(_ table: TOMLTable) -> String {
    table.entries.map { quoted($0.key) + " = " + render($0.value) + "\n" }.joined()
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    if let document = try? TOMLTable.parse(text) {
        let lines = text.utf8.count { $0 == UInt8(ascii: "\n") } + 1
        for entry in document.entries {
            require(entry.line >= 1 && entry.line <= lines, "entry \(entry.key) on line \(entry.line) of \(lines)")
        }
        let printed = render(document)
        do {
            let again = try TOMLTable.parse(printed)
            require(render(again) == printed, "TOML round trip changed:\n\(printed)\n---\n\(render(again))")
        } catch {
            fail("printed TOML does not parse: \(error)\n\(printed)")
        }
    }
    do { _ = try DaemonConfig.parse(text, file: "fuzz.toml") } catch {
        require(error.message.hasPrefix("fuzz.toml"), "config error without the file name: \(error.message)")
    }
    return 0
}
