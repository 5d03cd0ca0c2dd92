/// A small TOML reader: enough of TOML 1.0 for bpfman.toml and the files the Kubernetes operator ships.
///
/// Supported: comments, `[table]` and `[[array.of.tables]]` headers, bare / quoted / dotted keys, basic and
/// literal strings (single-line and multi-line), integers (decimal, hex, octal, binary, underscores),
/// floats, booleans, arrays and inline tables. Dates are not supported and are reported as errors.
/// Every value remembers the line it was written on, so configuration errors can name it.
package enum TOMLValue: Equatable, Sendable {
    case string(String)
    case integer(Int64)
    case float(Double)
    case boolean(Bool)
    case array([TOMLValue])
    case table(TOMLTable)

    /// The TOML type name, for error messages.
    package var typeName: String {
        switch self {
        case .string: "string"
        case .integer: "integer"
        case .float: "float"
        case .boolean: "boolean"
        case .array: "array"
        case .table: "table"
        }
    }
}

/// A TOML table: keys in the order they were written, each with its value and source line.
package struct TOMLTable: Equatable, Sendable {
    package struct Entry: Equatable, Sendable {
        package var key: String
        package var value: TOMLValue
        package var line: Int
    }

    package private(set) var entries: [Entry] = []
    /// Tables created implicitly by a dotted header (`[a.b]` creates `a`) may still be defined explicitly once.
    fileprivate var implicit = false
    /// Tables defined by a header or inline are closed to a second header of the same name.
    fileprivate var defined = false

    package init() {}

    /// Arrays and inline tables nest at most this deep, and a key (or a table header) has at most `maxKeyParts`
    /// dotted parts, each a table level: parsing, printing and freeing a value recurse once per level, and a
    /// configuration file is not trusted to end before the stack does (fuzz-config: 6,700 `[`s overflowed it; a key
    /// of 20,000 parts took 2 GiB). At most 16 + 32 x 16 levels of tables and arrays in all; bpfman's own keys have 3.
    package static let maxNestingDepth = 32
    package static let maxKeyParts = 16

    package subscript(key: String) -> TOMLValue? {
        entries.first { $0.key == key }?.value
    }

    /// The line `key` was written on.
    package func line(of key: String) -> Int? {
        entries.first { $0.key == key }?.line
    }

    fileprivate func index(of key: String) -> Int? {
        entries.firstIndex { $0.key == key }
    }

    fileprivate mutating func append(_ key: String, _ value: TOMLValue, line: Int) {
        entries.append(Entry(key: key, value: value, line: line))
    }

    fileprivate mutating func setValue(_ value: TOMLValue, at index: Int) {
        entries[index].value = value
    }
}

/// A TOML syntax error, with the 1-based line it was found on.
package struct TOMLError: Error, Equatable, CustomStringConvertible {
    package var line: Int
    package var reason: String

    package var description: String { "line \(line): \(reason)" }
}

extension TOMLTable {
    /// Parses a whole TOML document.
    /// - Throws: `TOMLError` naming the line of the first problem.
    package static func parse(_ text: String) throws(TOMLError) -> TOMLTable {
        var parser = TOMLParser(Array(text.utf8))
        return try parser.parseDocument()
    }
}

/// Recursive-descent parser over the document's UTF-8 bytes.
private struct TOMLParser {
    private let bytes: [UInt8]
    private var position = 0
    private var line = 1
    private var root = TOMLTable()
    /// The path of the table that key/value lines currently go into (set by the last header).
    private var current: [String] = []
    /// How many arrays and inline tables enclose the value being parsed.
    private var depth = 0

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    mutating func parseDocument() throws(TOMLError) -> TOMLTable {
        while true {
            skipWhitespaceAndComments(newlines: true)
            guard let byte = peek() else { break }
            if byte == UInt8(ascii: "[") {
                try parseHeader()
            } else {
                let keyLine = line
                let key = try parseKey()
                skipInlineWhitespace()
                try expect(UInt8(ascii: "="))
                skipInlineWhitespace()
                let value = try parseValue()
                try insert(value, at: current + key, line: keyLine)
            }
            try endOfLine()
        }
        return root
    }

