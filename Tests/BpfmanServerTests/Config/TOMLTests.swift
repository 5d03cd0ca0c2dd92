import Foundation
import Testing

@testable import BpfmanServer

@Suite struct TOMLTests {
    @Test func readsTablesArraysOfTablesAndDottedKeys() throws {
        let doc = try TOMLTable.parse(
            """
            # comment
            title = "bpfman"   # trailing comment
            [interfaces.eth0]
            xdp_mode = 'skb'
            [interfaces."veth-a.b"]
            xdp_mode = "hw"
            [[signing.trusted_identities]]
            certificate_identity = "a@example.com"
            [[signing.trusted_identities]]
            certificate_identity_regexp = "^.*@example\\\\.com$"
            [database]
            max_retries = 1_000
            hex = 0xff
            neg = -7
            ratio = 1.5e3
            on = true
            list = [1, 2,
              3, ]
            inline = { a = 1, b.c = "x" }
            """
        )
        #expect(doc["title"] == .string("bpfman"))
        guard case .table(let interfaces)? = doc["interfaces"], case .table(let eth0)? = interfaces["eth0"],
            case .table(let dotted)? = interfaces["veth-a.b"]
        else {
            Issue.record("interfaces tables missing")
            return
        }
        #expect(eth0["xdp_mode"] == .string("skb"))
        #expect(dotted["xdp_mode"] == .string("hw"))
        guard case .table(let signing)? = doc["signing"], case .array(let ids)? = signing["trusted_identities"] else {
            Issue.record("signing missing")
            return
        }
        #expect(ids.count == 2)
        guard case .table(let second) = ids[1] else { return }
        #expect(second["certificate_identity_regexp"] == .string("^.*@example\\.com$"))
        guard case .table(let db)? = doc["database"] else { return }
        #expect(db["max_retries"] == .integer(1000))
        #expect(db["hex"] == .integer(255))
        #expect(db["neg"] == .integer(-7))
        #expect(db["ratio"] == .float(1500))
        #expect(db["on"] == .boolean(true))
        #expect(db["list"] == .array([.integer(1), .integer(2), .integer(3)]))
        #expect(db.line(of: "max_retries") == 12)
        guard case .table(let inline)? = db["inline"], case .table(let b)? = inline["b"] else { return }
        #expect(inline["a"] == .integer(1))
        #expect(b["c"] == .string("x"))
    }

    @Test func readsEveryStringForm() throws {
        let doc = try TOMLTable.parse(
            #"""
            basic = "tab\there \"q\" \u00e9"
            literal = 'C:\path'
            multi = """
            one
            two \
                three"""
            lit_multi = '''
            raw \n '' '''
            quotes = """a""\""""
            """#
        )
        #expect(doc["basic"] == .string("tab\there \"q\" é"))
        #expect(doc["literal"] == .string("C:\\path"))
        #expect(doc["multi"] == .string("one\ntwo three"))
        #expect(doc["lit_multi"] == .string("raw \\n '' "))
        #expect(doc["quotes"] == .string("a\"\"\""))
    }

    static let badDocuments: [(String, Int, String)] = [
        ("a = 1\na = 2", 2, "defined twice"),
        ("[t]\n[t]", 2, "defined twice"),
        ("x = \"open", 1, "unterminated string"),
        ("x = 1 y = 2", 1, "end of the line"),
        ("\n\nx = 1979-05-27", 3, "dates and times"),
        ("x = 0123", 1, "leading zeros"),
        ("x = \"\\q\"", 1, "unknown escape"),
        ("[a\nx=1", 1, "expected ]"),
        ("x = [1, 2", 1, "expected"),
    ]

    @Test(arguments: badDocuments)
    func rejectsBadSyntaxNamingTheLine(text: String, line: Int, reason: String) {
        do {
            _ = try TOMLTable.parse(text)
            Issue.record("parsed invalid TOML: \(text)")
        } catch {
            #expect(error.line == line, "\(error)")
            #expect(error.reason.contains(reason), "\(error)")
        }
    }

    /// fuzz-config's stack overflow: 6,700 nested `[` (Fuzz/corpus/config/crash-nested-arrays-overflow-stack) recursed
    /// until the stack ran out, killing the daemon (or the CLI) that read such a bpfman.toml; a key of 20,000
    /// dotted parts took 2 GiB. Arrays and inline tables now nest at most 32 deep and keys and headers have at most
    /// 16 parts; more is a parse error naming the line.
    @Test func deepNestingAndLongDottedKeysAreRefusedNotAStackOverflow() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../../Fuzz/corpus/config/crash-nested-arrays-overflow-stack").standardized.path
        let crash = try String(contentsOfFile: path, encoding: .isoLatin1)
        #expect(throws: TOMLError.self) { try TOMLTable.parse(crash) }

        func nested(_ depth: Int, open: String, close: String) -> String {
            "x = " + String(repeating: open, count: depth) + "1" + String(repeating: close, count: depth)
        }
        for (open, close) in [("[", "]"), ("{ a = ", " }")] {
            let deepest = try TOMLTable.parse(nested(TOMLTable.maxNestingDepth, open: open, close: close))
            #expect(deepest["x"] != nil)
            do {
                _ = try TOMLTable.parse("\n" + nested(TOMLTable.maxNestingDepth + 1, open: open, close: close))
                Issue.record("parsed \(TOMLTable.maxNestingDepth + 1) levels of \(open)")
            } catch {
                #expect(error.line == 2, "\(error)")
                #expect(error.reason.contains("nested deeper than 32"), "\(error)")
            }
        }
        let parts = TOMLTable.maxKeyParts
        for (fits, refused) in [
            (
                Array(repeating: "a", count: parts).joined(separator: ".") + " = 1",
                Array(repeating: "a", count: parts + 1).joined(separator: ".") + " = 1"
            ),
            (
                "[" + Array(repeating: "b", count: parts).joined(separator: ".") + "]",
                "[" + Array(repeating: "b", count: parts + 1).joined(separator: ".") + "]"
            ),
        ] {
            #expect(throws: Never.self) { try TOMLTable.parse(fits) }
            do {
                _ = try TOMLTable.parse("\n" + refused)
                Issue.record("parsed \(refused)")
            } catch {
                #expect(error.line == 2, "\(error)")
                #expect(error.reason == "a key of more than 16 dotted parts", "\(error)")
            }
        }
    }
}
