internal import Glibc

/// A `WWW-Authenticate` challenge: its scheme and parameters (RFC 9110 §11.6.1), for the first scheme only.
struct AuthChallenge: Equatable {
    var scheme: String
    var parameters: [String: String]

    /// Parses `Bearer realm="…",service="…",scope="…"` or `Basic realm="…"`; nil for anything else.
    init?(header: String) {
        let text = Array(header.utf8.prefix(8192))
        var index = 0
        func skipSpaces() { while index < text.count && (text[index] == 0x20 || text[index] == 0x09) { index += 1 } }
        func token() -> String {
            let start = index
            while index < text.count, text[index] > 0x20, text[index] != UInt8(ascii: "="),
                text[index] != UInt8(ascii: ","),
                text[index] != UInt8(ascii: "\"")
            {
                index += 1
            }
            return String(decoding: text[start..<index], as: UTF8.self)
        }
        skipSpaces()
        let scheme = token()
        guard !scheme.isEmpty else { return nil }
        self.scheme = scheme.lowercased()
        parameters = [:]
        while index < text.count {
            skipSpaces()
            if index < text.count && text[index] == UInt8(ascii: ",") {
                index += 1
                continue
            }
            let name = token().lowercased()
            skipSpaces()
            guard !name.isEmpty, index < text.count, text[index] == UInt8(ascii: "=") else { break }
            index += 1
            skipSpaces()
            var value: [UInt8] = []
            if index < text.count && text[index] == UInt8(ascii: "\"") {
                index += 1
                var closed = false
                while index < text.count {
                    let byte = text[index]
                    index += 1
                    if byte == UInt8(ascii: "\\") && index < text.count {
                        value.append(text[index])
                        index += 1
                    } else if byte == UInt8(ascii: "\"") {
                        closed = true
                        break
                    } else {
                        value.append(byte)
                    }
                }
                guard closed else { return nil }
            } else {
                value = Array(token().utf8)
            }
            parameters[name] = String(decoding: value, as: UTF8.self)
        }
        guard self.scheme == "basic" || self.scheme == "bearer" else { return nil }
    }
}