    // MARK: Headers

    private mutating func parseHeader() throws(TOMLError) {
        let headerLine = line
        advance()  // [
        let isArray = peek() == UInt8(ascii: "[")
        if isArray { advance() }
        skipInlineWhitespace()
        let path = try parseKey()
        skipInlineWhitespace()
        try expect(UInt8(ascii: "]"))
        if isArray { try expect(UInt8(ascii: "]")) }
        if isArray {
            try appendArrayTable(path, line: headerLine)
        } else {
            try defineTable(path, line: headerLine)
        }
        current = path
    }

    private mutating func defineTable(_ path: [String], line headerLine: Int) throws(TOMLError) {
        try Self.withTable(&root, path: path, line: headerLine) { (table: inout TOMLTable) throws(TOMLError) in
            if table.defined && !table.implicit {
                throw TOMLError(line: headerLine, reason: "table [\(path.joined(separator: "."))] is defined twice")
            }
            table.defined = true
            table.implicit = false
        }
    }

    private mutating func appendArrayTable(_ path: [String], line headerLine: Int) throws(TOMLError) {
        let parent = Array(path.dropLast())
        let name = path[path.count - 1]
        try Self.withTable(&root, path: parent, line: headerLine) {
            (table: inout TOMLTable) throws(TOMLError) in
            var fresh = TOMLTable()
            fresh.defined = true
            if let i = table.index(of: name) {
                guard case .array(var items) = table.entries[i].value,
                    items.allSatisfy({ if case .table = $0 { true } else { false } })
                else {
                    throw TOMLError(line: headerLine, reason: "\(name) is not an array of tables")
                }
                items.append(.table(fresh))
                table.setValue(.array(items), at: i)
            } else {
                table.append(name, .array([.table(fresh)]), line: headerLine)
            }
        }
    }

    /// Walks (creating as needed) to the table at `path` and lets `body` modify it. A step onto an array of
    /// tables continues into its last element, as TOML requires for `[a.b]` after `[[a]]`.
    private static func withTable(
        _ table: inout TOMLTable,
        path: [String],
        line: Int,
        _ body: (inout TOMLTable) throws(TOMLError) -> Void
    ) throws(TOMLError) {
        guard let first = path.first else {
            try body(&table)
            return
        }
        let rest = Array(path.dropFirst())
        if let i = table.index(of: first) {
            switch table.entries[i].value {
            case .table(var child):
                try withTable(&child, path: rest, line: line, body)
                table.setValue(.table(child), at: i)
            case .array(var items):
                guard case .table(var last)? = items.last else {
                    throw TOMLError(line: line, reason: "key \(first) already holds a value that is not a table")
                }
                try withTable(&last, path: rest, line: line, body)
                items[items.count - 1] = .table(last)
                table.setValue(.array(items), at: i)
            default:
                throw TOMLError(line: line, reason: "key \(first) already holds a \(table.entries[i].value.typeName)")
            }
        } else {
            var child = TOMLTable()
            child.implicit = true
            child.defined = true
            try withTable(&child, path: rest, line: line, body)
            table.append(first, .table(child), line: line)
        }
    }

    private mutating func insert(_ value: TOMLValue, at path: [String], line keyLine: Int) throws(TOMLError) {
        let parent = Array(path.dropLast())
        let name = path[path.count - 1]
        try Self.withTable(&root, path: parent, line: keyLine) { (table: inout TOMLTable) throws(TOMLError) in
            if table.index(of: name) != nil {
                throw TOMLError(line: keyLine, reason: "key \(path.joined(separator: ".")) is defined twice")
            }
            table.append(name, value, line: keyLine)
        }
    }

    // MARK: Keys

