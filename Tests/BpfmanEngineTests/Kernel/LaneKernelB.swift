import CBPF
import Glibc
import TestSupport
import Testing

extension KernelTests {
    /// Proof that `scripts/run-kernel-b.sh` boots kernel B and that it allows what kernel A refuses:
    /// kprobes, the BPF LSM and fentry, each loaded straight through libbpf (fixture `lane_fentry`)
    /// and observed through its counter. Skipped, with the reason, anywhere but the lane.
    @Suite(.enabled(if: TestKernel.isKernelBLane, "\(TestKernel.needsKernelB)"))
    struct LaneKernelB {
        @Test func bootsDebiansKernelWithKprobesAndTheBPFLSM() throws {
            var name = utsname()
            uname(&name)
            let release = withUnsafeBytes(of: &name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            #expect(release.hasSuffix("-amd64"), "Debian's kernel releases end in -amd64: \(release)")
            #expect(TestKernel.hasKprobes, "no kprobe PMU under /sys/bus/event_source/devices")
            #expect(TestKernel.hasBPFLSM, "bpf missing from /sys/kernel/security/lsm")
            // Kernel A answers EPERM here; kernel B lists the function the fixture traces.
            let functions = try readAll("/sys/kernel/tracing/available_filter_functions")
            #expect(functions.split(separator: "\n").contains { $0.hasPrefix("__x64_sys_getpgid") })
        }

        @Test func fentryCounterRisesWhileAttachedOnly() throws {
            try withLaneObject { object in
                getpgid(0)
                #expect(try count(object, slot: 0) == 0, "counts nothing before attach")
                try withLink(object, program: "count_fentry") {
                    for _ in 0..<5 { getpgid(0) }
                }
                #expect(try count(object, slot: 0) == 5)
                getpgid(0)
                #expect(try count(object, slot: 0) == 5, "counts nothing after detach")
            }
        }

        @Test func kprobeCounterRisesWhileAttachedOnly() throws {
            try withLaneObject { object in
                try withLink(object, program: "count_kprobe") {
                    for _ in 0..<3 { getpgid(0) }
                }
                getpgid(0)
                #expect(try count(object, slot: 1) == 3)
            }
        }

        @Test func lsmProgramDeniesGetpgidWhileAttached() throws {
            try withLaneObject { object in
                let me = getpid()
                // The hook runs for getpgid of a non-zero pid only.
                #expect(getpgid(me) >= 0)
                try withLink(object, program: "deny_getpgid") {
                    errno = 0
                    #expect(getpgid(me) == -1)
                    #expect(errno == EPERM, "the LSM program's -EPERM reaches the caller")
                }
                #expect(getpgid(me) >= 0, "allowed again after detach")
                #expect(try count(object, slot: 2) == 1)
            }
        }
    }
}

/// Opens and loads the `lane_fentry` fixture, points its `target` map at this process, runs `body`
/// and closes the object (which unloads its programs and maps: nothing is pinned).
private func withLaneObject(_ body: (OpaquePointer) throws -> Void) throws {
    let path = try BPFFixtures.object("lane_fentry")
    let object = try #require(cbpf_object_open(path), "bpf_object__open_file: \(String(cString: strerror(errno)))")
    defer { bpf_object__close(object) }
    let loaded = bpf_object__load(object)
    try #require(loaded == 0, "bpf_object__load: \(String(cString: strerror(-loaded)))")

    let target = try #require(bpf_object__find_map_by_name(object, "target"))
    var key: UInt32 = 0
    var tgid = UInt32(getpid())
    let updated = bpf_map__update_elem(target, &key, 4, &tgid, 4, 0)
    try #require(updated == 0, "bpf_map__update_elem: \(String(cString: strerror(-updated)))")
    try body(object)
}

/// Attaches `program` of `object` with libbpf's default for its section, runs `body`, then destroys
/// the link (detaching the program).
private func withLink(_ object: OpaquePointer, program: String, _ body: () throws -> Void) throws {
    let handle = try #require(bpf_object__find_program_by_name(object, program), "no program \(program)")
    let link = try #require(
        bpf_program__attach(handle),
        "bpf_program__attach(\(program)): \(String(cString: strerror(errno)))"
    )
    defer { bpf_link__destroy(link) }
    try body()
}

/// The whole of a file whose size `stat` does not know (tracefs reports 0), read to EOF.
private func readAll(_ path: String) throws -> String {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    try #require(fd >= 0, "open \(path): \(String(cString: strerror(errno)))")
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let got = read(fd, &chunk, chunk.count)
        try #require(got >= 0, "read \(path): \(String(cString: strerror(errno)))")
        if got == 0 { break }
        bytes += chunk[0..<got]
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// Slot `slot` of the fixture's `counter` map, read from the kernel.
private func count(_ object: OpaquePointer, slot: UInt32) throws -> UInt64 {
    let counter = try #require(bpf_object__find_map_by_name(object, "counter"))
    var key = slot
    var value: UInt64 = 0
    let found = bpf_map__lookup_elem(counter, &key, 4, &value, 8, 0)
    try #require(found == 0, "bpf_map__lookup_elem: \(String(cString: strerror(-found)))")
    return value
}
