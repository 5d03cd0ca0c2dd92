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
}
