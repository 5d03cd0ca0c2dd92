// Resolves type names across files and builds each file's FileDescriptorProto bytes, laid out as
// protoc lays them out (protoc --descriptor_set_out without source info), so reflection clients
// see the same descriptors protoc would give them.

let scalarTypes: [String: Int] = [
    "double": 1, "float": 2, "int64": 3, "uint64": 4, "int32": 5, "fixed64": 6, "fixed32": 7, "bool": 8,
    "string": 9, "bytes": 12, "uint32": 13, "sfixed32": 15, "sfixed64": 16, "sint32": 17, "sint64": 18,
]
let typeMessage = 11
let typeEnum = 14

enum SymbolKind {
    case message(MessageDef)
    case enumeration(EnumDef)
}

final class SymbolTable {
    var symbols: [String: SymbolKind] = [:]
    var packageOf: [String: String] = [:]  // symbol full name -> its file's package
    var fileOf: [String: ProtoFile] = [:]
    var extensions: [String: FieldDef] = [:]  // full name -> extension field

    func add(file: ProtoFile) {
        func addMessage(_ m: MessageDef) {
            symbols[m.fullName] = .message(m)
            packageOf[m.fullName] = file.package
            fileOf[m.fullName] = file
            for e in m.enums {
                packageOf[e.fullName] = file.package
                fileOf[e.fullName] = file
            }
            m.nested.forEach(addMessage)
            for e in m.enums { symbols[e.fullName] = .enumeration(e) }
            for x in m.extensions { extensions[m.fullName + "." + x.name] = x }
        }
        file.messages.forEach(addMessage)
        for e in file.enums {
            symbols[e.fullName] = .enumeration(e)
            packageOf[e.fullName] = file.package
            fileOf[e.fullName] = file
        }
        for x in file.extensions { extensions[(file.package.isEmpty ? "" : file.package + ".") + x.name] = x }
    }

    /// Protobuf scoping: a leading dot is absolute; otherwise try the innermost scope outwards.
    func resolve(_ name: String, scope: String) -> String? {
        if name.hasPrefix(".") { return symbols[String(name.dropFirst())] != nil ? String(name.dropFirst()) : nil }
        var parts = scope.split(separator: ".").map(String.init)
        while true {
            let candidate = (parts + [name]).joined(separator: ".")
            if symbols[candidate] != nil { return candidate }
            if parts.isEmpty { return nil }
            parts.removeLast()
        }
    }

    func resolveExtension(_ name: String, scope: String) -> FieldDef? {
        var parts = scope.split(separator: ".").map(String.init)
        while true {
            let candidate = (parts + [name]).joined(separator: ".")
            if let f = extensions[candidate] { return f }
            if parts.isEmpty { return nil }
            parts.removeLast()
        }
    }

    func resolveField(_ f: FieldDef, file: String) throws {
        func one(_ type: String) throws -> (String, Bool) {
            if scalarTypes[type] != nil { return ("", false) }
            guard let full = resolve(type, scope: f.scope) else {
                throw ParseError(file: file, line: 0, message: "unknown type \(type) for field \(f.name)")
            }
            if case .enumeration = symbols[full]! { return ("." + full, true) }
            return ("." + full, false)
        }
        if let entry = f.mapEntry {
            try resolveField(entry.fields[0], file: file)
            try resolveField(entry.fields[1], file: file)
            f.resolvedType = "." + entry.fullName
            return
        }
        (f.resolvedType, f.isEnumType) = try one(f.typeName)
    }

    func resolveAll(_ file: ProtoFile) throws {
        func walk(_ m: MessageDef) throws {
            for f in m.fields { try resolveField(f, file: file.name) }
            for x in m.extensions { try resolveField(x, file: file.name) }
            try m.nested.forEach(walk)
        }
        try file.messages.forEach(walk)
        for x in file.extensions {
            try resolveField(x, file: file.name)
            guard let e = resolve(x.extendee!, scope: file.package) else {
                throw ParseError(file: file.name, line: 0, message: "unknown extendee \(x.extendee!)")
            }
            x.extendee = "." + e
        }
        for s in file.services {
            for k in s.methods.indices {
                guard let i = resolve(s.methods[k].inputType, scope: file.package),
                    let o = resolve(s.methods[k].outputType, scope: file.package)
                else {
                    throw ParseError(
                        file: file.name,
                        line: 0,
                        message: "unknown type in \(s.name).\(s.methods[k].name)"
                    )
                }
                s.methods[k].resolvedInput = "." + i
                s.methods[k].resolvedOutput = "." + o
            }
        }
    }
}

