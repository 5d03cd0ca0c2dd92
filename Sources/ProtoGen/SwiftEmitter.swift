// Writes the Swift for one .proto file: a struct per message, an enum per enum and per oneof,
// binary and JSON codec methods, and a namespace per service with its method paths.

let swiftKeywords: Set<String> = [
    "associatedtype", "class", "deinit", "enum", "extension", "fileprivate", "func", "import", "init", "inout",
    "internal", "let", "open", "operator", "private", "protocol", "public", "rethrows", "static", "struct",
    "subscript", "typealias", "var", "break", "case", "continue", "default", "defer", "do", "else", "fallthrough",
    "for", "guard", "if", "in", "repeat", "return", "switch", "where", "while", "as", "Any", "catch", "false",
    "is", "nil", "super", "self", "Self", "throw", "throws", "true", "try", "package", "weak", "lazy", "some",
    "any", "Type", "Protocol", "consuming", "borrowing",
]

func escaped(_ name: String) -> String { swiftKeywords.contains(name) ? "`\(name)`" : name }

/// swift-protobuf's field naming: lowerCamelCase, with "id", "url", "http", "https" upper-cased after the first word.
func lowerCamel(_ name: String) -> String {
    let words = name.split(separator: "_", omittingEmptySubsequences: true).map(String.init)
    var out = ""
    for (k, w) in words.enumerated() {
        if k == 0 {
            out += w.prefix(1).lowercased() + w.dropFirst()
        } else if ["id", "url", "http", "https"].contains(w.lowercased()) {
            out += w.uppercased()
        } else {
            out += w.prefix(1).uppercased() + w.dropFirst()
        }
    }
    return out
}

func upperCamel(_ name: String) -> String {
    let l = lowerCamel(name)
    return l.prefix(1).uppercased() + l.dropFirst()
}

/// "ServingStatus" -> "SERVING_STATUS"
func upperSnake(_ name: String) -> String {
    var out = ""
    for (k, c) in name.enumerated() {
        if c.isUppercase, k > 0 { out += "_" }
        out += c.uppercased()
    }
    return out
}

/// Enum case names: drop a shared ENUM_NAME_ prefix, then lowerCamelCase the words.
func enumCaseNames(_ e: EnumDef) -> [String] {
    let prefix = upperSnake(e.name) + "_"
    let strip = e.values.allSatisfy {
        $0.name.hasPrefix(prefix) && $0.name.count > prefix.count
            && !($0.name.dropFirst(prefix.count).first?.isNumber ?? true)
    }
    return e.values.map { v in
        let base = strip ? String(v.name.dropFirst(prefix.count)) : v.name
        let words = base.split(separator: "_").map { $0.lowercased() }
        var out = words.first ?? ""
        for w in words.dropFirst() { out += w.prefix(1).uppercased() + w.dropFirst() }
        return out
    }
}

/// Swift spellings for nested type names Swift reserves (Outer.Type is the metatype).
func nestedTypeName(_ name: String, isEnum: Bool) -> String {
    if ["Type", "Protocol", "Self"].contains(name) { return name + (isEnum ? "Enum" : "Message") }
    return name
}

struct ScalarInfo {
    var swiftType: String
    var defaultValue: String
    var wireType: Int
    var read: String  // method on ProtoReader
    var write: String  // method on ProtoWriter
    var size: String?  // ProtoSize function, nil for fixed-size
    var fixedSize: Int
    var packedReader: String?  // readPackedVarints / readPackedFixed32 / readPackedFixed64
    var packedConvert: String  // closure body over $0
    var jsonWrite: String
    var jsonRead: String
}

