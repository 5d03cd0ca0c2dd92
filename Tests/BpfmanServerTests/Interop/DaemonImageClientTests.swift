import Foundation
import TestSupport
import Testing

extension DaemonKernelTests.Images {
    static let standinAndPython = RegistryTools.canRunStandin && DaemonTools.python != nil
    static let noStandinOrPython = "\(RegistryTools.cannotRunStandin); \(DaemonTools.pythonMissing)"

    /// The names in the image cache directory (none when it does not exist).
    static func cacheNames(_ daemon: TestDaemon) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: daemon.imageCacheDirectory)) ?? []).sorted()
    }

    /// Checks that `name` in the cache is one whole entry: `bytecode.o` holding the tracepoint fixture and a
    /// `metadata.json` that parses, naming `reference`, and nothing else.
    static func expectWholeEntry(_ daemon: TestDaemon, _ name: String, reference: String) throws {
        let entry = daemon.imageCacheDirectory + "/" + name
        #expect(name.hasPrefix("sha256_") && name.count == 39, "\(name)")
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: entry)) == ["bytecode.o", "metadata.json"])
        #expect(try readBytes(entry + "/bytecode.o") == readBytes(try DaemonKernelTests.tracepointObject))
        let metadata = try JSONSerialization.jsonObject(with: Data(try readBytes(entry + "/metadata.json")))
        let object = try #require(metadata as? [String: Any], "metadata.json is a JSON object")
        #expect(object["reference"] as? String == reference, "\(object)")
        #expect((object["digest"] as? String)?.hasPrefix("sha256:") == true, "\(object)")
    }

    /// Waits until the stand-in has been asked for `count` blobs in all, then for the last one's delay and a
    /// second more: by then the daemon has everything it asked for and the pull is over.
    static func waitForBlobs(_ standin: RegistryStandin, count: Int, delay: Double) async throws {
        let deadline = ContinuousClock.now + .seconds(20)
        while try standin.stats().blobGets < count {
            try #require(ContinuousClock.now < deadline, "the stand-in never served \(count) blobs")
            try await Task.sleep(for: .milliseconds(50))
        }
        try await Task.sleep(for: .seconds(delay + 1))
    }

    /// Issue #18, SPEC §3.7, §8.3: grpcio's PullBytecode with a 0.5 s deadline against a registry that takes 2 s
    /// per blob ends DEADLINE_EXCEEDED at the deadline; while the pull goes on the cache holds only the image
    /// module's own dot-directories, no `sha256_*` entry; once it is over the cache holds nothing or one whole
    /// entry and no dot-directory; a second PullBytecode then succeeds and the entry is whole.
    @Test(.enabled(if: standinAndPython, "\(noStandinOrPython)"))
    func aPullPastTheClientsDeadlineNeverLeavesAPartialEntry() async throws {
        let layout = try Self.tracepointLayout()
        defer { try? FileManager.default.removeItem(atPath: layout.directory) }
        let delay = 2.0
        try await withRegistryStandin(
            layout: layout.directory,
            repository: "slow/tp",
            options: .init(blobDelay: delay)
        ) { standin in
            try await withDaemon { daemon in
                let url = "\(standin.host)/slow/tp:tp"
                let timedOut = try await daemon.python("pull-deadline", [url, "0.5"])
                #expect(timedOut.status == 0 && timedOut.output.contains("PASS"), "\(timedOut.output)")
                let elapsed = field("ELAPSED", in: timedOut.output).flatMap(Double.init) ?? .infinity
                #expect(elapsed < 1.5, "the client got its answer at its deadline, not after the pull: \(elapsed) s")

                // The pull goes on in the daemon (the layer blob has not even been asked for yet).
                let during = Self.cacheNames(daemon)
                let stats = try standin.stats()
                try #require(
                    stats.blobGets < 2 || !daemon.log.contains("pulled image"),
                    "the pull was over before the cache was looked at: \(stats)"
                )
                #expect(
                    during.allSatisfy { $0.hasPrefix(".pull-") || $0.hasPrefix(".new-") },
                    "only the image module's own dot-directories while the pull runs: \(during)"
                )

                try await Self.waitForBlobs(standin, count: 2, delay: delay)
                let after = Self.cacheNames(daemon)
                #expect(after.count <= 1 && !after.contains { $0.hasPrefix(".") }, "after the pull: \(after)")
                if let name = after.first { try Self.expectWholeEntry(daemon, name, reference: url) }

                let again = try await daemon.python("pull", [url])
                #expect(again.status == 0 && again.output.contains("PULLED"), "\(again.output)\n\(daemon.log)")
                let final = Self.cacheNames(daemon)
                #expect(final.count == 1, "\(final)")
                if let name = final.first { try Self.expectWholeEntry(daemon, name, reference: url) }
                #expect(try standin.stats().blobGets == 4, "the second pull downloaded again (policy Always)")
            }
        }
    }

    /// Issue #18, SPEC §1.7: a Load from an image that the client cancels while the image is being pulled loads
    /// nothing, even once the pull has finished: List shows no program and no pin is left under the runtime
    /// directory's bpffs.
    @Test(.enabled(if: standinAndPython, "\(noStandinOrPython)"))
    func aLoadCancelledDuringItsPullLoadsNothing() async throws {
        let layout = try Self.tracepointLayout()
        defer { try? FileManager.default.removeItem(atPath: layout.directory) }
        let delay = 2.0
        try await withRegistryStandin(
            layout: layout.directory,
            repository: "slow/tp",
            options: .init(blobDelay: delay)
        ) { standin in
            try await withDaemon { daemon in
                let url = "\(standin.host)/slow/tp:tp"
                let cancelled = try await daemon.python(
                    "load-cancel",
                    [url, DaemonKernelTests.tracepointFunction, "0.5"]
                )
                #expect(
                    cancelled.status == 0 && cancelled.output.contains("CANCELLED"),
                    "\(cancelled.output)\n\(daemon.log)"
                )
                #expect(try standin.stats().blobGets < 2, "the Load was cancelled while its image was being pulled")

                try await Self.waitForBlobs(standin, count: 2, delay: delay)
                let list = try await daemon.python("list-managed")
                #expect(list.status == 0 && field("MANAGED", in: list.output) == "", "no program: \(list.output)")
                // Every file under the bpffs but the kernel's own iterators (maps.debug, progs.debug) is a pin.
                let fs = daemon.runtimeDirectory + "/fs"
                let pins = (FileManager.default.enumerator(atPath: fs)?.allObjects as? [String] ?? []).filter {
                    var isDirectory: ObjCBool = false
                    return FileManager.default.fileExists(atPath: fs + "/" + $0, isDirectory: &isDirectory)
                        && !isDirectory.boolValue && $0 != "maps.debug" && $0 != "progs.debug"
                }
                #expect(pins.isEmpty, "pins left under \(fs): \(pins)\n\(daemon.log)")
            }
        }
    }

    /// Issue #18, SPEC §3.7, §3.8, §8.4: the Python grpcio client against an htpasswd registry: PullBytecode
    /// (Always) refuses a wrong password with PERMISSION_DENIED and pulls with the right one; Load (IfNotPresent,
    /// with the credentials), Get and List report the url and policy with `username` and `password` present and
    /// empty (Interop/daemon/daemon_client.py `image-flow`).
    @Test(.enabled(if: DaemonTools.python != nil, "\(DaemonTools.pythonMissing)"))
    func pythonClientPullsAndLoadsWithCredentials() async throws {
        let layout = try Self.tracepointLayout()
        defer { try? FileManager.default.removeItem(atPath: layout.directory) }
        let password = "pw-\(UUID().uuidString)"
        try await withTestRegistry(.init(login: RegistryLogin(username: "py", password: password))) { registry in
            try await registry.push(layout: layout.directory, tag: "tp", repository: "private/tp")
            let url = "\(registry.host)/private/tp:latest"
            try await withDaemon { daemon in
                let flow = try await daemon.python(
                    "image-flow",
                    [url, DaemonKernelTests.tracepointFunction, "py", password]
                )
                #expect(flow.status == 0 && flow.output.contains("PASS"), "\(flow.output)\n\(daemon.log)")
                let names = Self.cacheNames(daemon)
                #expect(names.count == 1, "one cache entry: \(names)")
                if let name = names.first { try Self.expectWholeEntry(daemon, name, reference: url) }
                #expect(!daemon.log.contains(password), "the daemon's log holds the password")
            }
        }
    }
}