/// A forward protobuf writer, enough to build descriptors.
struct PBWriter {
    var bytes: [UInt8] = []
    mutating func varint(_ v: UInt64) {
        var v = v
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }
    mutating func tag(_ n: Int, _ wt: Int) { varint(UInt64(n << 3 | wt)) }
    mutating func int(_ n: Int, _ v: Int) {
        tag(n, 0)
        varint(UInt64(bitPattern: Int64(v)))
    }
    mutating func bool(_ n: Int, _ v: Bool) {
        tag(n, 0)
        varint(v ? 1 : 0)
    }
    mutating func string(_ n: Int, _ s: String) { data(n, Array(s.utf8)) }
    mutating func data(_ n: Int, _ b: [UInt8]) {
        tag(n, 2)
        varint(UInt64(b.count))
        bytes += b
    }
}

/// protoc's lowerCamel JSON name: drop underscores, upper-case the letter after each.
func jsonName(_ name: String) -> String {
    var out = ""
    var upper = false
    for c in name {
        if c == "_" {
            upper = true
        } else if upper {
            out += c.uppercased()
            upper = false
        } else {
            out.append(c)
        }
    }
    return out
}

struct DescriptorBuilder {
    let table: SymbolTable
    let file: ProtoFile

    /// Options message bytes: known options by number, custom `(ext)` options by extension number.
    func options(_ opts: [ParsedOption], known: [String: (Int, String)], scope: String) throws -> [UInt8]? {
        var entries: [(Int, [UInt8])] = []
        for o in opts where o.name != "default" && o.name != "json_name" {
            var w = PBWriter()
            if o.name.hasPrefix("(") {
                let extName = String(o.name.dropFirst().dropLast())
                guard let ext = table.resolveExtension(extName, scope: scope) else {
                    throw ParseError(file: file.name, line: 0, message: "unknown custom option \(o.name)")
                }
                try encodeOption(&w, ext.number, ext.typeName, o.value)
                entries.append((ext.number, w.bytes))
            } else {
                guard let (n, type) = known[o.name] else {
                    throw ParseError(file: file.name, line: 0, message: "unknown option \(o.name)")
                }
                try encodeOption(&w, n, type, o.value)
                entries.append((n, w.bytes))
            }
        }
        if entries.isEmpty { return nil }
        return entries.sorted { $0.0 < $1.0 }.flatMap { $0.1 }
    }

    func encodeOption(_ w: inout PBWriter, _ n: Int, _ type: String, _ v: OptionValue) throws {
        switch type {
        case "bool": w.bool(n, v.text == "true")
        case "string": w.string(n, v.text)
        case "int32", "int64", "uint32", "uint64": w.int(n, Int(v.text)!)
        default:
            // Enum-typed standard options, by value name.
            let enums: [String: Int] = [
                "SPEED": 1, "CODE_SIZE": 2, "LITE_RUNTIME": 3, "STRING": 0, "CORD": 1, "STRING_PIECE": 2,
                "JS_NORMAL": 0, "JS_STRING": 1, "JS_NUMBER": 2, "IDEMPOTENCY_UNKNOWN": 0, "NO_SIDE_EFFECTS": 1,
                "IDEMPOTENT": 2,
            ]
            guard let e = enums[v.text] else {
                throw ParseError(file: file.name, line: 0, message: "bad option value \(v.text)")
            }
            w.int(n, e)
        }
    }

    static let fileOptions: [String: (Int, String)] = [
        "java_package": (1, "string"), "java_outer_classname": (8, "string"), "java_multiple_files": (10, "bool"),
        "java_generate_equals_and_hash": (20, "bool"), "java_string_check_utf8": (27, "bool"),
        "optimize_for": (9, "enum"), "go_package": (11, "string"), "cc_generic_services": (16, "bool"),
        "java_generic_services": (17, "bool"), "py_generic_services": (18, "bool"),
        "php_generic_services": (42, "bool"),
        "deprecated": (23, "bool"), "cc_enable_arenas": (31, "bool"), "objc_class_prefix": (36, "string"),
        "csharp_namespace": (37, "string"), "swift_prefix": (39, "string"), "php_class_prefix": (40, "string"),
        "php_namespace": (41, "string"), "php_metadata_namespace": (44, "string"), "ruby_package": (45, "string"),
    ]
    static let messageOptions: [String: (Int, String)] = [
        "message_set_wire_format": (1, "bool"), "no_standard_descriptor_accessor": (2, "bool"),
        "deprecated": (3, "bool"), "map_entry": (7, "bool"),
    ]
    static let fieldOptions: [String: (Int, String)] = [
        "ctype": (1, "enum"), "packed": (2, "bool"), "deprecated": (3, "bool"), "lazy": (5, "bool"),
        "jstype": (6, "enum"), "weak": (10, "bool"), "unverified_lazy": (15, "bool"),
    ]
    static let enumOptions: [String: (Int, String)] = ["allow_alias": (2, "bool"), "deprecated": (3, "bool")]
    static let enumValueOptions: [String: (Int, String)] = ["deprecated": (1, "bool")]
    static let serviceOptions: [String: (Int, String)] = ["deprecated": (33, "bool")]
    static let methodOptions: [String: (Int, String)] = ["deprecated": (33, "bool"), "idempotency_level": (34, "enum")]