let scalarInfo: [String: ScalarInfo] = [
    "double": .init(
        swiftType: "Double",
        defaultValue: "0",
        wireType: 1,
        read: "readDouble",
        write: "writeDouble",
        size: nil,
        fixedSize: 8,
        packedReader: "readPackedFixed64",
        packedConvert: "Double(bitPattern: $0)",
        jsonWrite: "double",
        jsonRead: "double"
    ),
    "float": .init(
        swiftType: "Float",
        defaultValue: "0",
        wireType: 5,
        read: "readFloat",
        write: "writeFloat",
        size: nil,
        fixedSize: 4,
        packedReader: "readPackedFixed32",
        packedConvert: "Float(bitPattern: $0)",
        jsonWrite: "float",
        jsonRead: "float"
    ),
    "int64": .init(
        swiftType: "Int64",
        defaultValue: "0",
        wireType: 0,
        read: "readInt64",
        write: "writeInt64",
        size: "int64",
        fixedSize: 0,
        packedReader: "readPackedVarints",
        packedConvert: "Int64(bitPattern: $0)",
        jsonWrite: "int64",
        jsonRead: "int64"
    ),
    "uint64": .init(
        swiftType: "UInt64",
        defaultValue: "0",
        wireType: 0,
        read: "readUInt64",
        write: "writeUInt64",
        size: "uint64",
        fixedSize: 0,
        packedReader: "readPackedVarints",
        packedConvert: "$0",
        jsonWrite: "uint64",
        jsonRead: "uint64"
    ),
    "int32": .init(
        swiftType: "Int32",
        defaultValue: "0",
        wireType: 0,
        read: "readInt32",
        write: "writeInt32",
        size: "int32",
        fixedSize: 0,
        packedReader: "readPackedVarints",
        packedConvert: "Int32(truncatingIfNeeded: $0)",
        jsonWrite: "int32",
        jsonRead: "int32"
    ),
    "fixed64": .init(
        swiftType: "UInt64",
        defaultValue: "0",
        wireType: 1,
        read: "readFixed64",
        write: "writeFixed64Value",
        size: nil,
        fixedSize: 8,
        packedReader: "readPackedFixed64",
        packedConvert: "$0",
        jsonWrite: "uint64",
        jsonRead: "uint64"
    ),
    "fixed32": .init(
        swiftType: "UInt32",
        defaultValue: "0",
        wireType: 5,
        read: "readFixed32",
        write: "writeFixed32Value",
        size: nil,
        fixedSize: 4,
        packedReader: "readPackedFixed32",
        packedConvert: "$0",
        jsonWrite: "uint32",
        jsonRead: "uint32"
    ),
    "bool": .init(
        swiftType: "Bool",
        defaultValue: "false",
        wireType: 0,
        read: "readBool",
        write: "writeBool",
        size: nil,
        fixedSize: 1,
        packedReader: "readPackedVarints",
        packedConvert: "$0 != 0",
        jsonWrite: "bool",
        jsonRead: "bool"
    ),
    "string": .init(
        swiftType: "String",
        defaultValue: "\"\"",
        wireType: 2,
        read: "readString",
        write: "writeString",
        size: "string",
        fixedSize: 0,
        packedReader: nil,
        packedConvert: "",
        jsonWrite: "string",
        jsonRead: "string"
    ),
    "bytes": .init(
        swiftType: "[UInt8]",
        defaultValue: "[]",
        wireType: 2,
        read: "readBytes",
        write: "writeBytes",
        size: "bytes",
        fixedSize: 0,
        packedReader: nil,
        packedConvert: "",
        jsonWrite: "bytesValue",
        jsonRead: "bytes"
    ),
    "uint32": .init(
        swiftType: "UInt32",
        defaultValue: "0",
        wireType: 0,
        read: "readUInt32",
        write: "writeUInt32",
        size: "uint32",
        fixedSize: 0,
        packedReader: "readPackedVarints",
        packedConvert: "UInt32(truncatingIfNeeded: $0)",
        jsonWrite: "uint32",
        jsonRead: "uint32"
    ),
    "sfixed32": .init(
        swiftType: "Int32",
        defaultValue: "0",
        wireType: 5,
        read: "readSFixed32",
        write: "writeSFixed32",
        size: nil,
        fixedSize: 4,
        packedReader: "readPackedFixed32",
        packedConvert: "Int32(bitPattern: $0)",
        jsonWrite: "int32",
        jsonRead: "int32"
    ),
    "sfixed64": .init(
        swiftType: "Int64",
        defaultValue: "0",
        wireType: 1,
        read: "readSFixed64",
        write: "writeSFixed64",
        size: nil,
        fixedSize: 8,
        packedReader: "readPackedFixed64",
        packedConvert: "Int64(bitPattern: $0)",
        jsonWrite: "int64",
        jsonRead: "int64"
    ),
    "sint32": .init(
        swiftType: "Int32",
        defaultValue: "0",
        wireType: 0,
        read: "readSInt32",
        write: "writeSInt32",
        size: "sint32",
        fixedSize: 0,
        packedReader: "readPackedVarints",
        packedConvert:
            "{ let v = UInt32(truncatingIfNeeded: $0); return Int32(bitPattern: v >> 1) ^ -Int32(bitPattern: v & 1) }()",
        jsonWrite: "int32",
        jsonRead: "int32"
    ),
    "sint64": .init(
        swiftType: "Int64",
        defaultValue: "0",
        wireType: 0,
        read: "readSInt64",
        write: "writeSInt64",
        size: "sint64",
        fixedSize: 0,
        packedReader: "readPackedVarints",
        packedConvert: "Varint.unzigzag($0)",
        jsonWrite: "int64",
        jsonRead: "int64"
    ),
]

func varintSize(_ v: Int) -> Int {
    var n = 1
    var x = v >> 7
    while x > 0 {
        n += 1
        x >>= 7
    }
    return n
}

/// How one field's value is read, written, sized and shown in JSON.
struct ValueCodec {
    var swiftType: String
    var defaultValue: String
    var wireType: Int
    var kind: Kind
    enum Kind {
        case scalar(String)
        case enumeration, message
    }

    func isNonDefault(_ x: String) -> String {
        switch kind {
        case .scalar(let t):
            switch t {
            case "bool": return x
            case "string", "bytes": return "!\(x).isEmpty"
            case "double", "float": return "\(x).bitPattern != 0"
            default: return "\(x) != 0"
            }
        case .enumeration: return "\(x).rawValue != 0"
        case .message: return "true"
        }
    }

