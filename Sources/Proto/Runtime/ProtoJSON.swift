// The proto3 canonical JSON mapping: a small JSON parser and writer, and the value conversions
// generated code uses (int64 as strings, bytes as base64, enums by name, well-known types).

/// Why a JSON text is not a valid proto3 JSON encoding of the message asked for.
package enum ProtoJSONError: Error, Equatable, Hashable, Sendable, CustomStringConvertible {
    /// The text is not JSON; `offset` is the byte where parsing stopped.
    case syntax(offset: Int, reason: String)
    /// An object key that names no field of the message.
    case unknownField(message: String, name: String)
    /// A value of the wrong JSON kind or out of range for the field.
    case invalidValue(field: String, reason: String)
    /// Objects and arrays nest deeper than `ProtoJSONValue.maxDepth`.
    case depthLimitExceeded

    package var description: String {
        switch self {
        case .syntax(let offset, let reason): "JSON syntax error at byte \(offset): \(reason)"
        case .unknownField(let message, let name): "\(message) has no field named \"\(name)\""
        case .invalidValue(let field, let reason): "invalid value for \(field): \(reason)"
        case .depthLimitExceeded: "JSON nested deeper than \(ProtoJSONValue.maxDepth)"
        }
    }
}

/// A parsed JSON value. Numbers keep their text so 64-bit integers lose nothing.
package indirect enum ProtoJSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(String)
    case string(String)
    case array([ProtoJSONValue])
    case object([Member])

    package struct Member: Sendable, Equatable {
        package var key: String
        package var value: ProtoJSONValue
    }

    package static let maxDepth = 100

    /// Parses one JSON value filling all of `bytes` (whitespace around it allowed).
    package static func parse(_ bytes: [UInt8]) throws(ProtoJSONError) -> ProtoJSONValue {
        var parser = JSONParser(bytes: bytes)
        parser.skipWhitespace()
        let value = try parser.parseValue(depth: 0)
        parser.skipWhitespace()
        guard parser.i == bytes.count else { throw .syntax(offset: parser.i, reason: "trailing characters") }
        return value
    }

    package var isNull: Bool {
        if case .null = self { return true }
        return false
    }
    /// JSON text: compact when `indent` is nil, otherwise one member per line indented by `indent` spaces.
    package func text(indent: Int? = nil) -> String {
        var w = ProtoJSONWriter()
        var out: [UInt8] = []
        write(to: &out, writer: &w, indent: indent, level: 0)
        return String(decoding: out, as: UTF8.self)
    }

    private func write(to out: inout [UInt8], writer w: inout ProtoJSONWriter, indent: Int?, level: Int) {
        func newline(_ level: Int) {
            guard let indent else { return }
            out.append(0x0A)
            out.append(contentsOf: repeatElement(0x20, count: indent * level))
        }
        func quoted(_ s: String) {
            w.bytes = []
            w.appendQuoted(s)
            out.append(contentsOf: w.bytes)
        }
        switch self {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case .number(let t): out.append(contentsOf: t.utf8)
        case .string(let s): quoted(s)
        case .array(let elements):
            out.append(UInt8(ascii: "["))
            for (k, e) in elements.enumerated() {
                if k > 0 { out.append(UInt8(ascii: ",")) }
                newline(level + 1)
                e.write(to: &out, writer: &w, indent: indent, level: level + 1)
            }
            if !elements.isEmpty { newline(level) }
            out.append(UInt8(ascii: "]"))
        case .object(let members):
            out.append(UInt8(ascii: "{"))
            for (k, m) in members.enumerated() {
                if k > 0 { out.append(UInt8(ascii: ",")) }
                newline(level + 1)
                quoted(m.key)
                out.append(UInt8(ascii: ":"))
                if indent != nil { out.append(0x20) }
                m.value.write(to: &out, writer: &w, indent: indent, level: level + 1)
            }
            if !members.isEmpty { newline(level) }
            out.append(UInt8(ascii: "}"))
        }
    }
}

