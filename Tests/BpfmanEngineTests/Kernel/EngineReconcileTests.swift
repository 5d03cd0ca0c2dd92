import Foundation
import Glibc
import TestSupport
import Testing

@testable import BpfmanEngine

extension KernelTests {
    /// Stale records at run time and start-up reconciliation of pins (SPEC §6.3, §6.4).
    @Suite struct EngineReconcileTests {
        @Test func programRemovedOutOfBandIsOmittedByListAndDroppedByGet() async throws {
            try await withTestEngine("stale") { h in
                let id = try await h.load(fixture: "tracepoint_counter", "count_kill", .tracepoint)
                #expect(unlink(h.paths.programPin(id)) == 0)
                #expect(await eventually { !BPF.programExists(id: id) })
                let listed = try await h.engine.list(ListFilter(bpfmanProgramsOnly: true))
                #expect(!listed.contains { $0.kernelInfo.id == id })
                let error = await engineError { _ = try await h.engine.get(id: id) }
                #expect(error?.code == .notFound)
                #expect(error?.message == "program \(id) does not exist")
                #expect(filesUnder(h.paths.bpffs) == [], "the stale record's map pins went with it")
            }
        }

        @Test func restartRepinsLiveObjectsAndRemovesOrphans() async throws {
            let paths = try makeTestRuntime("repin")
            defer { removeTestRuntime(paths) }
            var engine = try await Engine(paths: paths)
            let id = try await engine.load(
                LoadRequest(
                    bytecode: .file(try BPFFixtures.object("tracepoint_counter")),
                    programs: [ProgramLoadInfo(name: "count_kill", type: .tracepoint)]
                )
            )[0].kernelInfo.id
            let link = try await engine.attach(
                programID: id,
                spec: .tracepoint(TracepointAttach(tracepoint: "syscalls/sys_enter_kill"))
            )
            await engine.close()
            do {
                // Keep the objects alive through fds while their pins vanish; add pins nobody recorded.
                let program = try BPF.objectGet(paths.programPin(id))
                let kernelLink = try BPF.objectGet(paths.linkPin(link))
                #expect(unlink(paths.programPin(id)) == 0)
                #expect(unlink(paths.linkPin(link)) == 0)
                try BPF.pin(program, at: paths.bpffs + "/prog_4000000000").get()
                try BPF.pin(kernelLink, at: paths.linkPin(999)).get()
                mkdir(paths.mapSetDirectory(4_000_000_000), 0o755)
                engine = try await Engine(paths: paths)
            }
            #expect(
                filesUnder(paths.bpffs) == ["links/\(link)", "maps/\(id)/counter", "prog_\(id)"],
                "re-pinned from the live ids; orphans removed"
            )
            let got = try await engine.get(id: id)
            #expect(got.info?.links == [link])
            try await engine.unload(id: id)
            #expect(filesUnder(paths.bpffs) == [])
            await engine.close()
        }
    }
}
