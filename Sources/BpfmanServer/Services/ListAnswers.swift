internal import BpfmanEngine
internal import Proto
internal import Synchronization

/// Encoded `ListResponse.ListResult`s of managed programs, reused from one List to the next while the store does
/// not change.
///
/// A managed program's result is made from its records (SPEC §3.8: its kernel facts are recorded too), so at one
/// store generation (`Engine.listWithGeneration`) it differs between two Lists only in `loaded_at` (boot time on
/// the wall clock moves when the clock is set) and `map_used_by` (a member's pin may vanish); both are compared
/// before bytes are reused. Converting and encoding a result (about twenty strings, arrays and maps copied,
/// retained and released twice) was most of the daemon's own work for a List; a reused one is one copy.
///
/// Only results of the newest generation seen are kept, at most one per managed program; a commit empties the
/// cache at the next List. Results read live (unmanaged programs, records without facts) are never kept.
///
/// Above that, the whole response of the last List the engine stamped (`ListStamp`: same store generation, same
/// unchanged read of the pins, same filter, a wall-clock boot time at which every `loaded_at` reads the same) is
/// kept, and answered again as long as the engine finds the stamp still holds: a List then costs the engine's
/// checks (a memo lookup, one `fstatat`, two clock reads) and no per-program work.
final class ListAnswerCache: Sendable {
    private struct Entry {
        var loadedAt: String
        var mapUsedBy: [String]
        var bytes: [UInt8]
    }

    private struct State {
        var generation: UInt64?
        var entries: [UInt32: Entry] = [:]
    }

    private let state = Mutex(State())

    /// The last whole response of a List whose engine answer had a `ListStamp`, with that stamp.
    private let whole = Mutex<(stamp: ListStamp, bytes: [UInt8])?>(nil)

    /// The kept response of a List with `filter`, if any: give its stamp to the engine, which answers no results
    /// while it holds.
    func kept(for filter: ListFilter) -> (stamp: ListStamp, bytes: [UInt8])? {
        whole.withLock { kept in kept.flatMap { $0.stamp.filter == filter ? $0 : nil } }
    }

    /// Keeps `bytes` as the response of the List stamped `stamp`.
    func keep(_ bytes: [UInt8], stamp: ListStamp) {
        whole.withLock { $0 = (stamp, bytes) }
    }

    /// `ListResponse` tag of `results` (field 3, length-delimited).
    private static let resultsTag: UInt8 = 3 << 3 | 2

    /// The serialized `ListResponse` of `results`, which `Engine.listWithGeneration` built at `generation`.
    func response(_ results: [ProgramDetails], generation: UInt64?) -> [UInt8] {
        guard let generation else { return Self.encode(results) }
        // What is kept for this generation, or nil when a newer one is (a List that started before a commit).
        let reusable: [[UInt8]?]? = state.withLock { state in
            if state.generation.map({ $0 < generation }) ?? true {
                state = State(generation: generation)
            }
            guard state.generation == generation else { return nil }
            return results.map { details in
                guard let info = details.info, let entry = state.entries[details.kernelInfo.id],
                    entry.loadedAt == details.kernelInfo.loadedAt, entry.mapUsedBy == info.mapUsedBy
                else { return nil }
                return entry.bytes
            }
        }
        guard let reusable else { return Self.encode(results) }
        var encoded: [[UInt8]] = []
        encoded.reserveCapacity(results.count)
        var made: [(UInt32, Entry)] = []
        for (details, kept) in zip(results, reusable) {
            if let kept {
                encoded.append(kept)
                continue
            }
            let bytes = Bpfman_V1_ListResponse.ListResult(details).serializedBytes()
            encoded.append(bytes)
            if let info = details.info, info.record.kernelFacts != nil {
                made.append(
                    (
                        details.kernelInfo.id,
                        Entry(loadedAt: details.kernelInfo.loadedAt, mapUsedBy: info.mapUsedBy, bytes: bytes)
                    )
                )
            }
        }
        if !made.isEmpty {
            state.withLock { state in
                guard state.generation == generation else { return }
                for (id, entry) in made { state.entries[id] = entry }
            }
        }
        return Self.frame(encoded)
    }

    /// The plain path: convert and encode every result.
    private static func encode(_ results: [ProgramDetails]) -> [UInt8] {
        var response = Bpfman_V1_ListResponse()
        response.results = results.map(Bpfman_V1_ListResponse.ListResult.init)
        return response.serializedBytes()
    }

    /// A `ListResponse` made of encoded results: each one's tag, length and bytes, in order.
    private static func frame(_ encoded: [[UInt8]]) -> [UInt8] {
        var total = 0
        for bytes in encoded { total += 1 + Varint.encodedSize(of: UInt64(bytes.count)) + bytes.count }
        var response: [UInt8] = []
        response.reserveCapacity(total)
        for bytes in encoded {
            response.append(resultsTag)
            Varint.append(UInt64(bytes.count), to: &response)
            response.append(contentsOf: bytes)
        }
        return response
    }
}
