// A parser for the proto2/proto3 syntax our .proto files and the well-known types use:
// package, import, option, message (fields, nested messages and enums, oneof, map, reserved,
// extensions ranges, options), enum, service, and extend blocks.

struct ParseError: Error, CustomStringConvertible {
    var file: String
    var line: Int
    var message: String
    var description: String { "\(file):\(line): \(message)" }
}

enum Token: Equatable {
    case ident(String)  // identifiers, possibly dotted (foo.bar, .foo.Bar)
    case number(String)
    case string(String)
    case symbol(Character)
}

struct Lexer {
    let chars: [Character]
    let file: String
    var i = 0
    var line = 1

    init(_ text: String, file: String) {
        self.chars = Array(text)
        self.file = file
    }

    mutating func skipSpaceAndComments() {
        while i < chars.count {
            let c = chars[i]
            if c == "\n" {
                line += 1
                i += 1
            } else if c.isWhitespace {
                i += 1
            } else if c == "/", i + 1 < chars.count, chars[i + 1] == "/" {
                while i < chars.count, chars[i] != "\n" { i += 1 }
            } else if c == "/", i + 1 < chars.count, chars[i + 1] == "*" {
                i += 2
                while i + 1 < chars.count, !(chars[i] == "*" && chars[i + 1] == "/") {
                    if chars[i] == "\n" { line += 1 }
                    i += 1
                }
                i += 2
            } else {
                return
            }
        }
    }

    mutating func tokens() throws -> [(Token, Int)] {
        var out: [(Token, Int)] = []
        while true {
            skipSpaceAndComments()
            guard i < chars.count else { return out }
            let c = chars[i]
            if c.isLetter || c == "_"
                || (c == "." && i + 1 < chars.count && (chars[i + 1].isLetter || chars[i + 1] == "_"))
            {
                var s = ""
                while i < chars.count, chars[i].isLetter || chars[i].isNumber || chars[i] == "_" || chars[i] == "." {
                    s.append(chars[i])
                    i += 1
                }
                out.append((.ident(s), line))
            } else if c.isNumber || (c == "-" && i + 1 < chars.count && chars[i + 1].isNumber) {
                var s = String(c)
                i += 1
                while i < chars.count, chars[i].isLetter || chars[i].isNumber || chars[i] == "." || chars[i] == "_" {
                    s.append(chars[i])
                    i += 1
                }
                out.append((.number(s), line))
            } else if c == "\"" || c == "'" {
                let q = c
                i += 1
                var s = ""
                while i < chars.count, chars[i] != q {
                    if chars[i] == "\\", i + 1 < chars.count {
                        i += 1
                        switch chars[i] {
                        case "n": s.append("\n")
                        case "t": s.append("\t")
                        case "\\": s.append("\\")
                        case "\"": s.append("\"")
                        case "'": s.append("'")
                        default: s.append(chars[i])
                        }
                    } else {
                        s.append(chars[i])
                    }
                    i += 1
                }
                i += 1
                out.append((.string(s), line))
            } else {
                out.append((.symbol(c), line))
                i += 1
            }
        }
    }
}

// MARK: AST

struct OptionValue {
    enum Kind { case identifier, number, string, bool }
    var kind: Kind
    var text: String
}

struct ParsedOption {
    var name: String  // "deprecated" or "(alpha_field)"
    var value: OptionValue
}

enum Label { case none, optional, required, repeated }

final class FieldDef {
    var name: String
    var number: Int
    var label: Label
    var typeName: String  // as written: "string", "BytecodeImage", ".google.protobuf.Timestamp"
    var options: [ParsedOption]
    var oneofIndex: Int?  // index into message.oneofs (real or synthetic)
    var mapKey: String?  // for map fields: the key and value type names as written
    var mapValue: String?
    var extendee: String?  // for extension fields
    var scope: String  // full name of the enclosing scope, for type resolution
    // Filled in by resolution:
    var resolvedType: String = ""  // ".pkg.Name" for messages/enums, "" for scalars
    var isEnumType = false
    var mapEntry: MessageDef?
    var proto3Optional = false

    init(name: String, number: Int, label: Label, typeName: String, options: [ParsedOption], scope: String) {
        self.name = name
        self.number = number
        self.label = label
        self.typeName = typeName
        self.options = options
        self.scope = scope
    }

    var isMap: Bool { mapKey != nil }
    var defaultOption: OptionValue? { options.first { $0.name == "default" }?.value }
}

struct OneofDef {
    var name: String
    var synthetic: Bool
}

