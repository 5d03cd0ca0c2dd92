import CBPF
import Foundation
import Glibc
import TestSupport
import Testing

@testable import BpfmanEngine

extension KernelTests {
    /// Load, pin layout, map sets, global data, map sharing and Unload against the real kernel (SPEC §2, §3.1,
    /// §3.2, §5).
    @Suite struct EngineLoadTests {
        @Test func loadPinsProgramAndMapsThenUnloadRemovesThem() async throws {
            try await withTestEngine("load") { h in
                let object = try BPFFixtures.object("tracepoint_counter")
                let loaded = try await h.load(
                    LoadRequest(
                        bytecode: .file(object),
                        programs: [ProgramLoadInfo(name: "count_kill", type: .tracepoint)],
                        metadata: ["owner": "engine-test"]
                    )
                )
                let program = try #require(loaded.first)
                let id = program.kernelInfo.id
                #expect(program.kernelInfo.name == "count_kill")
                #expect(program.kernelInfo.programType == 5)
                #expect(program.kernelInfo.tag.count == 16)
                #expect(program.kernelInfo.mapIDs.count == 1)
                #expect(program.kernelInfo.bytesMemlock > 0)
                let info = try #require(program.info)
                #expect(info.name == "count_kill")
                #expect(info.kind == .tracepoint)
                #expect(info.mapPinPath == h.paths.mapSetDirectory(id))
                #expect(info.mapUsedBy == ["\(id)"])
                #expect(info.mapOwnerID == nil)
                #expect(info.metadata == ["owner": "engine-test"])
                #expect(info.bytecode == .file(object))
                #expect(filesUnder(h.paths.bpffs) == ["maps/\(id)/counter", "prog_\(id)"])
                var st = stat()
                #expect(stat(h.paths.mapPin(owner: id, map: "counter"), &st) == 0)
                #expect(st.st_mode & 0o777 == 0o660)
                h.expectNoDescriptorsAtRest("with a program loaded")

                let got = try await h.engine.get(id: id)
                #expect(got.info?.name == "count_kill")
                #expect(got.kernelInfo.id == id)
                let listed = try await h.engine.list()
                #expect(listed.contains { $0.kernelInfo.id == id && $0.info != nil })
                #expect(listed.map(\.kernelInfo.id) == listed.map(\.kernelInfo.id).sorted())

                try await h.engine.unload(id: id)
                #expect(filesUnder(h.paths.bpffs) == [])
                let again = await engineError { try await h.engine.unload(id: id) }
                #expect(again?.code == .notFound)
            }
        }