    private mutating func parseKey() throws(TOMLError) -> [String] {
        var parts: [String] = []
        while true {
            skipInlineWhitespace()
            guard let byte = peek() else { throw error("expected a key") }
            if byte == UInt8(ascii: "\"") {
                parts.append(try parseBasicString())
            } else if byte == UInt8(ascii: "'") {
                parts.append(try parseLiteralString())
            } else {
                let start = position
                while let b = peek(), Self.isBareKeyByte(b) { advance() }
                guard position > start else { throw error("expected a key") }
                parts.append(String(decoding: bytes[start..<position], as: UTF8.self))
            }
            skipInlineWhitespace()
            guard peek() == UInt8(ascii: ".") else { return parts }
            guard parts.count < TOMLTable.maxKeyParts else {
                throw error("a key of more than \(TOMLTable.maxKeyParts) dotted parts")
            }
            advance()
        }
    }

    private static func isBareKeyByte(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x5F || b == 0x2D
    }

    // MARK: Values

    private mutating func parseValue() throws(TOMLError) -> TOMLValue {
        guard let byte = peek() else { throw error("expected a value") }
        let opensLevel = byte == UInt8(ascii: "[") || byte == UInt8(ascii: "{")
        if opensLevel {
            guard depth < TOMLTable.maxNestingDepth else {
                throw error("arrays and inline tables nested deeper than \(TOMLTable.maxNestingDepth)")
            }
            depth += 1
        }
        defer { if opensLevel { depth -= 1 } }
        switch byte {
        case UInt8(ascii: "\""): return .string(try parseBasicString())
        case UInt8(ascii: "'"): return .string(try parseLiteralString())
        case UInt8(ascii: "["): return try parseArray()
        case UInt8(ascii: "{"): return try parseInlineTable()
        case UInt8(ascii: "t"), UInt8(ascii: "f"):
            if consume("true") { return .boolean(true) }
            if consume("false") { return .boolean(false) }
            throw error("expected a value")
        default:
            return try parseNumber()
        }
    }

    private mutating func parseArray() throws(TOMLError) -> TOMLValue {
        advance()  // [
        var items: [TOMLValue] = []
        while true {
            skipWhitespaceAndComments(newlines: true)
            if peek() == UInt8(ascii: "]") {
                advance()
                return .array(items)
            }
            items.append(try parseValue())
            skipWhitespaceAndComments(newlines: true)
            if peek() == UInt8(ascii: ",") {
                advance()
            } else if peek() == UInt8(ascii: "]") {
                advance()
                return .array(items)
            } else {
                throw error("expected , or ] in array")
            }
        }
    }

    private mutating func parseInlineTable() throws(TOMLError) -> TOMLValue {
        advance()  // {
        var table = TOMLTable()
        table.defined = true
        skipInlineWhitespace()
        if peek() == UInt8(ascii: "}") {
            advance()
            return .table(table)
        }
        while true {
            skipInlineWhitespace()
            let keyLine = line
            let key = try parseKey()
            skipInlineWhitespace()
            try expect(UInt8(ascii: "="))
            skipInlineWhitespace()
            let value = try parseValue()
            let parent = Array(key.dropLast())
            let name = key[key.count - 1]
            try Self.withTable(&table, path: parent, line: keyLine) { (t: inout TOMLTable) throws(TOMLError) in
                if t.index(of: name) != nil {
                    throw TOMLError(line: keyLine, reason: "key \(key.joined(separator: ".")) is defined twice")
                }
                t.append(name, value, line: keyLine)
            }
            skipInlineWhitespace()
            if peek() == UInt8(ascii: ",") {
                advance()
            } else if peek() == UInt8(ascii: "}") {
                advance()
                return .table(table)
            } else {
                throw error("expected , or } in inline table")
            }
        }
    }