    func read(_ r: String, field: Int) -> String {
        switch kind {
        case .scalar(let t):
            return t == "string" ? "try \(r).readString(field: \(field))" : "try \(r).\(scalarInfo[t]!.read)()"
        case .enumeration: return "try \(r).readEnum() as \(swiftType)"
        case .message: fatalError("messages are read in place")
        }
    }

    func write(_ w: String, _ x: String) -> String {
        switch kind {
        case .scalar(let t): return "\(w).\(scalarInfo[t]!.write)(\(x))"
        case .enumeration: return "\(w).writeEnum(\(x))"
        case .message: return "\(w).writeMessage(\(x))"
        }
    }

    func size(_ x: String) -> String {
        switch kind {
        case .scalar(let t):
            let info = scalarInfo[t]!
            if let s = info.size { return "ProtoSize.\(s)(\(x))" }
            return "\(info.fixedSize)"
        case .enumeration: return "ProtoSize.enumValue(\(x))"
        case .message: return "ProtoSize.message(\(x))"
        }
    }

    var fixedSize: Int? {
        if case .scalar(let t) = kind, scalarInfo[t]!.size == nil { return scalarInfo[t]!.fixedSize }
        return nil
    }

    func jsonWrite(_ w: String, _ x: String) -> String {
        switch kind {
        case .scalar(let t): return "\(w).\(scalarInfo[t]!.jsonWrite)(\(x))"
        case .enumeration: return "\(w).enumValue(\(x))"
        case .message: return "\(w).message(\(x))"
        }
    }

    func jsonRead(_ v: String, _ name: String) -> String {
        switch kind {
        case .scalar(let t): return "try \(v).\(scalarInfo[t]!.jsonRead)(\"\(name)\")"
        case .enumeration: return "try \(v).enumValue(\"\(name)\", as: \(swiftType).self)"
        case .message: return "try \(v).message(\"\(name)\", as: \(swiftType).self)"
        }
    }

    var packable: Bool {
        switch kind {
        case .scalar(let t): return scalarInfo[t]!.packedReader != nil
        case .enumeration: return true
        case .message: return false
        }
    }
}

struct Out {
    var text = ""
    var indent = 0
    var switchDepth: [Int] = []
    mutating func line(_ s: String = "") {
        if s.isEmpty {
            text += "\n"
        } else {
            text += String(repeating: "    ", count: indent) + s + "\n"
        }
    }
    mutating func open(_ s: String) {
        line(s)
        if !s.hasPrefix("switch ") { indent += 1 } else { switchDepth.append(indent) }
    }
    mutating func close(_ s: String = "}") {
        if let last = switchDepth.last, last == indent {
            switchDepth.removeLast()
        } else {
            indent -= 1
        }
        line(s)
    }
}

struct SwiftEmitter {
    let table: SymbolTable
    let file: ProtoFile

    func swiftName(_ fullNameWithDot: String) -> String {
        let full = fullNameWithDot.hasPrefix(".") ? String(fullNameWithDot.dropFirst()) : fullNameWithDot
        let pkg = table.packageOf[full] ?? ""
        let prefix = pkg.split(separator: ".").map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined(separator: "_")
        let rest = pkg.isEmpty ? full : String(full.dropFirst(pkg.count + 1))
        var parts: [String] = []
        var scope = pkg
        for p in rest.split(separator: ".").map(String.init) {
            scope = scope.isEmpty ? p : scope + "." + p
            var isEnum = false
            if case .enumeration = table.symbols[scope] { isEnum = true }
            parts.append(nestedTypeName(p, isEnum: isEnum))
        }
        return (prefix.isEmpty ? "" : prefix + "_") + parts.joined(separator: ".")
    }

    func codec(type: String, resolved: String, isEnum: Bool) -> ValueCodec {
        if let s = scalarInfo[type], resolved.isEmpty {
            return ValueCodec(
                swiftType: s.swiftType,
                defaultValue: s.defaultValue,
                wireType: s.wireType,
                kind: .scalar(type)
            )
        }
        let name = swiftName(resolved)
        if isEnum { return ValueCodec(swiftType: name, defaultValue: "\(name)()", wireType: 0, kind: .enumeration) }
        return ValueCodec(swiftType: name, defaultValue: "\(name)()", wireType: 2, kind: .message)
    }

    func codec(_ f: FieldDef) -> ValueCodec { codec(type: f.typeName, resolved: f.resolvedType, isEnum: f.isEnumType) }

    /// Whether a singular field tracks presence (stored as an optional).
    func hasPresence(_ f: FieldDef) -> Bool {
        if f.label == .repeated || f.oneofIndex != nil && !f.proto3Optional { return false }
        if f.proto3Optional { return true }
        if case .message = codec(f).kind { return true }
        return !file.isProto3  // proto2 optional/required
    }

    func isPacked(_ f: FieldDef) -> Bool {
        guard f.label == .repeated, !f.isMap, codec(f).packable else { return false }
        if let p = f.options.first(where: { $0.name == "packed" }) { return p.value.text == "true" }
        return file.isProto3
    }

    func realOneof(_ f: FieldDef) -> Int? { f.proto3Optional ? nil : f.oneofIndex }

    func tag(_ n: Int, _ wt: Int) -> Int { n << 3 | wt }