final class EnumDef {
    var name: String
    var fullName: String
    var values: [(name: String, number: Int, options: [ParsedOption])] = []
    var options: [ParsedOption] = []
    var reservedRanges: [(Int, Int)] = []  // inclusive
    var reservedNames: [String] = []
    init(name: String, fullName: String) {
        self.name = name
        self.fullName = fullName
    }
}

final class MessageDef {
    var name: String
    var fullName: String
    var fields: [FieldDef] = []
    var nested: [MessageDef] = []
    var enums: [EnumDef] = []
    var oneofs: [OneofDef] = []
    var options: [ParsedOption] = []
    var reservedRanges: [(Int, Int)] = []  // end exclusive
    var reservedNames: [String] = []
    var extensionRanges: [(Int, Int)] = []  // end exclusive
    var extensions: [FieldDef] = []
    var isMapEntry = false
    init(name: String, fullName: String) {
        self.name = name
        self.fullName = fullName
    }
}

struct MethodDef {
    var name: String
    var inputType: String
    var outputType: String
    var clientStreaming: Bool
    var serverStreaming: Bool
    var options: [ParsedOption]
    var hasBody = false  // `{ ... }` after the rpc: protoc then records an (empty) options message
    var resolvedInput = ""
    var resolvedOutput = ""
}

final class ServiceDef {
    var name: String
    var fullName: String
    var methods: [MethodDef] = []
    var options: [ParsedOption] = []
    init(name: String, fullName: String) {
        self.name = name
        self.fullName = fullName
    }
}

final class ProtoFile {
    var name: String  // import path, e.g. "bpfman.proto"
    var syntax = "proto2"
    var package = ""
    var imports: [String] = []
    var options: [ParsedOption] = []
    var messages: [MessageDef] = []
    var enums: [EnumDef] = []
    var services: [ServiceDef] = []
    var extensions: [FieldDef] = []
    init(name: String) { self.name = name }
    var isProto3: Bool { syntax == "proto3" }
}

// MARK: Parser

struct Parser {
    var toks: [(Token, Int)]
    var i = 0
    let file: ProtoFile

    init(text: String, name: String) throws {
        var lexer = Lexer(text, file: name)
        toks = try lexer.tokens()
        file = ProtoFile(name: name)
    }

    func error(_ m: String) -> ParseError {
        ParseError(file: file.name, line: i < toks.count ? toks[i].1 : (toks.last?.1 ?? 0), message: m)
    }

    var peek: Token? { i < toks.count ? toks[i].0 : nil }

    mutating func next() throws -> Token {
        guard i < toks.count else { throw error("unexpected end of file") }
        defer { i += 1 }
        return toks[i].0
    }

    mutating func ident() throws -> String {
        guard case .ident(let s) = try next() else { throw error("expected an identifier") }
        return s
    }

    mutating func expect(_ c: Character) throws {
        guard try next() == .symbol(c) else { throw error("expected '\(c)'") }
    }

    mutating func accept(_ c: Character) -> Bool {
        if peek == .symbol(c) {
            i += 1
            return true
        }
        return false
    }

    mutating func acceptIdent(_ s: String) -> Bool {
        if peek == .ident(s) {
            i += 1
            return true
        }
        return false
    }

    mutating func number() throws -> Int {
        let t = try next()
        guard case .number(let s) = t else {
            if case .ident("max") = t { return 536_870_911 }
            throw error("expected a number")
        }
        if s.hasPrefix("0x") || s.hasPrefix("0X") { return Int(s.dropFirst(2), radix: 16)! }
        guard let v = Int(s) else { throw error("bad number \(s)") }
        return v
    }

    mutating func parse() throws -> ProtoFile {
        while let t = peek {
            switch t {
            case .ident("syntax"):
                i += 1
                try expect("=")
                guard case .string(let s) = try next() else { throw error("expected syntax string") }
                file.syntax = s
                try expect(";")
            case .ident("package"):
                i += 1
                file.package = try ident()
                try expect(";")
            case .ident("import"):
                i += 1
                _ = acceptIdent("public") || acceptIdent("weak")
                guard case .string(let s) = try next() else { throw error("expected import path") }
                file.imports.append(s)
                try expect(";")
            case .ident("option"):
                i += 1
                file.options.append(try optionStatement())
            case .ident("message"):
                i += 1
                file.messages.append(try message(scope: file.package))
            case .ident("enum"):
                i += 1
                file.enums.append(try enumeration(scope: file.package))
            case .ident("service"):
                i += 1
                file.services.append(try service())
            case .ident("extend"):
                i += 1
                file.extensions.append(contentsOf: try extend(scope: file.package))
            case .symbol(";"):
                i += 1
            default:
                throw error("unexpected token \(t)")
            }
        }
        return file
    }