    private mutating func parseNumber() throws(TOMLError) -> TOMLValue {
        let start = position
        while let b = peek(), !Self.isValueTerminator(b) { advance() }
        let raw = String(decoding: bytes[start..<position], as: UTF8.self)
        guard !raw.isEmpty else { throw error("expected a value") }
        switch raw {
        case "inf", "+inf": return .float(.infinity)
        case "-inf": return .float(-.infinity)
        case "nan", "+nan", "-nan": return .float(.nan)
        default: break
        }
        if raw.contains("__") || raw.hasPrefix("_") || raw.hasSuffix("_") {
            throw error("malformed number \(raw)")
        }
        let digits = raw.replacingUnderscores()
        for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] where digits.hasPrefix(prefix) {
            guard let v = Int64(digits.dropFirst(2), radix: radix) else { throw error("malformed number \(raw)") }
            return .integer(v)
        }
        if let v = Int64(digits) {
            let unsigned = digits.hasPrefix("+") || digits.hasPrefix("-") ? String(digits.dropFirst()) : digits
            if unsigned.count > 1 && unsigned.hasPrefix("0") { throw error("leading zeros in \(raw)") }
            return .integer(v)
        }
        if digits.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }), let v = Double(digits) {
            return .float(v)
        }
        if raw.contains("-") || raw.contains(":") {
            throw error("dates and times are not supported (\(raw))")
        }
        throw error("unexpected value \(raw)")
    }

    private static func isValueTerminator(_ b: UInt8) -> Bool {
        b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D || b == UInt8(ascii: ",") || b == UInt8(ascii: "]")
            || b == UInt8(ascii: "}") || b == UInt8(ascii: "#")
    }

    // MARK: Strings

    private mutating func parseBasicString() throws(TOMLError) -> String {
        if consume("\"\"\"") { return try parseMultilineBasicString() }
        advance()  // "
        var out: [UInt8] = []
        while true {
            guard let b = peek() else { throw error("unterminated string") }
            advance()
            switch b {
            case UInt8(ascii: "\""): return String(decoding: out, as: UTF8.self)
            case UInt8(ascii: "\\"): try parseEscape(into: &out)
            case 0x0A: throw error("newline in a single-line string")
            default: out.append(b)
            }
        }
    }

    private mutating func parseMultilineBasicString() throws(TOMLError) -> String {
        if peek() == 0x0A { newline() }  // a newline right after the opening quotes is trimmed
        var out: [UInt8] = []
        while true {
            guard let b = peek() else { throw error("unterminated string") }
            if b == UInt8(ascii: "\"") {
                // A run of three or more quotes closes the string; up to two before the closing three are content.
                let run = quoteRun(UInt8(ascii: "\""))
                position += run
                if run >= 3 {
                    guard run <= 5 else { throw error("too many quotes") }
                    out.append(contentsOf: repeatElement(UInt8(ascii: "\""), count: run - 3))
                    return String(decoding: out, as: UTF8.self)
                }
                out.append(contentsOf: repeatElement(UInt8(ascii: "\""), count: run))
            } else if b == UInt8(ascii: "\\") {
                advance()
                // A line-ending backslash trims the newline and the whitespace that follows.
                var lookahead = position
                while lookahead < bytes.count, bytes[lookahead] == 0x20 || bytes[lookahead] == 0x09 { lookahead += 1 }
                if lookahead < bytes.count, bytes[lookahead] == 0x0A {
                    position = lookahead
                    skipWhitespaceAndComments(newlines: true, comments: false)
                    continue
                }
                try parseEscape(into: &out)
            } else if b == 0x0A {
                newline()
                out.append(b)
            } else {
                advance()
                out.append(b)
            }
        }
    }

    private func quoteRun(_ quote: UInt8) -> Int {
        var end = position
        while end < bytes.count, bytes[end] == quote { end += 1 }
        return end - position
    }

    private mutating func parseLiteralString() throws(TOMLError) -> String {
        if consume("'''") {
            if peek() == 0x0A { newline() }
            var out: [UInt8] = []
            while let b = peek() {
                if b == UInt8(ascii: "'") {
                    let run = quoteRun(b)
                    position += run
                    if run >= 3 {
                        guard run <= 5 else { throw error("too many quotes") }
                        out.append(contentsOf: repeatElement(b, count: run - 3))
                        return String(decoding: out, as: UTF8.self)
                    }
                    out.append(contentsOf: repeatElement(b, count: run))
                } else {
                    if b == 0x0A { line += 1 }
                    advance()
                    out.append(b)
                }
            }
            throw error("unterminated string")
        }
        advance()  // '
        let start = position
        while let b = peek() {
            if b == UInt8(ascii: "'") {
                let text = String(decoding: bytes[start..<position], as: UTF8.self)
                advance()
                return text
            }
            if b == 0x0A { break }
            advance()
        }
        throw error("unterminated string")
    }

    private mutating func parseEscape(into out: inout [UInt8]) throws(TOMLError) {
        guard let e = peek() else { throw error("unterminated escape") }
        advance()
        switch e {
        case UInt8(ascii: "b"): out.append(0x08)
        case UInt8(ascii: "t"): out.append(0x09)
        case UInt8(ascii: "n"): out.append(0x0A)
        case UInt8(ascii: "f"): out.append(0x0C)
        case UInt8(ascii: "r"): out.append(0x0D)
        case UInt8(ascii: "\""): out.append(0x22)
        case UInt8(ascii: "\\"): out.append(0x5C)
        case UInt8(ascii: "u"), UInt8(ascii: "U"):
            let count = e == UInt8(ascii: "u") ? 4 : 8
            guard position + count <= bytes.count,
                let scalarValue = UInt32(
                    String(decoding: bytes[position..<position + count], as: UTF8.self),
                    radix: 16
                ),
                let scalar = Unicode.Scalar(scalarValue)
            else { throw error("bad unicode escape") }
            position += count
            out.append(contentsOf: Array(String(Character(scalar)).utf8))
        default:
            throw error("unknown escape \\\(Character(Unicode.Scalar(e)))")
        }
    }

    // MARK: Lexing helpers

    private func peek() -> UInt8? {
        position < bytes.count ? bytes[position] : nil
    }

    private mutating func advance() {
        position += 1
    }

    private mutating func newline() {
        position += 1
        line += 1
    }

    private mutating func consume(_ literal: String) -> Bool {
        let utf8 = Array(literal.utf8)
        guard position + utf8.count <= bytes.count, bytes[position..<position + utf8.count].elementsEqual(utf8) else {
            return false
        }
        position += utf8.count
        return true
    }

    private mutating func expect(_ byte: UInt8) throws(TOMLError) {
        guard peek() == byte else { throw error("expected \(Character(Unicode.Scalar(byte)))") }
        advance()
    }

    private mutating func skipInlineWhitespace() {
        while let b = peek(), b == 0x20 || b == 0x09 { advance() }
    }

    private mutating func skipWhitespaceAndComments(newlines: Bool, comments: Bool = true) {
        while let b = peek() {
            if b == 0x20 || b == 0x09 || b == 0x0D {
                advance()
            } else if b == 0x0A && newlines {
                newline()
            } else if b == UInt8(ascii: "#") && comments {
                while let c = peek(), c != 0x0A { advance() }
            } else {
                return
            }
        }
    }

    /// After a key/value pair or header: only whitespace and a comment may follow on the line.
    private mutating func endOfLine() throws(TOMLError) {
        skipInlineWhitespace()
        if peek() == 0x0D { advance() }
        if peek() == UInt8(ascii: "#") {
            while let c = peek(), c != 0x0A { advance() }
        }
        guard let b = peek() else { return }
        guard b == 0x0A else { throw error("expected the end of the line") }
        newline()
    }

    private func error(_ reason: String) -> TOMLError {
        TOMLError(line: line, reason: reason)
    }
}

extension String {
    fileprivate func replacingUnderscores() -> String {
        String(filter { $0 != "_" })
    }
}