private struct JSONParser {
    let bytes: [UInt8]
    var i = 0

    init(bytes: [UInt8]) { self.bytes = bytes }

    mutating func skipWhitespace() {
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
    }

    func fail(_ reason: String) -> ProtoJSONError { .syntax(offset: i, reason: reason) }

    mutating func expectLiteral(_ text: String) throws(ProtoJSONError) {
        for c in text.utf8 {
            guard i < bytes.count, bytes[i] == c else { throw fail("expected \(text)") }
            i += 1
        }
    }

    mutating func parseValue(depth: Int) throws(ProtoJSONError) -> ProtoJSONValue {
        guard i < bytes.count else { throw fail("unexpected end of input") }
        switch bytes[i] {
        case UInt8(ascii: "{"):
            guard depth < ProtoJSONValue.maxDepth else { throw .depthLimitExceeded }
            i += 1
            var members: [ProtoJSONValue.Member] = []
            skipWhitespace()
            if i < bytes.count, bytes[i] == UInt8(ascii: "}") {
                i += 1
                return .object(members)
            }
            while true {
                skipWhitespace()
                guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
                let key = try parseString()
                skipWhitespace()
                guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw fail("expected ':'") }
                i += 1
                skipWhitespace()
                let value = try parseValue(depth: depth + 1)
                members.append(.init(key: key, value: value))
                skipWhitespace()
                guard i < bytes.count else { throw fail("unterminated object") }
                if bytes[i] == UInt8(ascii: ",") {
                    i += 1
                    continue
                }
                guard bytes[i] == UInt8(ascii: "}") else { throw fail("expected ',' or '}'") }
                i += 1
                return .object(members)
            }
        case UInt8(ascii: "["):
            guard depth < ProtoJSONValue.maxDepth else { throw .depthLimitExceeded }
            i += 1
            var elements: [ProtoJSONValue] = []
            skipWhitespace()
            if i < bytes.count, bytes[i] == UInt8(ascii: "]") {
                i += 1
                return .array(elements)
            }
            while true {
                skipWhitespace()
                elements.append(try parseValue(depth: depth + 1))
                skipWhitespace()
                guard i < bytes.count else { throw fail("unterminated array") }
                if bytes[i] == UInt8(ascii: ",") {
                    i += 1
                    continue
                }
                guard bytes[i] == UInt8(ascii: "]") else { throw fail("expected ',' or ']'") }
                i += 1
                return .array(elements)
            }
        case UInt8(ascii: "\""):
            return .string(try parseString())
        case UInt8(ascii: "t"):
            try expectLiteral("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try expectLiteral("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try expectLiteral("null")
            return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return .number(try parseNumber())
        default:
            throw fail("unexpected character")
        }
    }

    mutating func parseNumber() throws(ProtoJSONError) -> String {
        let start = i
        if bytes[i] == UInt8(ascii: "-") { i += 1 }
        func digit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
        guard i < bytes.count, digit(bytes[i]) else { throw fail("invalid number") }
        if bytes[i] == 0x30 {
            i += 1
        } else {
            while i < bytes.count, digit(bytes[i]) { i += 1 }
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
            i += 1
            guard i < bytes.count, digit(bytes[i]) else { throw fail("invalid number") }
            while i < bytes.count, digit(bytes[i]) { i += 1 }
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
            i += 1
            if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
            guard i < bytes.count, digit(bytes[i]) else { throw fail("invalid number") }
            while i < bytes.count, digit(bytes[i]) { i += 1 }
        }
        return String(decoding: bytes[start..<i], as: UTF8.self)
    }

    static func hexValue(_ b: UInt8) -> UInt32? {
        switch b {
        case 0x30...0x39: UInt32(b - 0x30)
        case 0x41...0x46: UInt32(b - 0x41 + 10)
        case 0x61...0x66: UInt32(b - 0x61 + 10)
        default: nil
        }
    }

