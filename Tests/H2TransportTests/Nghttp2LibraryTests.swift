import Testing

@testable import H2Transport

@Suite struct Nghttp2LibraryTests {
    @Test func reportsTheLinkedDebianVersion() {
        // Debian 12 ships libnghttp2 1.52; the transport relies on its mem_recv/mem_send API.
        let parts = Nghttp2Library.version.split(separator: ".").compactMap { Int($0) }
        #expect(parts.count == 3)
        #expect(parts.first == 1)
        #expect((parts.dropFirst().first ?? 0) >= 52)
    }
}
