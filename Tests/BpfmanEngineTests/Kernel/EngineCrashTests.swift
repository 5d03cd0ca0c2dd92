import Foundation
import Glibc
import TestSupport
import Testing

@testable import BpfmanEngine

/// Environment of the crash child: the runtime directory and the operation to run.
private enum CrashChildEnvironment {
    static let root = "BPFMAN_ENGINE_TEST_CHILD_ROOT"
    static let operation = "BPFMAN_ENGINE_TEST_CHILD_OP"
    static var isChild: Bool { ProcessInfo.processInfo.environment[root] != nil }
}

/// The child half of the crash tests: this test bundle re-executed with a filter, an engine on the parent's
/// runtime directory, one operation, and `BPFMAN_ENGINE_TEST_CRASH_AT` making the engine SIGKILL itself
/// at the named step. Skipped in every normal run.
@Suite(.enabled(if: CrashChildEnvironment.isChild, "runs only as the child process of EngineCrashTests"))
struct EngineCrashChild {
    @Test func runOperationUntilTheInjectedCrash() async throws {
        let environment = ProcessInfo.processInfo.environment
        let paths = BpfmanPaths(root: try #require(environment[CrashChildEnvironment.root]))
        let operation = try #require(environment[CrashChildEnvironment.operation]).split(separator: ":")
        let engine = try await Engine(paths: paths)
        let argument = operation.count > 1 ? UInt32(operation[1]) ?? 0 : 0
        switch operation[0] {
        case "load":
            _ = try await engine.load(
                LoadRequest(
                    bytecode: .file(try BPFFixtures.object("tracepoint_counter")),
                    programs: [ProgramLoadInfo(name: "count_kill", type: .tracepoint)]
                )
            )
        case "attach":
            _ = try await engine.attach(
                programID: argument,
                spec: .tracepoint(TracepointAttach(tracepoint: "syscalls/sys_enter_kill"))
            )
        case "detach":
            try await engine.detach(linkID: argument)
        case "unload":
            try await engine.unload(id: argument)
        case "cycle":
            // Load, attach, detach and unload a tracepoint, a uprobe and a TCX program (on engv1 in the netns
            // at operation[1]) over and over, until the parent kills this process at a moment of its choosing.
            try #require(FileManager.default.createFile(atPath: paths.root + "/cycling", contents: nil))
            for _ in 0..<10_000 { try await cycle(engine, netns: String(operation[1])) }
        default:
            Issue.record("unknown operation \(operation)")
        }
        Issue.record("the engine should have been killed before finishing \(operation)")
    }

    private func cycle(_ engine: Engine, netns: String) async throws {
        func load(_ fixture: String, _ name: String, _ type: BpfmanProgramType) async throws -> UInt32 {
            try await engine.load(
                LoadRequest(
                    bytecode: .file(try BPFFixtures.object(fixture)),
                    programs: [ProgramLoadInfo(name: name, type: type)]
                )
            )[0].kernelInfo.id
        }
        let tracepoint = try await load("tracepoint_counter", "count_kill", .tracepoint)
        let uprobe = try await load("uprobe_counter", "count_call", .uprobe)
        let tcx = try await load("tcx_counter", "tcx_count", .tcx)
        let links = [
            try await engine.attach(
                programID: tracepoint,
                spec: .tracepoint(TracepointAttach(tracepoint: "syscalls/sys_enter_kill"))
            ),
            try await engine.attach(programID: uprobe, spec: .uprobe(UprobeAttach(fnName: "getpid", target: "libc"))),
            try await engine.attach(
                programID: tcx,
                spec: .tcx(TCXAttach(priority: 100, iface: "engv1", direction: "ingress", netns: netns))
            ),
        ]
        for link in links { try await engine.detach(linkID: link) }
        for program in [tracepoint, uprobe, tcx] { try await engine.unload(id: program) }
    }
}

extension KernelTests {
    /// SIGKILL at injected points of Load, Attach, Detach and Unload; a new engine reconciles without leaks
    /// (SPEC §6.2, §6.3).
    @Suite struct EngineCrashTests {
        /// This test bundle, filtered to `EngineCrashChild`, and the environment that gives the child its
        /// runtime directory and operation.
        func childCommand(
            _ paths: BpfmanPaths,
            _ operation: String
        ) throws -> (bundle: String, arguments: [String], environment: [String: String]) {
            (
                try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"),
                ["--testing-library", "swift-testing", "--filter", "EngineCrashChild"],
                [CrashChildEnvironment.root: paths.root, CrashChildEnvironment.operation: operation]
            )
        }

        /// Runs the child with `operation`, expecting it to die of SIGKILL at `step`.
        func crashChild(_ paths: BpfmanPaths, _ operation: String, at step: String) throws {
            let command = try childCommand(paths, operation)
            let result = try run(
                command.bundle,
                command.arguments,
                environment: command.environment.merging([Engine.crashStepEnvironmentKey: step]) { $1 }
            )
            #expect(result.status == SIGKILL, "the child died at \(step): \(result.output.suffix(2000))")
        }

