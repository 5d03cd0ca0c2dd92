import Foundation
import TestSupport
import Testing

extension DaemonKernelTests {
    /// The Go-era reference's `link attach kprobe|fentry|fexit|lsm` forms, which kernel A refuses (no kprobes, no
    /// BTF for fentry/fexit/LSM): run in kernel B, with and without a daemon. Each program is loaded with
    /// `program load file … --programs type:name[:attach_func] -o json`, attached as the reference writes it, its
    /// kernel link checked with bpftool (the link runs this program), listed by `link list -q`, then `link detach`
    /// removes the kernel link and `program unload` leaves no program behind.
    @Suite(.enabled(if: TestKernel.isKernelBLane, "\(TestKernel.needsKernelB)"))
    struct CLIGoEraKernelB {
        typealias C = CLIWithoutDaemon

        struct Case: CustomTestStringConvertible, Sendable {
            var object: String
            var program: String
            var attach: [String]
            var testDescription: String { program + " " + attach.joined(separator: " ") }
        }

        static let cases = [
            Case(object: "kprobe_counter", program: "kprobe:kprobe_hit", attach: ["kprobe", "do_sys_openat2"]),
            Case(object: "kprobe_counter", program: "kretprobe:kretprobe_hit", attach: ["kprobe", "do_sys_openat2"]),
            Case(object: "fentry_counter", program: "fentry:fentry_hit:do_unlinkat", attach: ["fentry"]),
            Case(object: "fentry_counter", program: "fexit:fexit_hit:do_unlinkat", attach: ["fexit"]),
            Case(object: "fentry_counter", program: "lsm:lsm_hit:file_open", attach: ["lsm"]),
        ]

        @Test(arguments: [false, true], cases)
        func goEraAttachOfAKernelBKind(daemon: Bool, _ kind: Case) async throws {
            let object = try BPFFixtures.object(kind.object)
            try await CLITrees.withPlace(daemon: daemon) { place in
                let load = try await CLITrees.bpfman(
                    place,
                    ["program", "load", "file", object, "--programs", kind.program, "-o", "json"]
                )
                #expect(load.status == 0, "\(load.stderr)")
                let loaded = try #require(try C.json(load.stdout)["programs"] as? [[String: Any]], "\(load.stdout)")
                let id = try #require(C.dig(loaded.first, "record", "program_id") as? Int, "\(load.stdout)")

                var arguments = ["link", "attach", kind.attach[0], "\(id)"] + kind.attach.dropFirst()
                arguments += ["-o", "json"]
                let attach = try await CLITrees.bpfman(place, arguments)
                #expect(attach.status == 0, "\(attach.stderr)")
                let attached = try C.json(attach.stdout)
                let link = try #require(C.dig(attached, "record", "id") as? Int, "\(attach.stdout)")
                #expect(C.dig(attached, "record", "program_id") as? Int == id)
                let kernelLink = try #require(C.dig(attached, "record", "kernel_link_id") as? Int, "\(attach.stdout)")
                let shown = try TestSupport.run("bpftool", ["-j", "link", "show", "id", "\(kernelLink)"])
                #expect(shown.output.contains("\"prog_id\":\(id)"), "\(shown.output)")

                let links = try await CLITrees.bpfman(place, ["link", "list", "-q"])
                #expect(links.stdout == "\(link)\n", "\(links.stdout)\(links.stderr)")
                let detach = try await CLITrees.bpfman(place, ["link", "detach", "\(link)"])
                #expect(detach.status == 0, "\(detach.stderr)")
                let gone = try TestSupport.run("bpftool", ["link", "show", "id", "\(kernelLink)"])
                #expect(gone.status != 0, "the kernel link outlived its detach: \(gone.output)")
                let unload = try await CLITrees.bpfman(place, ["program", "unload", "\(id)"])
                #expect(unload.status == 0, "\(unload.stderr)")
                let programs = try await CLITrees.bpfman(place, ["program", "list", "-q"])
                #expect(programs.stdout.isEmpty, "\(programs.stdout)")
            }
        }
    }
}