    mutating func parseHex4() throws(ProtoJSONError) -> UInt32 {
        guard i + 4 <= bytes.count else { throw fail("truncated \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            guard let h = JSONParser.hexValue(bytes[i]) else { throw fail("invalid \\u escape") }
            v = v << 4 | h
            i += 1
        }
        return v
    }

    mutating func parseString() throws(ProtoJSONError) -> String {
        i += 1  // opening quote
        var out: [UInt8] = []
        var runStart = i
        while true {
            guard i < bytes.count else { throw fail("unterminated string") }
            let b = bytes[i]
            if b == UInt8(ascii: "\"") {
                out.append(contentsOf: bytes[runStart..<i])
                i += 1
                break
            }
            if b < 0x20 { throw fail("control character in string") }
            if b != UInt8(ascii: "\\") {
                i += 1
                continue
            }
            out.append(contentsOf: bytes[runStart..<i])
            i += 1
            guard i < bytes.count else { throw fail("unterminated escape") }
            let e = bytes[i]
            i += 1
            switch e {
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5C)
            case UInt8(ascii: "/"): out.append(0x2F)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try parseHex4()
                if scalar >= 0xD800 && scalar < 0xDC00 {
                    guard i + 2 <= bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u")
                    else { throw fail("unpaired surrogate") }
                    i += 2
                    let low = try parseHex4()
                    guard low >= 0xDC00 && low < 0xE000 else { throw fail("unpaired surrogate") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if scalar >= 0xDC00 && scalar < 0xE000 {
                    throw fail("unpaired surrogate")
                }
                guard let s = Unicode.Scalar(scalar) else { throw fail("invalid \\u escape") }
                out.append(contentsOf: UTF8.encode(s)!)
            default:
                throw fail("invalid escape")
            }
            runStart = i
        }
        guard let s = String(validating: out, as: UTF8.self) else { throw fail("invalid UTF-8 in string") }
        return s
    }
}

/// Choices for JSON output. The defaults are the canonical proto3 mapping; the CLI's `-o json`
/// (SPEC.md section 9.3) wants proto field names, 64-bit integers as numbers and every field printed.
package struct ProtoJSONEncodingOptions: Sendable, Equatable {
    /// Keys are the .proto field names ("kernel_info") instead of lowerCamel ("kernelInfo").
    package var preserveProtoFieldNames: Bool
    /// int64/uint64 (and fixed/sint variants) as JSON numbers instead of strings.
    package var int64AsNumbers: Bool
    /// Print fields without presence even at their default (0, "", false, [], {}); fields with
    /// presence (messages, `optional`, oneof members) still appear only when set.
    package var alwaysPrintFieldsWithoutPresence: Bool

    package init(
        preserveProtoFieldNames: Bool = false,
        int64AsNumbers: Bool = false,
        alwaysPrintFieldsWithoutPresence: Bool = false
    ) {
        self.preserveProtoFieldNames = preserveProtoFieldNames
        self.int64AsNumbers = int64AsNumbers
        self.alwaysPrintFieldsWithoutPresence = alwaysPrintFieldsWithoutPresence
    }
}

/// Builds compact JSON text. Generated code calls `key`, then one value writer.
package struct ProtoJSONWriter {
    package var bytes: [UInt8] = []
    package let options: ProtoJSONEncodingOptions

    package init(options: ProtoJSONEncodingOptions = .init()) {
        self.options = options
    }

    @inline(__always)
    mutating func separator() {
        if let last = bytes.last, last != UInt8(ascii: "{"), last != UInt8(ascii: "[") {
            bytes.append(UInt8(ascii: ","))
        }
    }

    package mutating func beginObject() {
        separatorIfInArray()
        bytes.append(UInt8(ascii: "{"))
    }
    package mutating func endObject() { bytes.append(UInt8(ascii: "}")) }
    package mutating func beginArray() {
        separatorIfInArray()
        bytes.append(UInt8(ascii: "["))
    }
    package mutating func endArray() { bytes.append(UInt8(ascii: "]")) }

    /// Array elements and object values share one rule: a comma unless first.
    private var pendingKey = false

    @inline(__always)
    mutating func separatorIfInArray() {
        if pendingKey {
            pendingKey = false
        } else {
            separator()
        }
    }

    package mutating func key(_ name: String) {
        separator()
        appendQuoted(name)
        bytes.append(UInt8(ascii: ":"))
        pendingKey = true
    }

    /// A field key: the lowerCamel JSON name, or the proto name when the options ask for it.
    package mutating func key(_ jsonName: String, proto protoName: String) {
        separator()
        appendQuoted(options.preserveProtoFieldNames ? protoName : jsonName)
        bytes.append(UInt8(ascii: ":"))
        pendingKey = true
    }

    package mutating func null() {
        separatorIfInArray()
        bytes.append(contentsOf: "null".utf8)
    }
    package mutating func bool(_ v: Bool) {
        separatorIfInArray()
        bytes.append(contentsOf: (v ? "true" : "false").utf8)
    }
    package mutating func int32(_ v: Int32) { raw(String(v)) }
    package mutating func uint32(_ v: UInt32) { raw(String(v)) }
    package mutating func int64(_ v: Int64) {
        if options.int64AsNumbers { raw(String(v)) } else { string(String(v)) }
    }
    package mutating func uint64(_ v: UInt64) {
        if options.int64AsNumbers { raw(String(v)) } else { string(String(v)) }
    }
    package mutating func double(_ v: Double) {
        if v.isNaN {
            string("NaN")
        } else if v == .infinity {
            string("Infinity")
        } else if v == -.infinity {
            string("-Infinity")
        } else {
            raw(ProtoJSONWriter.formatFinite(v.description))
        }
    }
    package mutating func float(_ v: Float) {
        if v.isNaN {
            string("NaN")
        } else if v == .infinity {
            string("Infinity")
        } else if v == -.infinity {
            string("-Infinity")
        } else {
            raw(ProtoJSONWriter.formatFinite(v.description))
        }
    }
    package mutating func string(_ v: String) {
        separatorIfInArray()
        appendQuoted(v)
    }
    package mutating func bytesValue(_ v: [UInt8]) { string(ProtoBase64.encode(v)) }
    package mutating func enumValue<E: ProtoEnum>(_ v: E) {
        if let name = v.protoName { string(name) } else { int32(v.rawValue) }
    }
    package mutating func message<M: ProtoMessage>(_ m: M) {
        m._protoEncodeJSON(to: &self)
    }

    /// A map key: always a JSON string.
    package mutating func mapKey(_ key: String) { self.key(key) }

    mutating func raw(_ text: String) {
        separatorIfInArray()
        bytes.append(contentsOf: text.utf8)
    }

    /// Swift prints "1e-05" and "5.0"; both are valid JSON numbers, so only "inf"-like cases
    /// (handled by the callers) need care.
    static func formatFinite(_ text: String) -> String { text }

    mutating func appendQuoted(_ s: String) {
        bytes.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): bytes.append(contentsOf: [0x5C, 0x22])
            case UInt8(ascii: "\\"): bytes.append(contentsOf: [0x5C, 0x5C])
            case 0x0A: bytes.append(contentsOf: [0x5C, UInt8(ascii: "n")])
            case 0x0D: bytes.append(contentsOf: [0x5C, UInt8(ascii: "r")])
            case 0x09: bytes.append(contentsOf: [0x5C, UInt8(ascii: "t")])
            case 0x08: bytes.append(contentsOf: [0x5C, UInt8(ascii: "b")])
            case 0x0C: bytes.append(contentsOf: [0x5C, UInt8(ascii: "f")])
            case 0..<0x20:
                let hex: [UInt8] = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: [0x5C, UInt8(ascii: "u"), 0x30, 0x30, hex[Int(b >> 4)], hex[Int(b & 15)]])
            default: bytes.append(b)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}

// MARK: Reading values

extension ProtoJSONValue {
    /// Members of an object; `field` names the place in errors.
    package func objectMembers(_ field: String) throws(ProtoJSONError) -> [Member] {
        guard case .object(let members) = self else { throw .invalidValue(field: field, reason: "expected an object") }
        return members
    }