    func emit() -> String {
        var o = Out()
        o.line("// DO NOT EDIT.")
        o.line("// swift-format-ignore-file")
        o.line("//")
        o.line(
            "// Generated by ProtoGen from \(file.name). Regenerate with `swift run ProtoGen` (see scripts/check-generated.sh)."
        )
        o.line()
        for e in file.enums { emitEnum(&o, e) }
        for m in file.messages { emitMessage(&o, m) }
        for s in file.services { emitService(&o, s) }
        return o.text
    }

    func emitEnum(_ o: inout Out, _ e: EnumDef) {
        let name = swiftName(e.fullName).split(separator: ".").last.map(String.init)!
        let cases = enumCaseNames(e)
        o.line()
        o.line("/// The enum `\(e.fullName)`.")
        o.open("package enum \(name): ProtoEnum, CaseIterable {")
        var seen = Set<Int>()
        for (k, v) in e.values.enumerated() where !seen.contains(v.number) {
            seen.insert(v.number)
            o.line("/// \(v.name) = \(v.number)")
            o.line("case \(escaped(cases[k]))")
        }
        o.line("/// A number this schema does not declare, kept as received.")
        o.line("case UNRECOGNIZED(Int32)")
        o.line()
        o.line("package init() { self = .\(escaped(cases[0])) }")
        o.line()
        o.open("package init(rawValue: Int32) {")
        o.open("switch rawValue {")
        seen = []
        for (k, v) in e.values.enumerated() where !seen.contains(v.number) {
            seen.insert(v.number)
            o.line("case \(v.number): self = .\(escaped(cases[k]))")
        }
        o.line("default: self = .UNRECOGNIZED(rawValue)")
        o.close()
        o.close()
        o.line()
        o.open("package var rawValue: Int32 {")
        o.open("switch self {")
        seen = []
        for (k, v) in e.values.enumerated() where !seen.contains(v.number) {
            seen.insert(v.number)
            o.line("case .\(escaped(cases[k])): \(v.number)")
        }
        o.line("case .UNRECOGNIZED(let v): v")
        o.close()
        o.close()
        o.line()
        o.open("package var protoName: String? {")
        o.open("switch self {")
        seen = []
        for (k, v) in e.values.enumerated() where !seen.contains(v.number) {
            seen.insert(v.number)
            o.line("case .\(escaped(cases[k])): \"\(v.name)\"")
        }
        o.line("case .UNRECOGNIZED: nil")
        o.close()
        o.close()
        o.line()
        o.open("package init?(protoName: String) {")
        o.open("switch protoName {")
        for (k, v) in e.values.enumerated() { o.line("case \"\(v.name)\": self = .\(escaped(cases[k]))") }
        o.line("default: return nil")
        o.close()
        o.close()
        o.line()
        seen = []
        var all: [String] = []
        for (k, v) in e.values.enumerated() where !seen.contains(v.number) {
            seen.insert(v.number)
            all.append("." + escaped(cases[k]))
        }
        o.line("package static let allCases: [Self] = [\(all.joined(separator: ", "))]")
        o.close()
    }

    func declProp(_ f: FieldDef) -> String { escaped(lowerCamel(f.name)) }
    func declStorage(_ f: FieldDef) -> String { "_" + lowerCamel(f.name) }
    func declOneof(_ m: MessageDef, _ k: Int) -> String { escaped(lowerCamel(m.oneofs[k].name)) }
    // References always go through self, so fields named like locals (tag, value) cannot be shadowed.
    func fieldProp(_ f: FieldDef) -> String { "self." + declProp(f) }
    func storage(_ f: FieldDef) -> String { "self." + declStorage(f) }
    func oneofProp(_ m: MessageDef, _ k: Int) -> String { "self." + declOneof(m, k) }
    func oneofType(_ m: MessageDef, _ k: Int) -> String { "OneOf_" + upperCamel(m.oneofs[k].name) }

    func mapTypes(_ f: FieldDef) -> (ValueCodec, ValueCodec) {
        let e = f.mapEntry!
        return (codec(e.fields[0]), codec(e.fields[1]))
    }

    func swiftFieldType(_ f: FieldDef) -> String {
        if f.isMap {
            let (k, v) = mapTypes(f)
            return "[\(k.swiftType): \(v.swiftType)]"
        }
        let c = codec(f)
        return f.label == .repeated ? "[\(c.swiftType)]" : c.swiftType
    }

    func proto2Default(_ f: FieldDef, _ c: ValueCodec) -> String {
        guard let d = f.defaultOption else { return c.defaultValue }
        switch c.kind {
        case .enumeration:
            if case .enumeration(let e) = table.symbols[String(f.resolvedType.dropFirst())]!,
                let k = e.values.firstIndex(where: { $0.name == d.text })
            {
                return ".\(escaped(enumCaseNames(e)[k]))"
            }
            return c.defaultValue
        case .scalar(let t) where t == "string": return "\"\(d.text)\""
        default: return d.text
        }
    }

