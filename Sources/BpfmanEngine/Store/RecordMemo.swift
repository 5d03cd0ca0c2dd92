internal import Synchronization

/// Counts the commits of the engine's writing connection (`Database.countCommits`), so readers can tell
/// whether the store changed since they last read it. Bumped after each commit has taken place.
package final class CommitCounter: Sendable {
    private let value = Atomic<UInt64>(0)

    package init() {}

    package var current: UInt64 { value.load(ordering: .acquiring) }

    func bump() { value.add(1, ordering: .releasing) }
}

/// Records the read path has already read, valid for one store generation (one value of `CommitCounter`).
///
/// Records change only when the writer commits, and every commit bumps the counter, so what a reader read
/// while the counter stood at `g` is still the store's state as long as it stands at `g`: a Get or List
/// then answers from here instead of opening a read transaction (BEGIN, up to six statements, COMMIT, and
/// the WAL's file locks). A managed program's kernel facts are part of its record (SPEC §3.8); nothing read live
/// from the kernel is kept.
///
/// Sound because the counter moves after the commit: a reader that saw `g` before its snapshot and again
/// after it read either the state of `g` or that of a commit not yet counted, which is newer, never older.
final class RecordMemo: Sendable {
    /// One managed program as Get needs it: its record, active link ids and map-set members' pins, ascending.
    struct Program: Sendable {
        var record: ProgramRecord
        var links: [UInt32]
        var members: [ProgramPin]
    }

    /// Every record and every program's active links, as List needs them, with what List would otherwise build
    /// for every record on every call: its map pin path and its `map_used_by` when alone in its map set.
    struct Everything: Sendable {
        var records: [ProgramRecord]
        var links: [UInt32: [UInt32]]
        /// `<rd>/fs/maps/<map set id>` of each record, in `records` order.
        var mapPinPaths: [String]
        /// `[String(id)]` of each record, in `records` order.
        var ownIDs: [[String]]

        init(records: [ProgramRecord], links: [UInt32: [UInt32]], paths: BpfmanPaths) {
            self.records = records
            self.links = links
            mapPinPaths = records.map { paths.mapSetDirectory($0.mapSetID) }
            ownIDs = records.map { [String($0.id)] }
        }
    }

    private struct State: Sendable {
        var generation: UInt64 = .max
        var programs: [UInt32: Program] = [:]
        var everything: Everything?
    }

    let commits: CommitCounter
    private let state = Mutex(State())

    init(commits: CommitCounter) {
        self.commits = commits
    }

    /// Program `id` as of `generation`, if a reader kept it. Only managed programs are kept (at most one entry
    /// per record), so Gets of unmanaged or unknown ids cannot grow the memo.
    func program(_ id: UInt32, at generation: UInt64) -> Program? {
        state.withLock { $0.generation == generation ? $0.programs[id] : nil }
    }

    func everything(at generation: UInt64) -> Everything? {
        state.withLock { $0.generation == generation ? $0.everything : nil }
    }

    /// Keeps what a snapshot taken at `generation` read, if no commit has been counted since.
    func keep(_ program: Program, at generation: UInt64) {
        update(at: generation) { $0.programs[program.record.id] = program }
    }

    /// Keeps `everything` like `keep(_:at:)`; true when it was kept, i.e. it is the state of `generation`.
    @discardableResult
    func keep(_ everything: Everything, at generation: UInt64) -> Bool {
        update(at: generation) { $0.everything = everything }
    }

    @discardableResult
    private func update(at generation: UInt64, _ body: (inout State) -> Void) -> Bool {
        state.withLock { state in
            guard commits.current == generation else { return false }
            if state.generation != generation {
                state = State()
                state.generation = generation
            }
            body(&state)
            return true
        }
    }
}