    package func arrayElements(_ field: String) throws(ProtoJSONError) -> [ProtoJSONValue] {
        guard case .array(let elements) = self else { throw .invalidValue(field: field, reason: "expected an array") }
        return elements
    }

    /// The text of a number, or of a string holding a number.
    func numberText(_ field: String) throws(ProtoJSONError) -> String {
        switch self {
        case .number(let t): return t
        case .string(let s):
            guard !s.isEmpty, s.utf8.first != 0x20, s.utf8.last != 0x20 else {
                throw .invalidValue(field: field, reason: "not a number: \"\(s)\"")
            }
            return s
        default: throw .invalidValue(field: field, reason: "expected a number")
        }
    }

    func integer<T: FixedWidthInteger>(_ field: String, as: T.Type) throws(ProtoJSONError) -> T {
        let text = try numberText(field)
        if let v = T(text) { return v }
        // Exponent or fraction forms ("1e3", "5.0") are accepted when they are whole numbers.
        guard let d = Double(text), d.isFinite, d.rounded() == d,
            let v = T(exactly: d)
        else { throw .invalidValue(field: field, reason: "not a \(T.self): \(text)") }
        return v
    }

    package func int32(_ field: String) throws(ProtoJSONError) -> Int32 { try integer(field, as: Int32.self) }
    package func int64(_ field: String) throws(ProtoJSONError) -> Int64 { try integer(field, as: Int64.self) }
    package func uint32(_ field: String) throws(ProtoJSONError) -> UInt32 { try integer(field, as: UInt32.self) }
    package func uint64(_ field: String) throws(ProtoJSONError) -> UInt64 { try integer(field, as: UInt64.self) }