        /// Runs the child with `operation` and SIGKILLs it `delay` milliseconds after it starts cycling.
        func killChild(_ paths: BpfmanPaths, _ operation: String, afterMilliseconds delay: Int) async throws {
            let marker = paths.root + "/cycling"
            unlink(marker)
            let command = try childCommand(paths, operation)
            let child = Process()
            child.executableURL = URL(fileURLWithPath: command.bundle)
            child.arguments = command.arguments
            child.environment = ProcessInfo.processInfo.environment.merging(command.environment) { $1 }
            child.standardOutput = FileHandle.nullDevice
            child.standardError = FileHandle.nullDevice
            try child.run()
            let started = await eventually(seconds: 30) { FileManager.default.fileExists(atPath: marker) }
            #expect(started, "the child started cycling")
            try await Task.sleep(nanoseconds: UInt64(delay) * 1_000_000)
            kill(child.processIdentifier, SIGKILL)
            child.waitUntilExit()
            #expect(child.terminationReason == .uncaughtSignal && child.terminationStatus == SIGKILL)
        }

        /// After a reconciling start: every pin has its record and every record its pin, every recorded program
        /// is alive and readable, no link is pending (SPEC §10 scenario 15).
        func expectRecordsMatchPins(
            _ engine: Engine,
            _ paths: BpfmanPaths,
            _ label: String,
            sourceLocation: SourceLocation = #_sourceLocation
        ) async throws {
            let programs = Set(try await engine.list(ListFilter(bpfmanProgramsOnly: true)).map(\.kernelInfo.id))
            let pinned = Set(
                filesUnder(paths.bpffs).filter { $0.hasPrefix("prog_") }.compactMap { UInt32($0.dropFirst(5)) }
            )
            #expect(
                pinned == programs,
                "\(label): program pins \(pinned) vs records \(programs)",
                sourceLocation: sourceLocation
            )
            /// The entries of `directory` named by a number (map-set owners, link ids).
            func numbered(_ directory: String) -> Set<UInt32> {
                Set(((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).compactMap { UInt32($0) })
            }
            let mapSets = numbered(paths.mapsDirectory)
            #expect(
                mapSets == programs,
                "\(label): map sets \(mapSets) vs owners \(programs)",
                sourceLocation: sourceLocation
            )
            for id in programs {
                #expect(BPF.programExists(id: id), "\(label): program \(id) alive", sourceLocation: sourceLocation)
                _ = try await engine.get(id: id)
            }
            let links = Set(try await engine.links().map(\.id))
            let linkPins = numbered(paths.linksDirectory)
            #expect(
                linkPins == links,
                "\(label): link pins \(linkPins) vs records \(links)",
                sourceLocation: sourceLocation
            )
            let store = try ProgramStore(readerAt: paths.database)
            defer { store.close() }
            #expect(try store.pendingLinks().isEmpty, "\(label): no pending link rows", sourceLocation: sourceLocation)
        }

        /// SPEC §10 scenario 15: a child cycles through Load, Attach, Detach and Unload of tracepoint, uprobe and
        /// TCX programs and is SIGKILLed at a random moment, twenty times; after each, a new engine reconciles and
        /// records and pins agree.
        @Test func randomKillsDuringLoadAttachDetachUnloadAreReconciled() async throws {
            let veth = try VethPair()
            defer { veth.remove() }
            let paths = try makeTestRuntime("crash-random")
            defer { removeTestRuntime(paths) }
            var delays: [Int] = []
            var states: [String] = []
            for iteration in 0..<20 {
                let delay = Int.random(in: 0...600)
                delays.append(delay)
                try await killChild(paths, "cycle:\(veth.netnsB)", afterMilliseconds: delay)
                try await withEngine(paths) { (engine: Engine) async throws in
                    try await expectRecordsMatchPins(engine, paths, "kill \(iteration) after \(delay) ms")
                    let programs = try await engine.list(ListFilter(bpfmanProgramsOnly: true)).count
                    let links = try await engine.links().count
                    states.append("\(programs)p/\(links)l")
                }
            }
            print("random kills after (ms): \(delays); programs/links on record after each: \(states)")
            try await withEngine(paths) { (engine: Engine) async throws in
                for program in try await engine.list(ListFilter(bpfmanProgramsOnly: true)) {
                    try await engine.unload(id: program.kernelInfo.id)
                }
                #expect(try await engine.links().isEmpty)
                #expect(filesUnder(paths.bpffs) == [], "nothing left after unloading what the kills left")
            }
        }

