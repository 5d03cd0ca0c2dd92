// `program list -l/--selector` (SPEC §9.4): the Kubernetes label-selector syntax upstream's Go CLI parses with
// apimachinery's labels.Parse, matched against a program's metadata. Requirements are comma-separated and all
// must hold: `k=v` / `k==v`, `k!=v` (also true when k is absent), `k in (a,b)`, `k notin (a,b)` (also true when
// k is absent), `k` (present), `!k` (absent), `k>N` / `k<N` (k's value an integer above / below N).

struct LabelSelector: Sendable {
    enum Requirement: Sendable, Equatable {
        case equals(String, String)
        case notEquals(String, String)
        case isIn(String, Set<String>)
        case notIn(String, Set<String>)
        case exists(String)
        case doesNotExist(String)
        case greaterThan(String, Int64)
        case lessThan(String, Int64)
    }

    var requirements: [Requirement]

    struct ParseError: Error, CustomStringConvertible {
        var description: String
    }

    init(parsing text: String) throws(ParseError) {
        requirements = []
        for part in try Self.split(text) {
            requirements.append(try Self.requirement(part))
        }
    }

    func matches(_ labels: [String: String]) -> Bool {
        requirements.allSatisfy { requirement in
            switch requirement {
            case .equals(let key, let value): labels[key] == value
            case .notEquals(let key, let value): labels[key] != value
            case .isIn(let key, let values): labels[key].map(values.contains) ?? false
            case .notIn(let key, let values): !(labels[key].map(values.contains) ?? false)
            case .exists(let key): labels[key] != nil
            case .doesNotExist(let key): labels[key] == nil
            case .greaterThan(let key, let bound): labels[key].flatMap { Int64($0) }.map { $0 > bound } ?? false
            case .lessThan(let key, let bound): labels[key].flatMap { Int64($0) }.map { $0 < bound } ?? false
            }
        }
    }

    /// The requirements, split on the commas outside parentheses; empty text selects everything.
    private static func split(_ text: String) throws(ParseError) -> [Substring] {
        var parts: [Substring] = []
        var depth = 0
        var start = text.startIndex
        for index in text.indices {
            switch text[index] {
            case "(":
                depth += 1
                guard depth == 1 else { throw ParseError(description: "nested parentheses in \"\(text)\"") }
            case ")":
                depth -= 1
                guard depth == 0 else { throw ParseError(description: "unbalanced parentheses in \"\(text)\"") }
            case "," where depth == 0:
                parts.append(text[start..<index])
                start = text.index(after: index)
            default: break
            }
        }
        guard depth == 0 else { throw ParseError(description: "unbalanced parentheses in \"\(text)\"") }
        parts.append(text[start...])
        let trimmed = parts.map(trim)
        if trimmed.count == 1 && trimmed[0].isEmpty { return [] }
        return trimmed
    }

    private static func trim(_ s: Substring) -> Substring {
        var s = s
        while s.first == " " { s.removeFirst() }
        while s.last == " " { s.removeLast() }
        return s
    }

    private static func requirement(_ text: Substring) throws(ParseError) -> Requirement {
        if text.isEmpty { throw ParseError(description: "empty requirement") }
        if text.first == "!" {
            return .doesNotExist(try key(trim(text.dropFirst()), in: text))
        }
        // Set-based: `key in (…)` / `key notin (…)`.
        let words = text.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        if words.count == 2 {
            let rest = trim(words[1])
            for (op, negated) in [("notin", true), ("in", false)]
            where rest.hasPrefix(op) && [" ", "("].contains(rest.dropFirst(op.count).first) {
                let list = trim(rest.dropFirst(op.count))
                guard list.first == "(", list.last == ")" else {
                    throw ParseError(description: "\"\(text)\": expected a parenthesised list after \(op)")
                }
                let values = try Set(
                    list.dropFirst().dropLast().split(separator: ",", omittingEmptySubsequences: false).map {
                        v throws(ParseError) in try value(trim(v), in: text)
                    }
                )
                let k = try key(trim(words[0]), in: text)
                return negated ? .notIn(k, values) : .isIn(k, values)
            }
        }
        for op in ["!=", "==", "=", ">", "<"] {
            guard let range = text.firstRange(of: op) else { continue }
            let k = try key(trim(text[..<range.lowerBound]), in: text)
            let raw = trim(text[range.upperBound...])
            switch op {
            case "!=": return .notEquals(k, try value(raw, in: text))
            case "==", "=": return .equals(k, try value(raw, in: text))
            default:
                guard let bound = Int64(raw) else {
                    throw ParseError(description: "\"\(text)\": \(op) needs an integer, not \"\(raw)\"")
                }
                return op == ">" ? .greaterThan(k, bound) : .lessThan(k, bound)
            }
        }
        return .exists(try key(text, in: text))
    }

    /// A label key: an optional DNS-style prefix and `/`, then a name of letters, digits, `-`, `_`, `.`.
    private static func key(_ s: Substring, in text: Substring) throws(ParseError) -> String {
        let name = s.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false).last ?? s
        guard !s.isEmpty, !name.isEmpty, name.count <= 63,
            s.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_./".contains($0)) })
        else {
            throw ParseError(description: "\"\(text)\": invalid label key \"\(s)\"")
        }
        return String(s)
    }

    /// A label value: empty, or at most 63 letters, digits, `-`, `_`, `.`.
    private static func value(_ s: Substring, in text: Substring) throws(ParseError) -> String {
        guard s.count <= 63, s.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }) else {
            throw ParseError(description: "\"\(text)\": invalid label value \"\(s)\"")
        }
        return String(s)
    }
}