    func qualify(_ scope: String, _ name: String) -> String { scope.isEmpty ? name : scope + "." + name }

    /// `name = value ;` after the `option` keyword.
    mutating func optionStatement() throws -> ParsedOption {
        let o = try optionBody()
        try expect(";")
        return o
    }

    mutating func optionName() throws -> String {
        if accept("(") {
            let n = try ident()
            try expect(")")
            var name = "(\(n))"
            if case .ident(let rest) = peek, rest.hasPrefix(".") {
                i += 1
                name += rest
            }
            return name
        }
        return try ident()
    }

    mutating func optionBody() throws -> ParsedOption {
        let name = try optionName()
        try expect("=")
        return ParsedOption(name: name, value: try optionValue())
    }

    mutating func optionValue() throws -> OptionValue {
        switch try next() {
        case .ident("true"): return OptionValue(kind: .bool, text: "true")
        case .ident("false"): return OptionValue(kind: .bool, text: "false")
        case .ident(let s): return OptionValue(kind: .identifier, text: s)
        case .number(let s): return OptionValue(kind: .number, text: s)
        case .string(var s):
            while case .string(let more) = peek {  // adjacent literals concatenate
                s += more
                i += 1
            }
            return OptionValue(kind: .string, text: s)
        default: throw error("unsupported option value")
        }
    }

    /// `[a = 1, (b) = true]`, or nothing.
    mutating func fieldOptions() throws -> [ParsedOption] {
        var out: [ParsedOption] = []
        if accept("[") {
            repeat { out.append(try optionBody()) } while accept(",")
            try expect("]")
        }
        return out
    }

    mutating func ranges(maxInclusive: Bool) throws -> [(Int, Int)] {
        var out: [(Int, Int)] = []
        repeat {
            let a = try number()
            var b = a
            if acceptIdent("to") { b = try number() }
            out.append((a, maxInclusive ? b : b + 1))
        } while accept(",")
        try expect(";")
        return out
    }

    mutating func reservedNames() throws -> [String] {
        var out: [String] = []
        repeat {
            guard case .string(let s) = try next() else { throw error("expected a reserved name") }
            out.append(s)
        } while accept(",")
        try expect(";")
        return out
    }

    mutating func message(scope: String) throws -> MessageDef {
        let name = try ident()
        let m = MessageDef(name: name, fullName: qualify(scope, name))
        try expect("{")
        while !accept("}") {
            guard let t = peek else { throw error("unterminated message") }
            switch t {
            case .symbol(";"): i += 1
            case .ident("option"):
                i += 1
                m.options.append(try optionStatement())
            case .ident("message"):
                i += 1
                let n = try message(scope: m.fullName)
                m.nested.append(n)
            case .ident("enum"):
                i += 1
                m.enums.append(try enumeration(scope: m.fullName))
            case .ident("extend"):
                i += 1
                m.extensions.append(contentsOf: try extend(scope: m.fullName))
            case .ident("reserved"):
                i += 1
                if case .string = peek {
                    m.reservedNames += try reservedNames()
                } else {
                    m.reservedRanges += try ranges(maxInclusive: false)
                }
            case .ident("extensions"):
                i += 1
                m.extensionRanges += try ranges(maxInclusive: false)
            case .ident("oneof"):
                i += 1
                let oname = try ident()
                let index = m.oneofs.count
                m.oneofs.append(OneofDef(name: oname, synthetic: false))
                try expect("{")
                while !accept("}") {
                    if acceptIdent("option") {
                        _ = try optionStatement()
                        continue
                    }
                    if accept(";") { continue }
                    let f = try field(label: .none, in: m)
                    f.oneofIndex = index
                    m.fields.append(f)
                }
            case .ident("map"):
                i += 1
                try expect("<")
                let k = try ident()
                try expect(",")
                let v = try ident()
                try expect(">")
                let fname = try ident()
                try expect("=")
                let num = try number()
                let opts = try fieldOptions()
                try expect(";")
                let f = FieldDef(
                    name: fname,
                    number: num,
                    label: .repeated,
                    typeName: "",
                    options: opts,
                    scope: m.fullName
                )
                f.mapKey = k
                f.mapValue = v
                // The synthesized entry message sits among the nested types where the field is declared.
                let entry = MessageDef(
                    name: Parser.camelEntryName(fname),
                    fullName: m.fullName + "." + Parser.camelEntryName(fname)
                )
                entry.isMapEntry = true
                entry.options = [ParsedOption(name: "map_entry", value: OptionValue(kind: .bool, text: "true"))]
                entry.fields = [
                    FieldDef(name: "key", number: 1, label: .optional, typeName: k, options: [], scope: entry.fullName),
                    FieldDef(
                        name: "value",
                        number: 2,
                        label: .optional,
                        typeName: v,
                        options: [],
                        scope: entry.fullName
                    ),
                ]
                f.mapEntry = entry
                f.typeName = "." + entry.fullName
                m.nested.append(entry)
                m.fields.append(f)
            default:
                var label = Label.none
                if acceptIdent("optional") {
                    label = .optional
                } else if acceptIdent("required") {
                    label = .required
                } else if acceptIdent("repeated") {
                    label = .repeated
                }
                m.fields.append(try field(label: label, in: m))
            }
        }
        // proto3 `optional`: one synthetic oneof per field, after the real ones, in field order.
        if file.isProto3 {
            for f in m.fields where f.label == .optional {
                f.oneofIndex = m.oneofs.count
                f.proto3Optional = true
                m.oneofs.append(OneofDef(name: "_" + f.name, synthetic: true))
            }
        }
        return m
    }

