import BpfmanEngine
import Foundation
import TestSupport
import Testing

extension DaemonKernelTests {
    /// `bpfman serve` in dispatcher mode (kernel B, where freplace works), driven through the CLI: two XDP
    /// programs share one interface through the dispatcher in priority order, and the CLI's status shows it.
    @Suite(.enabled(if: TestKernel.isKernelBLane, "\(TestKernel.needsKernelB)"))
    struct DaemonDispatcherKernelB {
        @Test func twoXDPProgramsShareAnInterfaceInPriorityOrder() async throws {
            let object = try BPFFixtures.object("xdp_counter")
            let netns = "srv-kb-\(getpid())"
            _ = try TestSupport.run("ip", ["netns", "add", netns])
            defer { _ = try? TestSupport.run("ip", ["netns", "del", netns]) }
            let veth = try TestSupport.run(
                "ip",
                ["-n", netns, "link", "add", "srv0", "type", "veth", "peer", "name", "srv1"]
            )
            try #require(veth.status == 0, "\(veth.output)")
            _ = try TestSupport.run("ip", ["-n", netns, "link", "set", "srv0", "up"])
            try await withDaemon { daemon in
                #expect(daemon.log.contains("XDP/TC attach mode: dispatcher"), "\(daemon.log)")
                var links: [String: String] = [:]
                for (function, priority) in [("xdp_count_pass", "200"), ("xdp_count_drop", "100")] {
                    let load = try await CLI.bpfman(
                        daemon,
                        ["load", "file", "-p", object, "--programs", "xdp:\(function)"]
                    )
                    let id = try #require(CLI.row("Program ID", in: load.output), "\(load.output)")
                    let attach = try await CLI.bpfman(
                        daemon,
                        ["attach", id, "xdp", "-i", "srv0", "-p", priority, "-n", "/var/run/netns/\(netns)"]
                    )
                    #expect(attach.status == 0, "\(attach.output)\n\(daemon.log)")
                    links[function] = CLI.row("Link ID", in: attach.output)
                }
                let drop = try #require(links["xdp_count_drop"])
                let pass = try #require(links["xdp_count_pass"])
                let getDrop = try await CLI.bpfman(daemon, ["get", "link", drop])
                #expect(CLI.row("Position", in: getDrop.output) == "0", "\(getDrop.output)")
                let getPass = try await CLI.bpfman(daemon, ["get", "link", pass])
                #expect(CLI.row("Position", in: getPass.output) == "1", "\(getPass.output)")
                let status = try await CLI.bpfman(daemon, ["status"])
                #expect(CLI.row("XDP/TC Attach Mode", in: status.output) == "dispatcher", "\(status.output)")
                let row = status.output.split(separator: "\n").first { $0.hasPrefix("xdp ") }
                let cells = row.map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) } ?? []
                #expect(cells.count >= 8 && cells[1] == "srv0" && cells[4] == "2", "\(status.output)")
                #expect(
                    cells.last?.hasPrefix("1:\(pass)/") == true && cells[cells.count - 2].hasPrefix("0:\(drop)/"),
                    "\(status.output)"
                )
                let detach = try await CLI.bpfman(daemon, ["detach", drop])
                #expect(detach.status == 0, "\(detach.output)")
                let after = try await CLI.bpfman(daemon, ["get", "link", pass])
                #expect(CLI.row("Position", in: after.output) == "0", "\(after.output)")
                let json = try await CLI.bpfman(daemon, ["status", "-o", "json"])
                let parsed = try #require(try CLI.json(json.output) as? [String: Any], "\(json.output)")
                let dispatchers = try #require(parsed["dispatchers"] as? [[String: Any]])
                #expect(dispatchers.count == 1 && dispatchers.first?["revision"] as? Int == 3, "\(json.output)")
                let features = try #require(parsed["kernel_features"] as? [String: Bool], "\(json.output)")
                #expect(features["freplace"] == true)
                // Everything else is the engine's start-up probe (TCX probed with BPF_PROG_QUERY, not guessed
                // from the kernel version).
                let probed = ProbedKernelFeatures.probe()
                #expect(features == probed.reported(freplace: true), "\(json.output)")
            }
        }
    }
}