    func emitMessage(_ o: inout Out, _ m: MessageDef) {
        if m.isMapEntry { return }
        let name = swiftName(m.fullName).split(separator: ".").last.map(String.init)!
        let wkt = m.fullName.hasPrefix("google.protobuf.") ? String(m.fullName.dropFirst(16)) : ""
        o.line()
        o.line("/// The message `\(m.fullName)`.")
        o.open("package struct \(name): ProtoMessage {")
        o.line("package static let protoMessageName = \"\(m.fullName)\"")
        o.line()
        // Stored properties and accessors.
        for f in m.fields where realOneof(f) == nil {
            let c = codec(f)
            if hasPresence(f) {
                let def = proto2Default(f, c)
                o.line("/// `\(f.name)` = \(f.number); `has\(upperCamel(f.name))` tells whether it was set.")
                o.line("package var \(declProp(f)): \(c.swiftType) {")
                o.line("    get { self.\(declStorage(f)) ?? \(def) }")
                o.line("    set { self.\(declStorage(f)) = newValue }")
                o.line("}")
                o.line("package var has\(upperCamel(f.name)): Bool { self.\(declStorage(f)) != nil }")
                o.line("package mutating func clear\(upperCamel(f.name))() { self.\(declStorage(f)) = nil }")
                o.line("package var \(declStorage(f)): \(c.swiftType)? = nil")
            } else {
                let def = f.isMap ? "[:]" : f.label == .repeated ? "[]" : c.defaultValue
                o.line("/// `\(f.name)` = \(f.number)")
                o.line("package var \(declProp(f)): \(swiftFieldType(f)) = \(def)")
            }
        }
        for (k, one) in m.oneofs.enumerated() where !one.synthetic {
            let members = m.fields.filter { realOneof($0) == k }
            o.line("/// The oneof `\(one.name)`; nil when no member is set.")
            o.line("package var \(declOneof(m, k)): \(oneofType(m, k))? = nil")
            for f in members {
                let c = codec(f)
                o.line("/// `\(f.name)` = \(f.number), a member of `\(one.name)`.")
                o.open("package var \(declProp(f)): \(c.swiftType) {")
                o.line(
                    "get { if case .\(declProp(f))(let v)? = \(oneofProp(m, k)) { return v }; return \(c.defaultValue) }"
                )
                o.line("set { \(oneofProp(m, k)) = .\(declProp(f))(newValue) }")
                o.close()
            }
        }
        o.line("package var unknownFields: [UInt8] = []")
        o.line()
        o.line("package init() {}")
        for (k, one) in m.oneofs.enumerated() where !one.synthetic {
            o.line()
            o.open("package enum \(oneofType(m, k)): Sendable, Equatable {")
            for f in m.fields where realOneof(f) == k {
                o.line("case \(declProp(f))(\(codec(f).swiftType))")
            }
            o.close()
        }
        for e in m.enums { emitEnum(&o, e) }
        for n in m.nested { emitMessage(&o, n) }
        emitDecode(&o, m)
        emitSize(&o, m)
        emitEncode(&o, m)
        if wkt == "Timestamp" {
            emitTimestampJSON(&o)
        } else if wkt.hasSuffix("Value"), m.fields.count == 1, m.fields[0].name == "value" {
            emitWrapperJSON(&o, m)
        } else {
            emitEncodeJSON(&o, m)
            emitDecodeJSON(&o, m)
        }
        o.close()
    }

    // MARK: Binary decoding

    func emitDecode(_ o: inout Out, _ m: MessageDef) {
        o.line()
        o.open("package mutating func _protoDecode(from r: inout ProtoReader) throws(ProtoDecodingError) {")
        o.open("while true {")
        o.line("let tag = try r.nextTag()")
        o.line("if tag == 0 { return }")
        o.open("switch tag {")
        for f in m.fields.sorted(by: { $0.number < $1.number }) {
            let c = codec(f)
            let t = tag(f.number, c.wireType)
            if f.isMap {
                emitMapDecode(&o, f)
            } else if let k = realOneof(f) {
                let prop = oneofProp(m, k)
                if case .message = c.kind {
                    o.open("case \(t):")
                    o.line("var v = \(c.defaultValue)")
                    o.line("if case .\(declProp(f))(let existing)? = \(prop) { v = existing }")
                    o.line("try r.readMessage(&v)")
                    o.line("\(prop) = .\(declProp(f))(v)")
                    o.indent -= 1
                } else {
                    o.line("case \(t): \(prop) = .\(declProp(f))(\(c.read("r", field: f.number)))")
                }
            } else if f.label == .repeated {
                switch c.kind {
                case .message:
                    o.line("case \(t): try r.readMessage(appendingTo: &\(fieldProp(f)))")
                default:
                    o.line("case \(t): \(fieldProp(f)).append(\(c.read("r", field: f.number)))")
                    if c.packable {
                        let reader: String
                        let convert: String
                        if case .scalar(let s) = c.kind {
                            reader = scalarInfo[s]!.packedReader!
                            convert = scalarInfo[s]!.packedConvert
                        } else {
                            reader = "readPackedVarints"
                            convert = "\(c.swiftType)(rawValue: Int32(truncatingIfNeeded: $0))"
                        }
                        o.line("case \(tag(f.number, 2)): try r.\(reader)(into: &\(fieldProp(f))) { \(convert) }")
                    }
                }
            } else if hasPresence(f) {
                if case .message = c.kind {
                    o.line("case \(t): try r.readMessage(into: &\(storage(f)))")
                } else {
                    o.line("case \(t): \(storage(f)) = \(c.read("r", field: f.number))")
                }
            } else {
                o.line("case \(t): \(fieldProp(f)) = \(c.read("r", field: f.number))")
            }
        }
        o.open("default:")
        let numbers = m.fields.map { String($0.number) }
        if numbers.isEmpty {
            o.line("try r.skipField(tag: tag, into: &unknownFields)")
        } else {
            o.line("switch tag >> 3 {")
            o.line("case \(numbers.joined(separator: ", ")): throw r.wrongWireType(tag)")
            o.line("default: try r.skipField(tag: tag, into: &unknownFields)")
            o.line("}")
        }
        o.indent -= 1
        o.close()
        o.close()
        o.close()
    }