    static func camelEntryName(_ field: String) -> String {
        var out = ""
        var upper = true
        for c in field {
            if c == "_" {
                upper = true
            } else if upper {
                out += c.uppercased()
                upper = false
            } else {
                out.append(c)
            }
        }
        return out + "Entry"
    }

    mutating func field(label: Label, in m: MessageDef) throws -> FieldDef {
        let type = try ident()
        let name = try ident()
        try expect("=")
        let num = try number()
        let opts = try fieldOptions()
        try expect(";")
        return FieldDef(name: name, number: num, label: label, typeName: type, options: opts, scope: m.fullName)
    }

    mutating func enumeration(scope: String) throws -> EnumDef {
        let name = try ident()
        let e = EnumDef(name: name, fullName: qualify(scope, name))
        try expect("{")
        while !accept("}") {
            if accept(";") { continue }
            if acceptIdent("option") {
                e.options.append(try optionStatement())
                continue
            }
            if acceptIdent("reserved") {
                if case .string = peek {
                    e.reservedNames += try reservedNames()
                } else {
                    e.reservedRanges += try ranges(maxInclusive: true)
                }
                continue
            }
            let vname = try ident()
            try expect("=")
            let num = try number()
            let opts = try fieldOptions()
            try expect(";")
            e.values.append((vname, num, opts))
        }
        return e
    }

    mutating func service() throws -> ServiceDef {
        let name = try ident()
        let s = ServiceDef(name: name, fullName: qualify(file.package, name))
        try expect("{")
        while !accept("}") {
            if accept(";") { continue }
            if acceptIdent("option") {
                s.options.append(try optionStatement())
                continue
            }
            guard acceptIdent("rpc") else { throw error("expected rpc") }
            let mname = try ident()
            try expect("(")
            let cs = acceptIdent("stream")
            let input = try ident()
            try expect(")")
            guard acceptIdent("returns") else { throw error("expected returns") }
            try expect("(")
            let ss = acceptIdent("stream")
            let output = try ident()
            try expect(")")
            var opts: [ParsedOption] = []
            let hasBody = peek == .symbol("{")
            if accept("{") {
                while !accept("}") {
                    if accept(";") { continue }
                    guard acceptIdent("option") else { throw error("expected option") }
                    opts.append(try optionStatement())
                }
            } else {
                try expect(";")
            }
            s.methods.append(
                MethodDef(
                    name: mname,
                    inputType: input,
                    outputType: output,
                    clientStreaming: cs,
                    serverStreaming: ss,
                    options: opts,
                    hasBody: hasBody
                )
            )
        }
        return s
    }

    mutating func extend(scope: String) throws -> [FieldDef] {
        let extendee = try ident()
        try expect("{")
        var out: [FieldDef] = []
        let holder = MessageDef(name: "", fullName: scope)
        while !accept("}") {
            if accept(";") { continue }
            var label = Label.none
            if acceptIdent("optional") {
                label = .optional
            } else if acceptIdent("required") {
                label = .required
            } else if acceptIdent("repeated") {
                label = .repeated
            }
            let f = try field(label: label, in: holder)
            f.extendee = extendee
            out.append(f)
        }
        return out
    }
}
