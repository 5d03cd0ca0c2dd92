import CBPF
import Foundation
import Glibc
import TestSupport
import Testing

@testable import BpfmanEngine

/// A function of the test process for uprobes to hit; `@_cdecl` keeps its symbol name in `.symtab`.
@_cdecl("bpfman_engine_uprobe_target")
@inline(never)
public func bpfmanEngineUprobeTarget(_ value: Int32) -> Int32 {
    value &+ 1
}

/// Calls the target through an opaque pointer so the optimiser cannot drop the calls.
private let uprobeTargetPointer: @convention(c) (Int32) -> Int32 = bpfmanEngineUprobeTarget

private var testExecutable: String {
    (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? "/proc/self/exe"
}

/// `bpf_link_info.perf_event.type` of a pinned perf-event link (1 uprobe, 2 uretprobe, ...), read with a raw
/// buffer: Debian's uapi headers predate the field (kernel 6.6). Layout: `type`, `id`, `prog_id`, then the
/// 8-aligned union whose `perf_event` member starts with the event type.
private func perfEventType(ofLinkPinnedAt pin: String) throws -> UInt32 {
    let fd = bpf_obj_get(pin)
    try #require(fd >= 0, "link pin \(pin) opens")
    defer { close(fd) }
    var buffer = [UInt8](repeating: 0, count: 256)
    var length = UInt32(buffer.count)
    let status = buffer.withUnsafeMutableBytes { bpf_obj_get_info_by_fd(fd, $0.baseAddress, &length) }
    try #require(status == 0, "bpf_obj_get_info_by_fd on \(pin): errno \(errno)")
    let word = { (offset: Int) in buffer.withUnsafeBytes { $0.load(fromByteOffset: offset, as: UInt32.self) } }
    try #require(word(0) == 7, "BPF_LINK_TYPE_PERF_EVENT, got link type \(word(0))")
    return word(16)
}

extension KernelTests {
    /// uprobe/uretprobe attach proven by counters in this process (SPEC §4.13).
    @Suite struct EngineUprobeTests {
        @Test func uprobeAndUretprobeCountCallsOfAFunctionInThisProcess() async throws {
            try await withTestEngine("uprobe") { h in
                let loaded = try await h.load(
                    LoadRequest(
                        bytecode: .file(try BPFFixtures.object("uprobe_counter")),
                        programs: [
                            ProgramLoadInfo(name: "count_call", type: .uprobe),
                            ProgramLoadInfo(name: "count_return", type: .uprobe),
                        ]
                    )
                )
                let call = loaded[0].kernelInfo.id
                let ret = loaded[1].kernelInfo.id
                #expect(loaded[0].info?.kind == .uprobe)
                #expect(loaded[1].info?.kind == .uretprobe, "ret-ness comes from the section")
                let target = testExecutable
                let entry = try await h.engine.attach(
                    programID: call,
                    spec: .uprobe(UprobeAttach(fnName: "bpfman_engine_uprobe_target", target: target, pid: getpid()))
                )
                let exit = try await h.engine.attach(
                    programID: ret,
                    spec: .uprobe(UprobeAttach(fnName: "bpfman_engine_uprobe_target", target: target))
                )
                var sum: Int32 = 0
                for i in 0..<7 { sum &+= uprobeTargetPointer(Int32(i)) }
                #expect(sum == 28)
                #expect(try h.counter(program: call, map: "calls", index: 0) == 7)
                #expect(try h.counter(program: call, map: "calls", index: 1) == 7)
                h.expectNoDescriptorsAtRest("with uprobe and uretprobe links attached")
                // The kernel's own view: a perf_event link whose event is a uprobe, resp. a uretprobe.
                #expect(try perfEventType(ofLinkPinnedAt: h.paths.linkPin(entry)) == 1, "BPF_PERF_EVENT_UPROBE")
                #expect(try perfEventType(ofLinkPinnedAt: h.paths.linkPin(exit)) == 2, "BPF_PERF_EVENT_URETPROBE")
                let record = try await h.engine.link(id: entry)
                #expect(record.resolvedTarget == target)
                try await h.engine.detach(linkID: entry)
                try await h.engine.detach(linkID: exit)
                _ = uprobeTargetPointer(1)
                #expect(try h.counter(program: call, map: "calls", index: 0) == 7, "detached: no more counts")
                try await h.engine.unload(id: call)
                try await h.engine.unload(id: ret)
            }
        }

        @Test func libraryNameResolvesThroughTheLinkerCacheAndPidFilters() async throws {
            try await withTestEngine("libc") { h in
                let id = try await h.load(fixture: "uprobe_counter", "count_call", .uprobe)
                // Without pid: /etc/ld.so.cache; with pid: the process's mapped files.
                let cached = try await h.engine.attach(
                    programID: id,
                    spec: .uprobe(UprobeAttach(fnName: "getpid", target: "libc"))
                )
                let cachedPath = try #require(try await h.engine.link(id: cached).resolvedTarget)
                #expect(cachedPath.hasSuffix("/libc.so.6"))
                try await h.engine.detach(linkID: cached)
                let mine = try await h.engine.attach(
                    programID: id,
                    spec: .uprobe(UprobeAttach(fnName: "getpid", target: "libc", pid: getpid()))
                )
                let mappedPath = try #require(try await h.engine.link(id: mine).resolvedTarget)
                #expect(mappedPath.hasSuffix("/libc.so.6"))
                let before = try h.counter(program: id, map: "calls")
                for _ in 0..<3 { _ = getpid() }
                #expect(try h.counter(program: id, map: "calls") >= before + 3)
                try await h.engine.unload(id: id)
            }
        }

        /// SPEC §10 scenario 21's pid form: two processes make the same libc calls; a uprobe attached with one
        /// one's pid counts exactly that process's calls.
        @Test func pidFilterCountsOnlyTheChosenProcess() async throws {
            /// A Python process that says "ready", then calls getppid() `calls` times once a byte arrives.
            func caller(_ calls: Int) throws -> (process: Process, input: Pipe) {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
                process.arguments = [
                    "-c",
                    "import os, sys; print('ready', flush=True); sys.stdin.read(1); [os.getppid() for _ in range(\(calls))]",
                ]
                let input = Pipe()
                let output = Pipe()
                process.standardInput = input
                process.standardOutput = output
                try process.run()
                let line = output.fileHandleForReading.availableData
                #expect(String(decoding: line, as: UTF8.self).hasPrefix("ready"))
                return (process, input)
            }
            let chosen = try caller(5)
            let other = try caller(7)
            defer {
                for child in [chosen.process, other.process] where child.isRunning { child.terminate() }
            }
            try await withTestEngine("pid") { h in
                let id = try await h.load(fixture: "uprobe_counter", "count_call", .uprobe)
                let link = try await h.engine.attach(
                    programID: id,
                    spec: .uprobe(
                        UprobeAttach(fnName: "getppid", target: "libc", pid: chosen.process.processIdentifier)
                    )
                )
                for child in [chosen, other] {
                    child.input.fileHandleForWriting.write(Data("x".utf8))
                    child.process.waitUntilExit()
                    #expect(child.process.terminationStatus == 0)
                }
                let counted = try h.counter(program: id, map: "calls")
                #expect(counted == 5, "the chosen process's 5 calls, not the other's 7")
                try await h.engine.detach(linkID: link)
                try await h.engine.unload(id: id)
            }
        }

        /// A program mounted only inside a container's mount namespace: resolved and opened by `bpfman-ns`,
        /// probed at its entry point, counted when run inside that namespace.
        @Test func containerPidAttachesInsideTheContainersMountNamespace() async throws {
            let directory = "/tmp/eng-ctr-\(getpid())"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let container = Process()
            container.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
            container.arguments = [
                "--mount", "--propagation", "private", "sh", "-c",
                "mount -t tmpfs none \(directory) && cp /bin/busybox \(directory)/busybox && touch \(directory)/ready && exec sleep 60",
            ]
            try container.run()
            defer {
                container.terminate()
                container.waitUntilExit()
            }
            let pid = container.processIdentifier
            #expect(await eventually { FileManager.default.fileExists(atPath: "/proc/\(pid)/root\(directory)/ready") })
            #expect(!FileManager.default.fileExists(atPath: "\(directory)/busybox"), "invisible on the host")
            let entry = try #require(ELFFile.entryPointFileOffset(path: "/bin/busybox"))
            try await withTestEngine("container") { h in
                let id = try await h.load(fixture: "uprobe_counter", "count_call", .uprobe)
                let link = try await h.engine.attach(
                    programID: id,
                    spec: .uprobe(UprobeAttach(offset: entry, target: "\(directory)/busybox", containerPid: pid))
                )
                #expect(try await h.engine.link(id: link).resolvedTarget == "\(directory)/busybox")
                for _ in 0..<3 {
                    let result = try run("nsenter", ["-t", "\(pid)", "-m", "\(directory)/busybox", "true"])
                    #expect(result.status == 0, "\(result.output)")
                }
                #expect(try h.counter(program: id, map: "calls") >= 3)
                #expect(FileManager.default.fileExists(atPath: h.paths.linkPin(link)))
                h.expectNoDescriptorsAtRest("with a container uprobe link attached")
                let missing = await engineError {
                    _ = try await h.engine.attach(
                        programID: id,
                        spec: .uprobe(UprobeAttach(target: "/nonexistent/x", containerPid: pid))
                    )
                }
                #expect(missing?.code == .internal)
                #expect(
                    missing?.message
                        == "unable to attach uprobe in container with pid \(pid): uprobe target \"/nonexistent/x\" could not be resolved: no such file"
                )
                try await h.engine.detach(linkID: link)
                try await h.engine.unload(id: id)
            }
        }
    }
}