    package func double(_ field: String) throws(ProtoJSONError) -> Double {
        if case .string(let s) = self {
            switch s {
            case "NaN": return .nan
            case "Infinity": return .infinity
            case "-Infinity": return -.infinity
            default: break
            }
        }
        let text = try numberText(field)
        guard let d = Double(text), d.isFinite else {
            throw .invalidValue(field: field, reason: "not a double: \(text)")
        }
        return d
    }

    package func float(_ field: String) throws(ProtoJSONError) -> Float {
        let d = try double(field)
        if d.isNaN || d.isInfinite { return Float(d) }
        // Read as a float from the text itself: the shortest text of the largest float (3.4028235e+38) is above
        // it as a double, and rounding through the double could also land one ulp off. Out of range is a value
        // that rounds to infinity.
        guard let f = Float(try numberText(field)), f.isFinite else {
            throw .invalidValue(field: field, reason: "out of range for float")
        }
        return f
    }

    package func bool(_ field: String) throws(ProtoJSONError) -> Bool {
        guard case .bool(let b) = self else { throw .invalidValue(field: field, reason: "expected true or false") }
        return b
    }

    package func string(_ field: String) throws(ProtoJSONError) -> String {
        guard case .string(let s) = self else { throw .invalidValue(field: field, reason: "expected a string") }
        return s
    }

    package func bytes(_ field: String) throws(ProtoJSONError) -> [UInt8] {
        guard case .string(let s) = self, let b = ProtoBase64.decode(s) else {
            throw .invalidValue(field: field, reason: "expected base64")
        }
        return b
    }