    func emitMapDecode(_ o: inout Out, _ f: FieldDef) {
        let (k, v) = mapTypes(f)
        o.open("case \(tag(f.number, 2)):")
        o.line("var sub = try r.subReader()")
        o.line("var key: \(k.swiftType) = \(k.defaultValue)")
        o.line("var value: \(v.swiftType) = \(v.defaultValue)")
        o.open("while true {")
        o.line("let t = try sub.nextTag()")
        o.line("if t == 0 { break }")
        o.open("switch t {")
        o.line("case \(tag(1, k.wireType)): key = \(k.read("sub", field: 1))")
        if case .message = v.kind {
            o.line("case \(tag(2, 2)): try sub.readMessage(&value)")
        } else {
            o.line("case \(tag(2, v.wireType)): value = \(v.read("sub", field: 2))")
        }
        o.line("case 1 << 3 ... (3 << 3) - 1: throw sub.wrongWireType(t)")
        o.line("default: try sub.skipValue(tag: t)")
        o.close()
        o.close()
        o.line("\(fieldProp(f))[key] = value")
        o.indent -= 1
    }

    // MARK: Binary encoding

    func tagSize(_ f: FieldDef) -> Int { varintSize(f.number << 3) }

    func emitSize(_ o: inout Out, _ m: MessageDef) {
        o.line()
        o.open("package func _protoEncodedSize() -> Int {")
        if m.fields.isEmpty {
            o.line("unknownFields.count")
            o.close()
            return
        }
        o.line("var n = unknownFields.count")
        for f in m.fields.sorted(by: { $0.number < $1.number }) {
            let c = codec(f)
            let ts = tagSize(f)
            if f.isMap {
                let (kc, vc) = mapTypes(f)
                // Bind only what the size depends on (fixed-size keys/values need no binding).
                let kName = kc.fixedSize == nil ? "k" : "_"
                let vName = vc.fixedSize == nil ? "v" : "_"
                o.open("for (\(kName), \(vName)) in \(fieldProp(f)) {")
                o.line("let entry = \(2) + \(kc.size("k")) + \(vc.size("v"))")
                o.line("n += \(ts) + ProtoSize.lengthDelimited(entry)")
                o.close()
            } else if let k = realOneof(f) {
                let bind = c.fixedSize == nil ? "(let v)" : ""
                o.line("if case .\(declProp(f))\(bind)? = \(oneofProp(m, k)) { n += \(ts) + \(c.size("v")) }")
            } else if f.label == .repeated {
                if isPacked(f) {
                    o.open("if !\(fieldProp(f)).isEmpty {")
                    if let fs = c.fixedSize {
                        o.line("n += \(ts) + ProtoSize.lengthDelimited(\(fs) * \(fieldProp(f)).count)")
                    } else {
                        o.line("var p = 0")
                        o.line("for v in \(fieldProp(f)) { p += \(c.size("v")) }")
                        o.line("n += \(ts) + ProtoSize.lengthDelimited(p)")
                    }
                    o.close()
                } else if let fs = c.fixedSize {
                    o.line("n += \(ts + fs) * \(fieldProp(f)).count")
                } else {
                    o.line("for v in \(fieldProp(f)) { n += \(ts) + \(c.size("v")) }")
                }
            } else if hasPresence(f) {
                if c.fixedSize == nil {
                    o.line("if let v = \(storage(f)) { n += \(ts) + \(c.size("v")) }")
                } else {
                    o.line("if \(storage(f)) != nil { n += \(ts + c.fixedSize!) }")
                }
            } else {
                o.line("if \(c.isNonDefault(fieldProp(f))) { n += \(ts) + \(c.size(fieldProp(f))) }")
            }
        }
        o.line("return n")
        o.close()
    }

