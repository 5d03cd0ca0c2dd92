import CBPF
import Foundation
import Glibc
import TestSupport
import Testing

@testable import BpfmanEngine

/// A test engine under a private runtime directory and bpffs, plus what the harness checks afterwards.
final class TestEngine: @unchecked Sendable {
    // @unchecked: only touched from the test's own task.
    let engine: Engine
    let paths: BpfmanPaths
    var loadedIDs: [UInt32] = []
    /// This process's BPF and perf fds before the engine started (other suites' and the runtime's own).
    let descriptorsBefore: Set<String>

    init(engine: Engine, paths: BpfmanPaths, descriptorsBefore: Set<String>) {
        self.engine = engine
        self.paths = paths
        self.descriptorsBefore = descriptorsBefore
    }

    /// SPEC §6.5: between calls the engine holds no BPF or perf fds, whatever is loaded and attached; the
    /// programs, maps and links live on through their pins.
    func expectNoDescriptorsAtRest(_ when: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let held = bpfDescriptors().subtracting(descriptorsBefore)
        #expect(held.isEmpty, "BPF or perf fds held \(when): \(held.sorted())", sourceLocation: sourceLocation)
    }

    /// Loads and remembers the ids so the harness can check they are gone from the kernel at the end.
    func load(_ request: LoadRequest) async throws -> [ProgramDetails] {
        let result = try await engine.load(request)
        loadedIDs += result.map(\.kernelInfo.id)
        return result
    }

    /// Loads one program of a fixture.
    func load(
        fixture: String,
        _ name: String,
        _ type: BpfmanProgramType,
        metadata: [String: String] = [:],
        globalData: [String: [UInt8]] = [:],
        mapOwner: UInt32? = nil,
        target: LoadTarget? = nil
    ) async throws -> UInt32 {
        let request = LoadRequest(
            bytecode: .file(try BPFFixtures.object(fixture)),
            programs: [ProgramLoadInfo(name: name, type: type, target: target)],
            globalData: globalData,
            metadata: metadata,
            mapOwnerID: mapOwner
        )
        return try await load(request)[0].kernelInfo.id
    }

    /// Value `index` (u64) of map `map` in the program's map set.
    func counter(program: UInt32, map: String, index: UInt32 = 0) throws -> UInt64 {
        let info = mapSet(of: program)
        let fd = bpf_obj_get("\(info)/\(map)")
        try #require(fd >= 0, "map pin \(info)/\(map) opens")
        defer { close(fd) }
        var key = index
        var value: UInt64 = 0
        #expect(bpf_map_lookup_elem(fd, &key, &value) == 0)
        return value
    }

    private func mapSet(of program: UInt32) -> String {
        // Owners pin their maps under their own id; dependants use the owner's directory.
        let own = paths.mapSetDirectory(program)
        if FileManager.default.fileExists(atPath: own) { return own }
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: paths.mapsDirectory)) ?? [] {
            return paths.mapsDirectory + "/" + entry
        }
        return own
    }
}

/// Descriptors of this process that point at BPF objects or perf events.
func bpfDescriptors() -> Set<String> {
    var result: Set<String> = []
    for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? [] {
        var buffer = [CChar](repeating: 0, count: 256)
        let n = readlink("/proc/self/fd/\(entry)", &buffer, 255)
        guard n > 0 else { continue }
        let target = String(decoding: buffer.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if target.hasPrefix("anon_inode:bpf") || target.contains("perf_event") { result.insert("\(entry) \(target)") }
    }
    return result
}

/// Every file (not directory) under `path`, relative; bpffs's own `maps.debug`/`progs.debug` iterators are
/// not ours and are left out.
func filesUnder(_ path: String) -> [String] {
    guard let enumerator = FileManager.default.enumerator(atPath: path) else { return [] }
    var files: [String] = []
    while let entry = enumerator.nextObject() as? String {
        if entry == "maps.debug" || entry == "progs.debug" { continue }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path + "/" + entry, isDirectory: &isDirectory), !isDirectory.boolValue
        {
            files.append(entry)
        }
    }
    return files.sorted()
}

/// Makes a runtime directory with a private bpffs at `<root>/fs`.
func makeTestRuntime(_ tag: String) throws -> BpfmanPaths {
    var template = Array("/tmp/eng-\(tag)-XXXXXX".utf8CString)
    let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    let root = String(cString: try #require(made))
    let paths = BpfmanPaths(root: root)
    try #require(mkdir(paths.bpffs, 0o755) == 0)
    try #require(mount("bpf", paths.bpffs, "bpf", 0, nil) == 0, "mount a private bpffs")
    return paths
}

func removeTestRuntime(_ paths: BpfmanPaths) {
    umount2(paths.bpffs, Int32(MNT_DETACH))
    try? FileManager.default.removeItem(atPath: paths.root)
}

/// Runs `body` with a fresh engine under a private bpffs, then asserts that nothing leaked: no records, no
/// pins, no BPF/perf fds beyond those open before, and every program the test loaded gone from the kernel.
func withTestEngine(
    _ tag: String = "t",
    _ body: (TestEngine) async throws -> Void
) async throws {
    let paths = try makeTestRuntime(tag)
    defer { removeTestRuntime(paths) }
    let before = bpfDescriptors()
    let engine = try await Engine(paths: paths)
    let harness = TestEngine(engine: engine, paths: paths, descriptorsBefore: before)
    try await body(harness)
    harness.expectNoDescriptorsAtRest("at the end of the test, before the engine closes")
    // Nothing left behind.
    let managed = try await engine.list(ListFilter(bpfmanProgramsOnly: true))
    #expect(managed.isEmpty, "no program records left: \(managed.map(\.kernelInfo.id))")
    let links = try await engine.links()
    #expect(links.isEmpty, "no link records left: \(links.map(\.id))")
    #expect(filesUnder(paths.bpffs) == [], "no pins left")
    await engine.close()
    #expect(bpfDescriptors().subtracting(before).isEmpty, "no BPF or perf fds left open")
    for id in harness.loadedIDs {
        var gone = false
        for _ in 0..<400 where !gone {
            gone = !BPF.programExists(id: id)
            if !gone { usleep(5000) }
        }
        #expect(gone, "program \(id) is gone from the kernel")
    }
}

/// Runs `body` and returns the `EngineError` it threw (failing the test when it threw nothing else).
func engineError(_ body: () async throws -> Void) async -> EngineError? {
    do {
        try await body()
        Issue.record("expected an EngineError, nothing was thrown")
        return nil
    } catch let error as EngineError {
        return error
    } catch {
        Issue.record("expected an EngineError, got \(error)")
        return nil
    }
}
