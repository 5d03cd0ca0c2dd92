import Foundation
import Glibc
import TestSupport
import Testing

@testable import BpfmanEngine

extension KernelTests {
    /// kprobe/kretprobe through the engine, proven by counters inside kernel B (SPEC §4.12).
    @Suite(.enabled(if: TestKernel.isKernelBLane, "\(TestKernel.needsKernelB)"))
    struct EngineKprobeKernelB {
        @Test func kprobeAndKretprobeCountCalls() async throws {
            try await withTestEngine("kprobe") { h in
                let loaded = try await h.load(
                    LoadRequest(
                        bytecode: .file(try BPFFixtures.object("kprobe_counter")),
                        programs: [
                            ProgramLoadInfo(name: "kprobe_hit", type: .kprobe),
                            // The agent sends KPROBE for kretprobes: ret-ness comes from the section.
                            ProgramLoadInfo(name: "kretprobe_hit", type: .kprobe),
                        ]
                    )
                )
                #expect(loaded.map { $0.info?.kind } == [.kprobe, .kretprobe])
                let (entry, exit) = (loaded[0].kernelInfo.id, loaded[1].kernelInfo.id)
                let spec = AttachSpec.kprobe(KprobeAttach(fnName: "__x64_sys_getpgid"))
                let links = [
                    try await h.engine.attach(programID: entry, spec: spec),
                    try await h.engine.attach(programID: exit, spec: spec),
                ]
                for _ in 0..<4 { getpgid(0) }
                #expect(try h.counter(program: entry, map: "hits", index: 0) >= 4)
                #expect(try h.counter(program: entry, map: "hits", index: 1) >= 4)
                for link in links { try await h.engine.detach(linkID: link) }

                let offset = await engineError {
                    _ = try await h.engine.attach(
                        programID: exit,
                        spec: .kprobe(KprobeAttach(fnName: "__x64_sys_getpgid", offset: 4))
                    )
                }
                #expect(offset?.code == .invalidArgument)
                #expect(offset?.message == "offset is not supported for kretprobe attachment")
                let unknown = await engineError {
                    _ = try await h.engine.attach(
                        programID: entry,
                        spec: .kprobe(KprobeAttach(fnName: "no_such_kernel_function_x"))
                    )
                }
                #expect(unknown?.code == .internal)
                #expect(unknown?.message.hasPrefix("attach kprobe no_such_kernel_function_x: ") == true)
                // SPEC §10 scenario 23: an offset past the end of the function is the kernel's refusal (INTERNAL)
                // and leaves no link behind; offset 0 then attaches; container_pid is accepted and ignored.
                let beyond = await engineError {
                    _ = try await h.engine.attach(
                        programID: entry,
                        spec: .kprobe(KprobeAttach(fnName: "__x64_sys_getpgid", offset: 0x10_0000))
                    )
                }
                #expect(beyond?.code == .internal, "\(beyond?.message ?? "")")
                #expect(try await h.engine.links().isEmpty, "no link record after the refusal")
                #expect(filesUnder(h.paths.linksDirectory).isEmpty, "no link pin after the refusal")
                let again = try await h.engine.attach(
                    programID: entry,
                    spec: .kprobe(KprobeAttach(fnName: "__x64_sys_getpgid", offset: 0, containerPid: 1))
                )
                let before = try h.counter(program: entry, map: "hits", index: 0)
                for _ in 0..<3 { getpgid(0) }
                #expect(try h.counter(program: entry, map: "hits", index: 0) >= before + 3)
                try await h.engine.detach(linkID: again)
                try await h.engine.unload(id: entry)
                try await h.engine.unload(id: exit)
            }
        }
    }

    /// fentry, fexit and LSM programs with load-time targets, proven by counters inside kernel B (SPEC §4.15).
    @Suite(.enabled(if: TestKernel.isKernelBLane, "\(TestKernel.needsKernelB)"))
    struct EngineTracingKernelB {
        func loadAndAttach(
            _ h: TestEngine,
            _ name: String,
            _ type: BpfmanProgramType,
            _ target: LoadTarget,
            _ spec: AttachSpec
        ) async throws -> (UInt32, UInt32) {
            let id = try await h.load(fixture: "fentry_counter", name, type, target: target)
            let got = try await h.engine.get(id: id)
            #expect(got.info?.record.attachTarget == target.targetName)
            return (id, try await h.engine.attach(programID: id, spec: spec))
        }

        @Test func fentryAndFexitCountCallsOfTheirLoadTimeTarget() async throws {
            try await withTestEngine("fentry") { h in
                let (fentry, l1) = try await loadAndAttach(
                    h,
                    "fentry_hit",
                    .fentry,
                    .fentry(functionName: "__x64_sys_getpgid"),
                    .fentry(metadata: ["a": "b"])
                )
                let (fexit, l2) = try await loadAndAttach(
                    h,
                    "fexit_hit",
                    .fexit,
                    .fexit(functionName: "__x64_sys_getpgid"),
                    .fexit(metadata: [:])
                )
                #expect(try await h.engine.get(id: fentry).kernelInfo.programType == 26)
                for _ in 0..<3 { getpgid(0) }
                #expect(try h.counter(program: fentry, map: "traced", index: 0) >= 3)
                #expect(try h.counter(program: fexit, map: "traced", index: 1) >= 3)
                try await h.engine.detach(linkID: l1)
                try await h.engine.detach(linkID: l2)
                try await h.engine.unload(id: fentry)
                try await h.engine.unload(id: fexit)
            }
        }

        @Test func lsmProgramRunsOnItsHook() async throws {
            try await withTestEngine("lsm") { h in
                let (id, link) = try await loadAndAttach(
                    h,
                    "lsm_hit",
                    .lsm,
                    .lsm(hookName: "file_open"),
                    .lsm(metadata: [:])
                )
                #expect(try await h.engine.get(id: id).kernelInfo.programType == 29)
                for _ in 0..<2 { close(open("/etc/hostname", O_RDONLY)) }
                #expect(try h.counter(program: id, map: "traced", index: 2) >= 2)
                try await h.engine.detach(linkID: link)
                try await h.engine.unload(id: id)
            }
        }

        @Test func unknownFentryTargetFailsTheLoad() async throws {
            try await withTestEngine("fentry-bad") { h in
                let error = await engineError {
                    _ = try await h.load(
                        fixture: "fentry_counter",
                        "fentry_hit",
                        .fentry,
                        target: .fentry(functionName: "no_such_fn_x")
                    )
                }
                #expect(error?.code == .internal)
            }
        }
    }

    /// Kernel A refuses fentry/fexit/LSM programs: Load fails with INTERNAL and leaves nothing (SPEC §4.15).
    @Suite(.enabled(if: !TestKernel.isKernelBLane && !TestKernel.hasBPFLSM, "kernel A behaviour"))
    struct EngineTracingRefusedOnKernelA {
        @Test func fentryLoadIsRefusedWithInternal() async throws {
            try await withTestEngine("fentry-a") { h in
                let error = await engineError {
                    _ = try await h.load(
                        fixture: "fentry_counter",
                        "fentry_hit",
                        .fentry,
                        target: .fentry(functionName: "do_unlinkat")
                    )
                }
                #expect(error?.code == .internal)
                #expect(error?.message.hasPrefix("failed to load program fentry_hit: ") == true)
                #expect(error?.message.contains("Operation not permitted") == true, "\(error?.message ?? "")")
            }
        }
    }
}