    func emitEncode(_ o: inout Out, _ m: MessageDef) {
        o.line()
        o.open("package func _protoEncode(to w: inout ProtoWriter) {")
        o.line("w.writeRaw(unknownFields)")
        for f in m.fields.sorted(by: { $0.number > $1.number }) {
            let c = codec(f)
            let t = tag(f.number, c.wireType)
            if f.isMap {
                let (kc, vc) = mapTypes(f)
                o.open("for (k, v) in \(fieldProp(f)) {")
                o.line("let end = w.position")
                o.line("\(vc.write("w", "v")); w.writeTag(\(tag(2, vc.wireType)))")
                o.line("\(kc.write("w", "k")); w.writeTag(\(tag(1, kc.wireType)))")
                o.line("w.writeLength(since: end); w.writeTag(\(tag(f.number, 2)))")
                o.close()
            } else if let k = realOneof(f) {
                o.line(
                    "if case .\(declProp(f))(let v)? = \(oneofProp(m, k)) { \(c.write("w", "v")); w.writeTag(\(t)) }"
                )
            } else if f.label == .repeated {
                if isPacked(f) {
                    o.open("if !\(fieldProp(f)).isEmpty {")
                    o.line("let end = w.position")
                    o.line("for v in \(fieldProp(f)).reversed() { \(c.write("w", "v")) }")
                    o.line("w.writeLength(since: end); w.writeTag(\(tag(f.number, 2)))")
                    o.close()
                } else {
                    o.line("for v in \(fieldProp(f)).reversed() { \(c.write("w", "v")); w.writeTag(\(t)) }")
                }
            } else if hasPresence(f) {
                o.line("if let v = \(storage(f)) { \(c.write("w", "v")); w.writeTag(\(t)) }")
            } else {
                o.line("if \(c.isNonDefault(fieldProp(f))) { \(c.write("w", fieldProp(f))); w.writeTag(\(t)) }")
            }
        }
        o.close()
    }

    // MARK: JSON

    func mapKeyText(_ kc: ValueCodec, _ x: String) -> String {
        if case .scalar(let t) = kc.kind, t == "string" { return x }
        return "String(\(x))"
    }

    func mapKeyParse(_ kc: ValueCodec, _ x: String, _ field: String) -> String {
        guard case .scalar(let t) = kc.kind else { return x }
        switch t {
        case "string": return x
        case "bool": return "try ProtoJSONValue.mapKeyBool(\(x), \"\(field)\")"
        default: return "try ProtoJSONValue.mapKey(\(x), \"\(field)\", as: \(kc.swiftType).self)"
        }
    }

    func emitEncodeJSON(_ o: inout Out, _ m: MessageDef) {
        o.line()
        o.open("package func _protoEncodeJSON(to w: inout ProtoJSONWriter) {")
        o.line("w.beginObject()")
        for f in m.fields.sorted(by: { $0.number < $1.number }) {
            let c = codec(f)
            let key =
                jsonName(f.name) == f.name
                ? "w.key(\"\(f.name)\")" : "w.key(\"\(jsonName(f.name))\", proto: \"\(f.name)\")"
            // Fields without presence are omitted at their default unless the options ask for them.
            let always = "w.options.alwaysPrintFieldsWithoutPresence || "
            if f.isMap {
                let (kc, vc) = mapTypes(f)
                o.open("if \(always)!\(fieldProp(f)).isEmpty {")
                o.line("\(key); w.beginObject()")
                o.line(
                    "for (k, v) in \(fieldProp(f)).sorted(by: { $0.key < $1.key }) { w.mapKey(\(mapKeyText(kc, "k"))); \(vc.jsonWrite("w", "v")) }"
                )
                o.line("w.endObject()")
                o.close()
            } else if let k = realOneof(f) {
                o.line("if case .\(declProp(f))(let v)? = \(oneofProp(m, k)) { \(key); \(c.jsonWrite("w", "v")) }")
            } else if f.label == .repeated {
                o.open("if \(always)!\(fieldProp(f)).isEmpty {")
                o.line("\(key); w.beginArray()")
                o.line("for v in \(fieldProp(f)) { \(c.jsonWrite("w", "v")) }")
                o.line("w.endArray()")
                o.close()
            } else if hasPresence(f) {
                o.line("if let v = \(storage(f)) { \(key); \(c.jsonWrite("w", "v")) }")
            } else {
                o.line("if \(always)\(c.isNonDefault(fieldProp(f))) { \(key); \(c.jsonWrite("w", fieldProp(f))) }")
            }
        }
        o.line("w.endObject()")
        o.close()
    }

    func emitDecodeJSON(_ o: inout Out, _ m: MessageDef) {
        o.line()
        o.open("package mutating func _protoDecodeJSON(from value: ProtoJSONValue) throws(ProtoJSONError) {")
        o.open("for member in try value.objectMembers(Self.protoMessageName) {")
        if !m.fields.isEmpty { o.line("let v = member.value") }
        o.open("switch member.key {")
        for f in m.fields.sorted(by: { $0.number < $1.number }) {
            let c = codec(f)
            let labels = jsonName(f.name) == f.name ? "\"\(f.name)\"" : "\"\(jsonName(f.name))\", \"\(f.name)\""
            let fname = f.name
            o.open("case \(labels):")
            if f.isMap {
                let (kc, vc) = mapTypes(f)
                o.line("var d: \(swiftFieldType(f)) = [:]")
                o.open("if !v.isNull {")
                o.line(
                    "for e in try v.objectMembers(\"\(fname)\") { d[\(mapKeyParse(kc, "e.key", fname))] = \(vc.jsonRead("e.value", fname)) }"
                )
                o.close()
                o.line("\(fieldProp(f)) = d")
            } else if let k = realOneof(f) {
                o.line("if !v.isNull { \(oneofProp(m, k)) = .\(declProp(f))(\(c.jsonRead("v", fname))) }")
            } else if f.label == .repeated {
                o.line("var a: \(swiftFieldType(f)) = []")
                o.open("if !v.isNull {")
                o.line("for e in try v.arrayElements(\"\(fname)\") { a.append(\(c.jsonRead("e", fname))) }")
                o.close()
                o.line("\(fieldProp(f)) = a")
            } else if hasPresence(f) {
                o.line("\(storage(f)) = v.isNull ? nil : \(c.jsonRead("v", fname))")
            } else {
                o.line("\(fieldProp(f)) = v.isNull ? \(c.defaultValue) : \(c.jsonRead("v", fname))")
            }
            o.indent -= 1
        }
        o.line("default: throw .unknownField(message: Self.protoMessageName, name: member.key)")
        o.close()
        o.close()
        o.close()
    }