    package func enumValue<E: ProtoEnum>(_ field: String, as: E.Type) throws(ProtoJSONError) -> E {
        switch self {
        case .string(let name):
            guard let v = E(protoName: name) else {
                throw .invalidValue(field: field, reason: "unknown enum value \(name)")
            }
            return v
        case .number:
            return E(rawValue: try int32(field))
        default:
            throw .invalidValue(field: field, reason: "expected an enum name or number")
        }
    }

    package func message<M: ProtoMessage>(_ field: String, as: M.Type) throws(ProtoJSONError) -> M {
        var m = M()
        try m._protoDecodeJSON(from: self)
        return m
    }

    /// Map keys arrive as strings; these parse them as the declared key type.
    package static func mapKey<T: FixedWidthInteger>(
        _ key: String,
        _ field: String,
        as: T.Type
    ) throws(ProtoJSONError)
        -> T
    {
        guard let v = T(key) else { throw .invalidValue(field: field, reason: "bad map key \(key)") }
        return v
    }

    package static func mapKeyBool(_ key: String, _ field: String) throws(ProtoJSONError) -> Bool {
        switch key {
        case "true": return true
        case "false": return false
        default: throw .invalidValue(field: field, reason: "bad map key \(key)")
        }
    }
}

// MARK: Base64

/// RFC 4648 base64: standard alphabet with padding on output; standard or URL-safe, padded or not, on input.
package enum ProtoBase64 {
    static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    package static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i + 3 <= bytes.count {
            let v = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            out.append(alphabet[Int(v >> 18 & 63)])
            out.append(alphabet[Int(v >> 12 & 63)])
            out.append(alphabet[Int(v >> 6 & 63)])
            out.append(alphabet[Int(v & 63)])
            i += 3
        }
        let rest = bytes.count - i
        if rest == 1 {
            let v = UInt32(bytes[i]) << 16
            out.append(alphabet[Int(v >> 18 & 63)])
            out.append(alphabet[Int(v >> 12 & 63)])
            out.append(contentsOf: [0x3D, 0x3D])
        } else if rest == 2 {
            let v = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8
            out.append(alphabet[Int(v >> 18 & 63)])
            out.append(alphabet[Int(v >> 12 & 63)])
            out.append(alphabet[Int(v >> 6 & 63)])
            out.append(0x3D)
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func sextet(_ c: UInt8) -> UInt32? {
        switch c {
        case 0x41...0x5A: UInt32(c - 0x41)
        case 0x61...0x7A: UInt32(c - 0x61 + 26)
        case 0x30...0x39: UInt32(c - 0x30 + 52)
        case UInt8(ascii: "+"), UInt8(ascii: "-"): 62
        case UInt8(ascii: "/"), UInt8(ascii: "_"): 63
        default: nil
        }
    }

    package static func decode(_ text: String) -> [UInt8]? {
        var chars = Array(text.utf8)
        while chars.last == 0x3D { chars.removeLast() }
        if chars.count % 4 == 1 { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(chars.count * 3 / 4)
        var acc: UInt32 = 0
        var bits = 0
        for c in chars {
            guard let s = sextet(c) else { return nil }
            acc = acc << 6 | s
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: acc >> UInt32(bits)))
            }
        }
        return out
    }
}

// MARK: google.protobuf.Timestamp

