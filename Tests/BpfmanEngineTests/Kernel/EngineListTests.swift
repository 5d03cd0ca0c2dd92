import CBPF
import Foundation
import Glibc
import SystemCalls
import TestSupport
import Testing

@testable import BpfmanEngine

extension KernelTests {
    /// List's numbering and filters, and the live kernel fields (SPEC §3.5, §3.8).
    @Suite struct EngineListTests {
        @Test func filtersByKernelTypeManagedOnlyAndMetadata() async throws {
            try await withTestEngine("list") { h in
                let tracepoint = try await h.load(
                    fixture: "tracepoint_counter",
                    "count_kill",
                    .tracepoint,
                    metadata: ["app": "a", "tier": "1"]
                )
                let uprobe = try await h.load(fixture: "uprobe_counter", "count_call", .uprobe, metadata: ["app": "b"])
                let tcx = try await h.load(fixture: "tcx_counter", "tcx_count", .tcx, metadata: ["app": "a"])
                let tc = try await h.load(fixture: "tc_counter", "tc_count_ok", .tc, metadata: ["app": "c"])
                let xdp = try await h.load(fixture: "xdp_counter", "xdp_count_pass", .xdp, metadata: ["app": "c"])
                // A program the engine does not manage.
                let object = try BPFObject.open(
                    path: try BPFFixtures.object("tracepoint_counter"),
                    pinRoot: "/nonexistent"
                )
                try object.load().get()
                let foreign = try BPF.programID(OwnedFD(taking: dup(bpf_program__fd(object.programs[0].handle)))).get()

                let all = try await h.engine.list()
                #expect(all.map(\.kernelInfo.id) == all.map(\.kernelInfo.id).sorted(), "ascending kernel ids")
                #expect(Set([tracepoint, uprobe, tcx, tc, xdp, foreign]).isSubset(of: Set(all.map(\.kernelInfo.id))))
                #expect(all.first { $0.kernelInfo.id == foreign }?.info == nil, "unmanaged: kernel info only")

                let managed = try await h.engine.list(ListFilter(bpfmanProgramsOnly: true))
                #expect(managed.map(\.kernelInfo.id) == [tracepoint, uprobe, tcx, tc, xdp])

                let probes = try await h.engine.list(ListFilter(programType: 2))
                #expect(probes.filter { $0.info != nil }.map(\.kernelInfo.id) == [uprobe], "2 matches every probe kind")
                let tracepoints = try await h.engine.list(ListFilter(programType: 5))
                #expect(tracepoints.contains { $0.kernelInfo.id == foreign }, "unmanaged match on their own type")
                #expect(tracepoints.filter { $0.info != nil }.map(\.kernelInfo.id) == [tracepoint])
                // Kernel type 3 (sched_cls) is TC and TCX alike, with or without programs-only; never XDP (6).
                let classifiers = try await h.engine.list(ListFilter(programType: 3, bpfmanProgramsOnly: true))
                #expect(classifiers.map(\.kernelInfo.id) == [tcx, tc])
                let allClassifiers = try await h.engine.list(ListFilter(programType: 3))
                #expect(allClassifiers.filter { $0.info != nil }.map(\.kernelInfo.id) == [tcx, tc])
                #expect(allClassifiers.allSatisfy { $0.kernelInfo.programType == 3 })
                let xdps = try await h.engine.list(ListFilter(programType: 6, bpfmanProgramsOnly: true))
                #expect(xdps.map(\.kernelInfo.id) == [xdp])

                let appA = try await h.engine.list(ListFilter(matchMetadata: ["app": "a"]))
                #expect(appA.map(\.kernelInfo.id) == [tracepoint, tcx], "a selector excludes unmanaged programs")
                let both = try await h.engine.list(ListFilter(matchMetadata: ["app": "a", "tier": "1"]))
                #expect(both.map(\.kernelInfo.id) == [tracepoint])

                let info = try #require(managed.first?.kernelInfo)
                #expect(
                    info.loadedAt.wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}/) != nil,
                    "\(info.loadedAt)"
                )
                #expect(info.tag.wholeMatch(of: /[0-9a-f]{16}/) != nil)
                #expect(info.jited == (info.bytesJited > 0))
                #expect(info.verifiedInsns > 0)
                for id in [tracepoint, uprobe, tcx, tc, xdp] { try await h.engine.unload(id: id) }
            }
        }

        @Test func aListLongEnoughToBeReadInTwoHalvesKeepsIdOrderAndEachProgramsOwnFields() async throws {
            try await withTestEngine("listmany") { h in
                let count = KernelProgramInfo.parallelReadThreshold + 5
                var loaded: [UInt32] = []
                for index in 0..<count {
                    loaded.append(
                        try await h.load(
                            fixture: "tracepoint_counter",
                            "count_kill",
                            .tracepoint,
                            metadata: ["n": "\(index)"]
                        )
                    )
                }
                // One of them vanishes behind the engine's back (its pin removed): left out, the rest unchanged.
                let gone = loaded[count / 2]
                unlink(h.paths.programPin(gone))
                var vanished = false
                for _ in 0..<400 where !vanished {
                    vanished = !BPF.programExists(id: gone)
                    if !vanished { usleep(5000) }
                }
                try #require(vanished)
                let expected = loaded.filter { $0 != gone }

                let managed = try await h.engine.list(ListFilter(bpfmanProgramsOnly: true))
                #expect(managed.map(\.kernelInfo.id) == expected)
                for details in managed {
                    // Each entry pairs a program's record with that same program's kernel info.
                    let index = try #require(loaded.firstIndex(of: details.kernelInfo.id))
                    #expect(details.info?.metadata == ["n": "\(index)"])
                    #expect(details.info?.mapUsedBy == [String(details.kernelInfo.id)])
                    #expect(details.kernelInfo.name == "count_kill")
                    #expect(details.kernelInfo.bytesMemlock > 0)
                }
                let all = try await h.engine.list()
                #expect(all.map(\.kernelInfo.id) == all.map(\.kernelInfo.id).sorted())
                #expect(Set(expected).isSubset(of: Set(all.map(\.kernelInfo.id))))
                #expect(!all.contains { $0.kernelInfo.id == gone })

                _ = try? await h.engine.get(id: gone)  // drops the stale record
                for id in expected { try await h.engine.unload(id: id) }
            }
        }

        @Test func kernelRefusalOfAnAttachLeavesNothing() async throws {
            try await withTestEngine("refuse") { h in
                let id = try await h.load(fixture: "uprobe_counter", "count_call", .uprobe)
                let error = await engineError {
                    _ = try await h.engine.attach(
                        programID: id,
                        spec: .uprobe(UprobeAttach(offset: 0xffff_ffff_ff, target: "/bin/true"))
                    )
                }
                #expect(error?.code == .internal)
                #expect(error?.message.hasPrefix("attach uprobe /bin/true: ") == true)
                #expect(try await h.engine.links().isEmpty)
                #expect(filesUnder(h.paths.linksDirectory) == [])
                try await h.engine.unload(id: id)
            }
        }
    }
}