    func emitTimestampJSON(_ o: inout Out) {
        o.line()
        o.open("package func _protoEncodeJSON(to w: inout ProtoJSONWriter) {")
        o.line(
            "// Out-of-range values have no RFC 3339 form; they are written as a plain string that decoding rejects."
        )
        o.line(
            "let text = (try? ProtoTimestampText.format(seconds: seconds, nanos: nanos, field: Self.protoMessageName)) ?? \"invalid:\\(seconds).\\(nanos)\""
        )
        o.line("w.string(text)")
        o.close()
        o.line()
        o.open("package mutating func _protoDecodeJSON(from value: ProtoJSONValue) throws(ProtoJSONError) {")
        o.line(
            "(seconds, nanos) = try ProtoTimestampText.parse(try value.string(Self.protoMessageName), field: Self.protoMessageName)"
        )
        o.close()
    }

    func emitWrapperJSON(_ o: inout Out, _ m: MessageDef) {
        let c = codec(m.fields[0])
        o.line()
        o.open("package func _protoEncodeJSON(to w: inout ProtoJSONWriter) {")
        o.line(c.jsonWrite("w", "value"))
        o.close()
        o.line()
        o.open("package mutating func _protoDecodeJSON(from value: ProtoJSONValue) throws(ProtoJSONError) {")
        o.line("self.value = \(c.jsonRead("value", "value"))")
        o.close()
    }

    // MARK: Services

    func emitService(_ o: inout Out, _ s: ServiceDef) {
        let prefix = file.package.split(separator: ".").map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined(
            separator: "_"
        )
        let name = (prefix.isEmpty ? "" : prefix + "_") + s.name
        o.line()
        o.line("/// The service `\(s.fullName)`: its name and the gRPC paths of its methods.")
        o.open("package enum \(name) {")
        o.line("package static let serviceName = \"\(s.fullName)\"")
        o.line()
        func caseName(_ m: MethodDef) -> String {
            let l = lowerCamel(m.name)
            return escaped(l.prefix(1).lowercased() + l.dropFirst())
        }
        o.open("package enum Method: String, CaseIterable, Sendable {")
        for m in s.methods { o.line("case \(caseName(m)) = \"\(m.name)\"") }
        o.line()
        o.line("/// The HTTP/2 `:path` of the method, e.g. \"/\(s.fullName)/\(s.methods.first?.name ?? "")\".")
        o.open("package var path: String {")
        o.open("switch self {")
        for m in s.methods { o.line("case .\(caseName(m)): \"/\(s.fullName)/\(m.name)\"") }
        o.close()
        o.close()
        o.line()
        o.line("/// The method for an HTTP/2 `:path`, if it names one of this service's methods.")
        o.open("package init?(path: String) {")
        o.open("switch path {")
        for m in s.methods { o.line("case \"/\(s.fullName)/\(m.name)\": self = .\(caseName(m))") }
        o.line("default: return nil")
        o.close()
        o.close()
        o.line()
        o.line("/// The fully-qualified method name, e.g. \"\(s.fullName).\(s.methods.first?.name ?? "")\".")
        o.line("package var fullName: String { \"\(s.fullName).\" + rawValue }")
        o.line()
        o.open("package var isClientStreaming: Bool {")
        o.open("switch self {")
        for m in s.methods { o.line("case .\(caseName(m)): \(m.clientStreaming)") }
        o.close()
        o.close()
        o.line()
        o.open("package var isServerStreaming: Bool {")
        o.open("switch self {")
        for m in s.methods { o.line("case .\(caseName(m)): \(m.serverStreaming)") }
        o.close()
        o.close()
        o.line()
        o.open("package var inputType: any ProtoMessage.Type {")
        o.open("switch self {")
        for m in s.methods { o.line("case .\(caseName(m)): \(swiftName(m.resolvedInput)).self") }
        o.close()
        o.close()
        o.line()
        o.open("package var outputType: any ProtoMessage.Type {")
        o.open("switch self {")
        for m in s.methods { o.line("case .\(caseName(m)): \(swiftName(m.resolvedOutput)).self") }
        o.close()
        o.close()
        o.close()
        o.close()
    }
}
