import BpfmanSigstore
import Testing

/// `trusted_root.json`'s validity times (SPEC §8.5) are RFC 3339; the expected seconds are Python's
/// `datetime.fromisoformat(...).timestamp()`.
@Suite struct RFC3339Tests {
    @Test(arguments: [
        ("2021-01-12T11:53:27Z", Int64(1_610_452_407)),
        ("2022-12-31T23:59:59.999Z", 1_672_531_199),
        ("2000-02-29T00:00:00Z", 951_782_400),
        ("2026-12-07T00:31:00+02:00", 1_796_596_260),
        ("1970-01-01T00:00:00z", 0),
    ])
    func validTimes(text: String, seconds: Int64) {
        #expect(rfc3339Seconds(text) == seconds)
    }

    @Test(arguments: [
        "", "2021-01-12", "2021-13-01T00:00:00Z", "2021-01-12T11:53:27", "2021-01-12T11:53:27Zjunk",
        "2021-01-12 11:53:27Z", "2021-01-12T25:00:00Z", "2021-01-12T11:53:27+0200",
    ])
    func invalidTimes(text: String) {
        #expect(rfc3339Seconds(text) == nil)
    }
}