        @Test func multiProgramLoadSharesMapsAndGlobalData() async throws {
            try await withTestEngine("multi") { h in
                let object = try BPFFixtures.object("tracepoint_multi")
                let five: [UInt8] = [5, 0, 0, 0]
                let loaded = try await h.load(
                    LoadRequest(
                        bytecode: .file(object),
                        programs: [
                            ProgramLoadInfo(name: "multi_getppid", type: .tracepoint),
                            ProgramLoadInfo(name: "multi_kill", type: .tracepoint),
                        ],
                        globalData: ["increment": five]
                    )
                )
                // Request order, each with its own map directory holding the same kernel map.
                #expect(loaded.map { $0.info?.name } == ["multi_getppid", "multi_kill"])
                let ids = loaded.map(\.kernelInfo.id)
                #expect(loaded[0].kernelInfo.mapIDs == loaded[1].kernelInfo.mapIDs)
                #expect(loaded.allSatisfy { $0.info?.mapOwnerID == nil })
                #expect(loaded.allSatisfy { $0.info?.globalData == ["increment": five] })
                for id in ids { #expect(filesUnder(h.paths.mapSetDirectory(id)) == ["shared_counts"]) }
                // Each program of the request owns its own map set, in Load and in Get.
                #expect(loaded.allSatisfy { $0.info?.mapUsedBy == ["\($0.kernelInfo.id)"] })
                for id in ids {
                    let got = try await h.engine.get(id: id)
                    #expect(got.info?.mapOwnerID == nil)
                    #expect(got.info?.mapUsedBy == ["\(id)"])
                }

                let link = try await h.engine.attach(
                    programID: ids[1],
                    spec: .tracepoint(TracepointAttach(tracepoint: "syscalls/sys_enter_kill"))
                )
                for _ in 0..<4 { kill(getpid(), 0) }
                let count = try h.counter(program: ids[0], map: "shared_counts", index: 0)
                #expect(count >= 20, "four kills counted with increment 5")
                #expect(count % 5 == 0)
                try await h.engine.detach(linkID: link)
                for id in ids { try await h.engine.unload(id: id) }
            }
        }

        @Test func dependantReusesTheOwnersMapsAndOutlivesIt() async throws {
            try await withTestEngine("owner") { h in
                let owner = try await h.load(fixture: "tracepoint_counter", "count_kill", .tracepoint)
                let dependant = try await h.load(
                    fixture: "tracepoint_counter",
                    "count_kill",
                    .tracepoint,
                    mapOwner: owner
                )
                let ownerInfo = try await h.engine.get(id: owner)
                let dependantInfo = try await h.engine.get(id: dependant)
                #expect(ownerInfo.kernelInfo.mapIDs == dependantInfo.kernelInfo.mapIDs, "same kernel map")
                #expect(dependantInfo.info?.mapOwnerID == owner)
                #expect(dependantInfo.info?.mapPinPath == h.paths.mapSetDirectory(owner))
                #expect(ownerInfo.info?.mapUsedBy == ["\(owner)", "\(dependant)"])
                #expect(dependantInfo.info?.mapUsedBy == ["\(owner)", "\(dependant)"])
                #expect(!FileManager.default.fileExists(atPath: h.paths.mapSetDirectory(dependant)))
                // Without map_owner_id the same object gets maps of its own.
                let independent = try await h.load(fixture: "tracepoint_counter", "count_kill", .tracepoint)
                let independentInfo = try await h.engine.get(id: independent)
                #expect(Set(independentInfo.kernelInfo.mapIDs).isDisjoint(with: ownerInfo.kernelInfo.mapIDs))
                #expect(independentInfo.info?.mapPinPath == h.paths.mapSetDirectory(independent))
                try await h.engine.unload(id: independent)

                // A dependant is never an owner.
                let notOwner = await engineError {
                    _ = try await h.load(fixture: "tracepoint_counter", "count_kill", .tracepoint, mapOwner: dependant)
                }
                #expect(notOwner?.code == .invalidArgument)
                #expect(notOwner?.message == "map_owner_id \(dependant) does not exist: map owner not found")

                try await h.engine.unload(id: owner)
                #expect(FileManager.default.fileExists(atPath: h.paths.mapPin(owner: owner, map: "counter")))
                let after = try await h.engine.get(id: dependant)
                #expect(after.info?.mapOwnerID == owner)
                #expect(after.info?.mapUsedBy == ["\(dependant)"])
                // The dependant still counts into the owner's pinned map.
                let link = try await h.engine.attach(
                    programID: dependant,
                    spec: .tracepoint(TracepointAttach(tracepoint: "syscalls/sys_enter_kill"))
                )
                let before = try h.counter(program: dependant, map: "counter")
                for _ in 0..<3 { kill(getpid(), 0) }
                #expect(try h.counter(program: dependant, map: "counter") >= before + 3)
                try await h.engine.detach(linkID: link)
                try await h.engine.unload(id: dependant)
                #expect(!FileManager.default.fileExists(atPath: h.paths.mapSetDirectory(owner)))
            }
        }

        @Test func pinByNameMapsAreSharedAndReferenceCounted() async throws {
            try await withTestEngine("pinned") { h in
                let first = try await h.load(fixture: "tracepoint_pinned", "pinned_kill", .tracepoint)
                let second = try await h.load(fixture: "tracepoint_pinned", "pinned_kill", .tracepoint)
                let shared = h.paths.sharedMapsDirectory + "/eng_pinned_counter"
                #expect(FileManager.default.fileExists(atPath: shared))
                let a = try await h.engine.get(id: first)
                let b = try await h.engine.get(id: second)
                #expect(a.kernelInfo.mapIDs == b.kernelInfo.mapIDs)
                try await h.engine.unload(id: first)
                #expect(FileManager.default.fileExists(atPath: shared), "still referenced by the second program")
                try await h.engine.unload(id: second)
                #expect(!FileManager.default.fileExists(atPath: shared))
            }
        }

        @Test func verifierFailureCarriesTheLogAndLeavesNothing() async throws {
            try await withTestEngine("verifier") { h in
                let object = try BPFFixtures.object("tracepoint_broken")
                let error = await engineError {
                    _ = try await h.load(
                        LoadRequest(
                            bytecode: .file(object),
                            programs: [ProgramLoadInfo(name: "rejected", type: .tracepoint)]
                        )
                    )
                }
                #expect(error?.code == .internal)
                #expect(error?.message.hasPrefix("failed to load program rejected: ") == true)
                #expect(error?.message.contains("\nverifier log:\n") == true)
                #expect(filesUnder(h.paths.bpffs) == [])
                // The broken sibling does not matter when it is not requested.
                let good = try await h.load(fixture: "tracepoint_broken", "accepted", .tracepoint)
                try await h.engine.unload(id: good)
            }
        }

        /// SPEC §10 scenario 4: a request whose second program is missing, or rejected by the verifier, loads
        /// neither: no record, no pin, and no program of the request left in the kernel.
        @Test func aGoodProgramBesideAMissingOrRejectedOneIsNotLoadedEither() async throws {
            try await withTestEngine("all-or-nothing") { h in
                let kernelBefore = Set(BPF.allProgramIDs())
                func expectNoResidue(_ what: String, sourceLocation: SourceLocation = #_sourceLocation) async throws {
                    #expect(
                        try await h.engine.list(ListFilter(bpfmanProgramsOnly: true)).isEmpty,
                        "no record after \(what)",
                        sourceLocation: sourceLocation
                    )
                    #expect(filesUnder(h.paths.bpffs) == [], "no pin after \(what)", sourceLocation: sourceLocation)
                    let settled = await eventually { Set(BPF.allProgramIDs()).subtracting(kernelBefore).isEmpty }
                    #expect(settled, "no new kernel program after \(what)", sourceLocation: sourceLocation)
                }

                /// The error of loading the tracepoint programs `names` of `fixture` in one request.
                func loadError(_ fixture: String, _ names: [String]) async -> EngineError? {
                    await engineError {
                        _ = try await h.load(
                            LoadRequest(
                                bytecode: .file(try BPFFixtures.object(fixture)),
                                programs: names.map { ProgramLoadInfo(name: $0, type: .tracepoint) }
                            )
                        )
                    }
                }

                let missing = await loadError("tracepoint_counter", ["count_kill", "nope"])
                #expect(missing?.code == .invalidArgument)
                #expect(
                    missing?.message == "program(s) not found in object file: [nope]; available programs: [count_kill]"
                )
                try await expectNoResidue("a missing program")

                let rejected = await loadError("tracepoint_broken", ["accepted", "rejected"])
                #expect(rejected?.code == .internal)
                #expect(rejected?.message.hasPrefix("failed to load program rejected: ") == true)
                #expect(rejected?.message.contains("\nverifier log:\n") == true)
                #expect(
                    rejected?.message.contains("invalid func") == true,
                    "the kernel's own words: \(rejected?.message ?? "")"
                )
                try await expectNoResidue("a verifier rejection")
            }
        }

        @Test func recordsSurviveARestartAndLinkIDsAreNeverReused() async throws {
            let paths = try makeTestRuntime("restart")
            defer { removeTestRuntime(paths) }
            var engine = try await Engine(paths: paths)
            let object = try BPFFixtures.object("tracepoint_counter")
            let id = try await engine.load(
                LoadRequest(bytecode: .file(object), programs: [ProgramLoadInfo(name: "count_kill", type: .tracepoint)])
            )[0].kernelInfo.id
            // The kernel allows one attachment of a program per tracepoint: use two.
            let spec = AttachSpec.tracepoint(TracepointAttach(tracepoint: "syscalls/sys_enter_kill"))
            let other = AttachSpec.tracepoint(TracepointAttach(tracepoint: "syscalls/sys_enter_getppid"))
            let first = try await engine.attach(programID: id, spec: spec)
            let second = try await engine.attach(programID: id, spec: other)
            #expect(first >= 1 && second > first)
            try await engine.detach(linkID: second)
            // Without a restart, too, the highest id is not handed out again.
            let third = try await engine.attach(programID: id, spec: other)
            #expect(third > second, "the highest deleted id is not reused")
            try await engine.detach(linkID: third)
            await engine.close()

            engine = try await Engine(paths: paths)
            let got = try await engine.get(id: id)
            #expect(got.info?.links == [first])
            let fourth = try await engine.attach(programID: id, spec: other)
            #expect(fourth > third, "the highest deleted id is not reused after a restart")
            try await engine.unload(id: id)
            #expect(filesUnder(paths.bpffs) == [])
            await engine.close()
        }

        /// The server resolves an image to an object file before the writer lock (SPEC §1.7) and hands the engine
        /// that path; the engine records the image's url and policy, never the credentials or the path.
        @Test func imageBytecodeIsStoredWithoutCredentials() async throws {
            let object = try BPFFixtures.object("tracepoint_counter")
            try await withTestEngine("image") { h in
                let image = BytecodeImage(
                    url: "quay.io/bpfman-bytecode/tracepoint:latest",
                    pullPolicy: .ifNotPresent,
                    username: "user",
                    password: "secret"
                )
                let loaded = try await h.load(
                    LoadRequest(
                        bytecode: .image(image),
                        programs: [ProgramLoadInfo(name: "count_kill", type: .tracepoint)],
                        imageObjectPath: object
                    )
                )
                let id = loaded[0].kernelInfo.id
                let expected = BytecodeLocation.image(
                    BytecodeImage(url: image.url, pullPolicy: .ifNotPresent, username: "", password: "")
                )
                #expect(loaded[0].info?.bytecode == expected)
                #expect(try await h.engine.get(id: id).info?.bytecode == expected, "credentials are never stored")
                // Names are checked against the object, with the file-load message (SPEC §8.1).
                let missing = await engineError {
                    _ = try await h.load(
                        LoadRequest(
                            bytecode: .image(image),
                            programs: [ProgramLoadInfo(name: "other", type: .tracepoint)],
                            imageObjectPath: object
                        )
                    )
                }
                #expect(missing?.code == .invalidArgument)
                #expect(missing?.message.hasPrefix("program(s) not found in object file: [other]") == true)
                let unresolved = await engineError {
                    _ = try await h.load(
                        LoadRequest(
                            bytecode: .image(image),
                            programs: [ProgramLoadInfo(name: "count_kill", type: .tracepoint)]
                        )
                    )
                }
                #expect(unresolved?.code == .failedPrecondition)
                try await h.engine.unload(id: id)
            }
        }
    }
}
