import Proto
import Testing

@testable import BpfmanEngine
@testable import BpfmanServer

/// The List answer cache gives exactly the bytes of a freshly encoded `ListResponse`, whatever it reuses.
@Suite struct ListAnswerCacheTests {
    func managed(_ id: UInt32, loadedAt second: Int64 = 1_800_000_000, usedBy: [UInt32]? = nil) -> ProgramDetails {
        var facts = KernelProgramFacts(
            name: "count_kill",
            kernelType: 5,
            loadTime: 1_000_000 * UInt64(id),
            tag: "0123456789abcdef",
            gplCompatible: true,
            mapIDs: [id + 1000],
            btfID: 9,
            bytesXlated: 232,
            bytesJited: 150,
            bytesMemlock: 4096,
            verifiedInsns: 29
        )
        facts.loadedAt = LoadedAtText(second: second, text: "t\(second)")
        let record = ProgramRecord(
            id: id,
            name: "count_kill",
            kind: .tracepoint,
            loadMode: .native,
            location: .file("/o.bpf.o"),
            metadata: ["n": "\(id)"],
            globalData: [:],
            mapOwnerID: nil,
            mapSetID: id,
            attachTarget: nil,
            sharedMaps: [],
            kernelFacts: facts
        )
        var kernel = KernelProgramInfo(id: id, facts: facts, reportedType: 5, clock: LoadTimeClock())
        kernel.loadedAt = "t\(second)"
        let info = ProgramInfo(
            record: record,
            links: [id * 2],
            mapPinPath: "/rd/fs/maps/\(id)",
            mapUsedBy: (usedBy ?? [id]).map { String($0) }
        )
        return ProgramDetails(info: info, kernelInfo: kernel)
    }

    func plain(_ results: [ProgramDetails]) -> [UInt8] {
        var response = Bpfman_V1_ListResponse()
        response.results = results.map(Bpfman_V1_ListResponse.ListResult.init)
        return response.serializedBytes()
    }

    @Test func reusedResultsAreByteForByteAFreshEncoding() throws {
        let cache = ListAnswerCache()
        var results = (1...20).map { managed($0) }
        // An unmanaged program is never kept; it is encoded every time.
        var foreign = managed(21)
        foreign.info = nil
        results.append(foreign)
        #expect(cache.response(results, generation: 4) == plain(results), "first List: everything encoded")
        #expect(cache.response(results, generation: 4) == plain(results), "second List: reused")
        // What the store does not decide is compared before reuse: the clock's second and the live members.
        results[3] = managed(4, loadedAt: 1_800_000_001)
        results[5] = managed(6, usedBy: [6, 7])
        #expect(cache.response(results, generation: 4) == plain(results))
        let decoded = try Bpfman_V1_ListResponse(serializedBytes: cache.response(results, generation: 4))
        #expect(decoded.results[3].kernelInfo.loadedAt == "t1800000001")
        #expect(decoded.results[5].info.mapUsedBy == ["6", "7"])
        // A new generation (a commit): the same ids with other records are not answered from the old ones.
        var changed = results
        changed[0].info?.record.metadata = ["n": "changed"]
        #expect(cache.response(changed, generation: 5) == plain(changed))
        // A List that began before that commit is answered, from its own results.
        #expect(cache.response(results, generation: 4) == plain(results))
        #expect(cache.response(changed, generation: nil) == plain(changed))
        #expect(cache.response([], generation: 5) == plain([]))
    }
}