        /// Opens a new engine on `paths` (reconciling), runs `body`, closes it.
        func withEngine(_ paths: BpfmanPaths, _ body: (Engine) async throws -> Void) async throws {
            let engine = try await Engine(paths: paths)
            try await body(engine)
            await engine.close()
        }

        @Test func crashBeforeTheLoadCommitLeavesNothingAfterReconcile() async throws {
            let paths = try makeTestRuntime("crash-load")
            defer { removeTestRuntime(paths) }
            try crashChild(paths, "load", at: "load.beforeCommit")
            let pinned = filesUnder(paths.bpffs)
            #expect(pinned.contains { $0.hasPrefix("prog_") }, "the child had pinned its program: \(pinned)")
            let id = try #require(pinned.first { $0.hasPrefix("prog_") }.flatMap { UInt32($0.dropFirst(5)) })
            try await withEngine(paths) { (engine: Engine) async throws in
                #expect(filesUnder(paths.bpffs) == [], "orphan program and map pins removed")
                #expect(try await engine.list(ListFilter(bpfmanProgramsOnly: true)).isEmpty)
            }
            #expect(await eventually { !BPF.programExists(id: id) }, "the program left the kernel")
        }

        @Test func crashAfterTheLoadCommitKeepsAManagedProgram() async throws {
            let paths = try makeTestRuntime("crash-loaded")
            defer { removeTestRuntime(paths) }
            try crashChild(paths, "load", at: "load.afterCommit")
            try await withEngine(paths) { (engine: Engine) async throws in
                let programs = try await engine.list(ListFilter(bpfmanProgramsOnly: true))
                #expect(programs.count == 1)
                let id = try #require(programs.first?.kernelInfo.id)
                #expect(filesUnder(paths.bpffs) == ["maps/\(id)/counter", "prog_\(id)"])
                try await engine.unload(id: id)
                #expect(filesUnder(paths.bpffs) == [])
            }
        }

        @Test func crashesDuringAttachDetachAndUnloadAreReconciled() async throws {
            let paths = try makeTestRuntime("crash-link")
            defer { removeTestRuntime(paths) }
            var id: UInt32 = 0
            var firstLink: UInt32 = 0
            try await withEngine(paths) { (engine: Engine) async throws in
                id = try await engine.load(
                    LoadRequest(
                        bytecode: .file(try BPFFixtures.object("tracepoint_counter")),
                        programs: [ProgramLoadInfo(name: "count_kill", type: .tracepoint)]
                    )
                )[0].kernelInfo.id
                firstLink = try await engine.attach(
                    programID: id,
                    spec: .tracepoint(TracepointAttach(tracepoint: "syscalls/sys_enter_getppid"))
                )
            }
            // Attach: killed after the pending row, then after the link pin.
            for step in ["attach.afterPending", "attach.afterPin"] {
                try crashChild(paths, "attach:\(id)", at: step)
                try await withEngine(paths) { (engine: Engine) async throws in
                    #expect(try await engine.links().map(\.id) == [firstLink], "\(step): no pending link survives")
                    #expect(filesUnder(paths.linksDirectory) == ["\(firstLink)"], "\(step): no orphan link pin")
                }
            }
            // Detach: killed after the record is deleted, before the kernel link goes.
            let kernelLink = try await { () async throws -> UInt32? in
                let engine = try await Engine(paths: paths)
                defer { Task { await engine.close() } }
                return try await engine.link(id: firstLink).kernelLinkID
            }()
            try crashChild(paths, "detach:\(firstLink)", at: "detach.afterCommit")
            try await withEngine(paths) { (engine: Engine) async throws in
                #expect(try await engine.links().isEmpty)
                #expect(filesUnder(paths.linksDirectory) == [])
                // A new link gets an id above every id handed out so far, including the crashed attaches'.
                let next = try await engine.attach(
                    programID: id,
                    spec: .tracepoint(TracepointAttach(tracepoint: "syscalls/sys_enter_kill"))
                )
                #expect(next > firstLink + 2)
            }
            #expect(await eventually { !BPF.linkExists(id: kernelLink ?? 0) }, "the detached kernel link is gone")
            // Unload: killed after the records are deleted, before the pins go.
            try crashChild(paths, "unload:\(id)", at: "unload.afterCommit")
            try await withEngine(paths) { (engine: Engine) async throws in
                #expect(try await engine.list(ListFilter(bpfmanProgramsOnly: true)).isEmpty)
                #expect(filesUnder(paths.bpffs) == [], "program, map and link pins removed")
            }
            #expect(await eventually { !BPF.programExists(id: id) })
        }
    }
}

/// Polls `condition` every 5 ms for up to `seconds` (2 by default).
func eventually(seconds: Int = 2, _ condition: () -> Bool) async -> Bool {
    for _ in 0..<(seconds * 200) {
        if condition() { return true }
        try? await Task.sleep(nanoseconds: 5_000_000)
    }
    return condition()
}