/// RFC 3339 text for google.protobuf.Timestamp ("1972-01-01T10:00:20.021Z").
package enum ProtoTimestampText {
    /// Seconds of 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, the range JSON allows.
    static let minSeconds: Int64 = -62_135_596_800
    static let maxSeconds: Int64 = 253_402_300_799

    // Days since 1970-01-01 to (year, month, day), after Howard Hinnant's civil-date algorithm.
    static func civil(fromDays z0: Int64) -> (Int64, Int64, Int64) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }

    static func days(fromCivil y0: Int64, _ m: Int64, _ d: Int64) -> Int64 {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func pad(_ v: Int64, _ width: Int) -> String {
        let s = String(v)
        return String(repeating: "0", count: max(0, width - s.count)) + s
    }

    package static func format(seconds: Int64, nanos: Int32, field: String) throws(ProtoJSONError) -> String {
        guard seconds >= minSeconds, seconds <= maxSeconds, nanos >= 0, nanos < 1_000_000_000 else {
            throw .invalidValue(field: field, reason: "timestamp out of range")
        }
        let days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400
        let secOfDay = seconds - days * 86400
        let (y, mo, d) = civil(fromDays: days)
        var s =
            "\(pad(y, 4))-\(pad(mo, 2))-\(pad(d, 2))T\(pad(secOfDay / 3600, 2)):\(pad(secOfDay / 60 % 60, 2)):\(pad(secOfDay % 60, 2))"
        if nanos != 0 {
            if nanos % 1_000_000 == 0 {
                s += "." + pad(Int64(nanos / 1_000_000), 3)
            } else if nanos % 1000 == 0 {
                s += "." + pad(Int64(nanos / 1000), 6)
            } else {
                s += "." + pad(Int64(nanos), 9)
            }
        }
        return s + "Z"
    }

    package static func parse(_ text: String, field: String) throws(ProtoJSONError) -> (seconds: Int64, nanos: Int32) {
        let c = Array(text.utf8)
        func bad() -> ProtoJSONError { .invalidValue(field: field, reason: "not an RFC 3339 timestamp: \(text)") }
        func num(_ from: Int, _ count: Int) throws(ProtoJSONError) -> Int64 {
            guard from + count <= c.count else { throw bad() }
            var v: Int64 = 0
            for k in from..<(from + count) {
                guard c[k] >= 0x30, c[k] <= 0x39 else { throw bad() }
                v = v * 10 + Int64(c[k] - 0x30)
            }
            return v
        }
        guard c.count >= 20, c[4] == 0x2D, c[7] == 0x2D, c[10] == UInt8(ascii: "T") || c[10] == UInt8(ascii: "t"),
            c[13] == 0x3A, c[16] == 0x3A
        else { throw bad() }
        let y = try num(0, 4)
        let mo = try num(5, 2)
        let d = try num(8, 2)
        let h = try num(11, 2)
        let mi = try num(14, 2)
        let s = try num(17, 2)
        guard mo >= 1, mo <= 12, d >= 1, d <= 31, h <= 23, mi <= 59, s <= 59 else { throw bad() }
        var i = 19
        var nanos: Int64 = 0
        if i < c.count, c[i] == UInt8(ascii: ".") {
            i += 1
            var digits = 0
            while i < c.count, c[i] >= 0x30, c[i] <= 0x39 {
                guard digits < 9 else { throw bad() }
                nanos = nanos * 10 + Int64(c[i] - 0x30)
                digits += 1
                i += 1
            }
            guard digits > 0 else { throw bad() }
            for _ in digits..<9 { nanos *= 10 }
        }
        guard i < c.count else { throw bad() }
        var offset: Int64 = 0
        if c[i] == UInt8(ascii: "Z") || c[i] == UInt8(ascii: "z") {
            i += 1
        } else if c[i] == UInt8(ascii: "+") || c[i] == UInt8(ascii: "-") {
            let sign: Int64 = c[i] == UInt8(ascii: "+") ? 1 : -1
            guard i + 6 == c.count, c[i + 3] == 0x3A else { throw bad() }
            offset = sign * (try num(i + 1, 2) * 3600 + (try num(i + 4, 2)) * 60)
            i += 6
        } else {
            throw bad()
        }
        guard i == c.count else { throw bad() }
        let seconds = days(fromCivil: y, mo, d) * 86400 + h * 3600 + mi * 60 + s - offset
        guard seconds >= minSeconds, seconds <= maxSeconds else { throw bad() }
        return (seconds, Int32(nanos))
    }
}