    func field(_ f: FieldDef, scope: String) throws -> [UInt8] {
        var w = PBWriter()
        w.string(1, f.name)
        if let e = f.extendee { w.string(2, e) }
        w.int(3, f.number)
        let label: Int =
            switch f.label {
            case .none, .optional: 1
            case .required: 2
            case .repeated: 3
            }
        w.int(4, label)
        if let s = scalarTypes[f.typeName], f.mapEntry == nil {
            w.int(5, s)
        } else {
            w.int(5, f.isEnumType ? typeEnum : typeMessage)
            w.string(6, f.resolvedType)
        }
        if let d = f.defaultOption { w.string(7, d.text) }
        if let o = try options(f.options, known: DescriptorBuilder.fieldOptions, scope: scope) { w.data(8, o) }
        if let k = f.oneofIndex { w.int(9, k) }
        w.string(10, jsonName(f.name))
        if f.proto3Optional { w.bool(17, true) }
        return w.bytes
    }

    func enumeration(_ e: EnumDef, scope: String) throws -> [UInt8] {
        var w = PBWriter()
        w.string(1, e.name)
        for v in e.values {
            var vw = PBWriter()
            vw.string(1, v.name)
            vw.int(2, v.number)
            if let o = try options(v.options, known: DescriptorBuilder.enumValueOptions, scope: scope) { vw.data(3, o) }
            w.data(2, vw.bytes)
        }
        if let o = try options(e.options, known: DescriptorBuilder.enumOptions, scope: scope) { w.data(3, o) }
        for (a, b) in e.reservedRanges {
            var r = PBWriter()
            r.int(1, a)
            r.int(2, b)
            w.data(4, r.bytes)
        }
        for n in e.reservedNames { w.string(5, n) }
        return w.bytes
    }

    func message(_ m: MessageDef) throws -> [UInt8] {
        var w = PBWriter()
        w.string(1, m.name)
        for f in m.fields { w.data(2, try field(f, scope: m.fullName)) }
        for n in m.nested { w.data(3, try message(n)) }
        for e in m.enums { w.data(4, try enumeration(e, scope: m.fullName)) }
        for (a, b) in m.extensionRanges {
            var r = PBWriter()
            r.int(1, a)
            r.int(2, b)
            w.data(5, r.bytes)
        }
        for x in m.extensions { w.data(6, try field(x, scope: m.fullName)) }
        if let o = try options(m.options, known: DescriptorBuilder.messageOptions, scope: m.fullName) { w.data(7, o) }
        for o in m.oneofs {
            var ow = PBWriter()
            ow.string(1, o.name)
            w.data(8, ow.bytes)
        }
        for (a, b) in m.reservedRanges {
            var r = PBWriter()
            r.int(1, a)
            r.int(2, b)
            w.data(9, r.bytes)
        }
        for n in m.reservedNames { w.string(10, n) }
        return w.bytes
    }

    func build() throws -> [UInt8] {
        var w = PBWriter()
        w.string(1, file.name)
        if !file.package.isEmpty { w.string(2, file.package) }
        for d in file.imports { w.string(3, d) }
        for m in file.messages { w.data(4, try message(m)) }
        for e in file.enums { w.data(5, try enumeration(e, scope: file.package)) }
        for s in file.services {
            var sw = PBWriter()
            sw.string(1, s.name)
            for m in s.methods {
                var mw = PBWriter()
                mw.string(1, m.name)
                mw.string(2, m.resolvedInput)
                mw.string(3, m.resolvedOutput)
                if let o = try options(m.options, known: DescriptorBuilder.methodOptions, scope: file.package) {
                    mw.data(4, o)
                } else if m.hasBody {
                    mw.data(4, [])
                }
                if m.clientStreaming { mw.bool(5, true) }
                if m.serverStreaming { mw.bool(6, true) }
                sw.data(2, mw.bytes)
            }
            if let o = try options(s.options, known: DescriptorBuilder.serviceOptions, scope: file.package) {
                sw.data(3, o)
            }
            w.data(6, sw.bytes)
        }
        for x in file.extensions { w.data(7, try field(x, scope: file.package)) }
        if let o = try options(file.options, known: DescriptorBuilder.fileOptions, scope: file.package) { w.data(8, o) }
        if file.isProto3 { w.string(12, "proto3") }
        return w.bytes
    }
}
