import Foundation
import TestSupport
import Testing

extension DaemonKernelTests {
    /// Bytecode images through the real daemon (SPEC §8, scenario 46): images built by the test, pushed with
    /// skopeo to Debian's docker-registry on 127.0.0.1, loaded with the CLI and the Go agent, counted in the
    /// kernel. Nothing leaves this machine.
    @Suite(.enabled(if: RegistryTools.canRunSecureRegistry, "\(RegistryTools.cannotRunSecureRegistry)"))
    struct Images {
        typealias CLI = DaemonKernelTests.CLI

        /// A layout holding the tracepoint fixture as `tp`, labelled as upstream's images are.
        static func tracepointLayout() throws -> OCILayout {
            let layout = try OCILayout(directory: try makeTemporaryDirectory(prefix: "img-layout"))
            try layout.add(
                try TestImage.bytecode(
                    objectAt: try DaemonKernelTests.tracepointObject,
                    programs: [DaemonKernelTests.tracepointFunction: "tracepoint"],
                    maps: ["counter": "array"]
                ),
                tag: "tp"
            )
            return layout
        }

        /// Slot 0 of the program's `counter` map, read with bpftool from its pin.
        static func count(_ daemon: TestDaemon, program id: String) throws -> UInt64 {
            let pin = daemon.runtimeDirectory + "/fs/maps/\(id)/counter"
            let result = try run("bpftool", ["-j", "map", "lookup", "pinned", pin, "key", "0", "0", "0", "0"])
            try #require(result.status == 0, "bpftool map lookup \(pin): \(result.output)")
            let entry = try #require(try CLI.json(result.output) as? [String: Any], "\(result.output)")
            let bytes = try #require(entry["value"] as? [String], "\(result.output)")
            return bytes.enumerated().reduce(UInt64(0)) { sum, byte in
                sum | (UInt64(byte.element.dropFirst(2), radix: 16) ?? 0) << (8 * UInt64(byte.offset))
            }
        }

        /// Every file under `directory` whose bytes contain `needle`.
        static func files(under directory: String, containing needle: String) -> [String] {
            let wanted = Data(needle.utf8)
            let enumerator = FileManager.default.enumerator(atPath: directory)
            var hits: [String] = []
            while let name = enumerator?.nextObject() as? String {
                let path = directory + "/" + name
                var isDirectory: ObjCBool = false
                guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
                    let data = FileManager.default.contents(atPath: path)
                else { continue }
                if data.range(of: wanted) != nil { hits.append(path) }
            }
            return hits
        }

        /// The Kubernetes agent's flow with `BytecodeLocation.image`: Load, Get reporting the url and policy
        /// with empty credentials, Attach, Detach, Unload.
        @Test(.enabled(if: InteropTools.goToolchain, "\(InteropTools.goMissing)"))
        func goAgentLoadsFromALoopbackRegistry() async throws {
            let agent = try DaemonTools.goAgent.get()
            let layout = try Self.tracepointLayout()
            defer { try? FileManager.default.removeItem(atPath: layout.directory) }
            try await withTestRegistry { registry in
                try await registry.push(layout: layout.directory, tag: "tp", repository: "bytecode/tracepoint")
                try await withDaemon { daemon in
                    let result = try await spawn(
                        agent,
                        [
                            daemon.socketPath, "image:\(registry.host)/bytecode/tracepoint",
                            "tracepoint", DaemonKernelTests.tracepointFunction, DaemonKernelTests.tracepoint,
                        ]
                    )
                    #expect(result.status == 0 && result.output.contains("PASS"), "\(result.output)\n\(daemon.log)")
                }
            }
        }

        /// `bpfman load image` with `-r user:password` against an htpasswd registry: the program counts, survives
        /// a daemon restart still counting, and the password is in no file of the runtime directory, the cache
        /// or the daemon's log (SPEC §8.4).
        @Test func cliLoadWithCredentialsCountsSurvivesRestartAndNeverKeepsThePassword() async throws {
            let layout = try Self.tracepointLayout()
            defer { try? FileManager.default.removeItem(atPath: layout.directory) }
            let password = "pw-\(UUID().uuidString)"
            let login = RegistryLogin(username: "agent", password: password)
            try await withTestRegistry(.init(login: login)) { registry in
                try await registry.push(layout: layout.directory, tag: "tp", repository: "private/tp")
                let url = "\(registry.host)/private/tp:latest"
                let auth = Data("agent:\(password)".utf8).base64EncodedString()
                try await withDaemon { daemon in
                    // Wrong credentials: PERMISSION_DENIED, and nothing cached.
                    let wrongAuth = Data("agent:nope".utf8).base64EncodedString()
                    let refused = try await CLI.bpfman(
                        daemon,
                        ["load", "image", "-i", url, "-r", wrongAuth, "--programs", "tracepoint:count_kill"]
                    )
                    #expect(
                        refused.status == 1
                            && refused.output.hasPrefix(
                                "Error: PERMISSION_DENIED: registry \(registry.host) refused the credentials for \(url)"
                            ),
                        "\(refused.output)"
                    )
                    let cached =
                        (try? FileManager.default.contentsOfDirectory(atPath: daemon.imageCacheDirectory)) ?? []
                    #expect(cached.isEmpty, "nothing cached after refused credentials: \(cached)")

                    let load = try await CLI.bpfman(
                        daemon,
                        ["load", "image", "-i", url, "-r", auth, "--programs", "tracepoint:count_kill"]
                    )
                    #expect(load.status == 0, "\(load.output)\n\(daemon.log)")
                    let id = try #require(CLI.row("Program ID", in: load.output), "\(load.output)")
                    #expect(CLI.row("Image URL", in: load.output) == url)
                    #expect(CLI.row("Pull Policy", in: load.output) == "IfNotPresent")
                    let attach = try await CLI.bpfman(
                        daemon,
                        ["attach", id, "tracepoint", "-t", DaemonKernelTests.tracepoint]
                    )
                    #expect(attach.status == 0, "\(attach.output)")
                    let before = try Self.count(daemon, program: id)
                    for _ in 0..<5 { kill(getpid(), 0) }
                    let after = try Self.count(daemon, program: id)
                    #expect(after >= before + 5, "count went from \(before) to \(after)")

                    // A restart keeps the program, its link and the image it came from.
                    #expect(daemon.stop() == 0)
                    try daemon.start()
                    let get = try await CLI.bpfman(daemon, ["get", "program", id])
                    #expect(get.status == 0, "\(get.output)")
                    #expect(CLI.row("Image URL", in: get.output) == url)
                    for _ in 0..<5 { kill(getpid(), 0) }
                    #expect(try Self.count(daemon, program: id) >= after + 5)

                    for needle in [password, auth] {
                        for directory in [daemon.runtimeDirectory, daemon.imageCacheDirectory] {
                            #expect(Self.files(under: directory, containing: needle).isEmpty, "\(directory)")
                        }
                        #expect(!daemon.log.contains(needle), "the daemon's log holds a credential")
                    }
                    let unload = try await CLI.bpfman(daemon, ["unload", id])
                    #expect(unload.status == 0, "\(unload.output)")
                }
            }
        }

        /// SPEC §8.3's policies through PullBytecode and Load: a pulled image loads from the cache once the registry
        /// is gone (IfNotPresent), Always then fails with INTERNAL, Never on an uncached url is FAILED_PRECONDITION;
        /// a name missing from the image's object gets the file-load message.
        @Test func pullPoliciesWithTheRegistryStopped() async throws {
            let layout = try Self.tracepointLayout()
            defer { try? FileManager.default.removeItem(atPath: layout.directory) }
            let registry = try await TestRegistry.start()
            defer { registry.stop() }
            try await registry.push(layout: layout.directory, tag: "tp", repository: "tp")
            let url = "\(registry.host)/tp"
            try await withDaemon { daemon in
                let pull = try await CLI.bpfman(daemon, ["image", "pull", "-i", url])
                #expect(pull.status == 0 && pull.output.isEmpty, "\(pull.output)\n\(daemon.log)")
                let entries = try FileManager.default.contentsOfDirectory(atPath: daemon.imageCacheDirectory)
                #expect(entries.count == 1 && entries[0].hasPrefix("sha256_") && entries[0].count == 39, "\(entries)")
                let entry = daemon.imageCacheDirectory + "/" + entries[0]
                #expect(
                    Set(try FileManager.default.contentsOfDirectory(atPath: entry)) == ["bytecode.o", "metadata.json"]
                )
                #expect(
                    try readBytes(entry + "/bytecode.o") == readBytes(try DaemonKernelTests.tracepointObject)
                )

                let wrongName = try await CLI.bpfman(
                    daemon,
                    ["load", "image", "-i", url, "--programs", "tracepoint:nope"]
                )
                #expect(
                    wrongName.output.hasPrefix("Error: INVALID_ARGUMENT: program(s) not found in object file: [nope]"),
                    "\(wrongName.output)"
                )

                registry.stop()
                let cached = try await CLI.bpfman(
                    daemon,
                    ["load", "image", "-i", url, "-p", "IfNotPresent", "--programs", "tracepoint:count_kill"]
                )
                #expect(cached.status == 0, "\(cached.output)\n\(daemon.log)")
                let always = try await CLI.bpfman(
                    daemon,
                    ["load", "image", "-i", url, "-p", "Always", "--programs", "tracepoint:count_kill"]
                )
                #expect(
                    always.output.hasPrefix("Error: INTERNAL: failed to pull image \(url): "),
                    "\(always.output)"
                )
                let never = try await CLI.bpfman(
                    daemon,
                    [
                        "load", "image", "-i", "\(registry.host)/other", "-p", "Never", "--programs",
                        "tracepoint:count_kill",
                    ]
                )
                #expect(
                    never.output
                        == "Error: FAILED_PRECONDITION: image \(registry.host)/other not in cache and pull policy is Never\n",
                    "\(never.output)"
                )
                if let id = CLI.row("Program ID", in: cached.output) {
                    _ = try await CLI.bpfman(daemon, ["unload", id])
                }
                let list = try await CLI.bpfman(daemon, ["list", "programs"])
                #expect(list.output.split(separator: "\n").count == 1, "only the header: \(list.output)")
            }
        }

        /// SPEC §8.5's policy side for unsigned images: with `allow_unsigned = false` an unsigned image is
        /// refused and nothing is cached; `verify_enabled = false` loads; the default loads and logs a warning.
        @Test(arguments: [
            ("[signing]\nallow_unsigned = false\n", false),
            ("[signing]\nverify_enabled = false\nallow_unsigned = false\n", true),
            ("", true),
        ])
        func signingPolicyFromTheConfig(config: String, loads: Bool) async throws {
            let layout = try Self.tracepointLayout()
            defer { try? FileManager.default.removeItem(atPath: layout.directory) }
            try await withTestRegistry { registry in
                try await registry.push(layout: layout.directory, tag: "tp", repository: "tp")
                let daemon = try TestDaemon()
                defer { daemon.destroy() }
                try writeBytes(
                    Array(("[logging]\nlevel = \"debug\"\n" + config).utf8),
                    to: daemon.directory + "/bpfman.toml"
                )
                try daemon.start()
                let url = "\(registry.host)/tp"
                let load = try await CLI.bpfman(
                    daemon,
                    ["load", "image", "-i", url, "--programs", "tracepoint:count_kill"]
                )
                if loads {
                    #expect(load.status == 0, "\(load.output)\n\(daemon.log)")
                    if let id = CLI.row("Program ID", in: load.output) {
                        _ = try await CLI.bpfman(daemon, ["unload", id])
                    }
                    #expect(daemon.log.contains("image is not signed") == config.isEmpty, "\(daemon.log)")
                } else {
                    #expect(
                        load.output
                            == "Error: FAILED_PRECONDITION: image \(url) is not signed and unsigned images are not allowed\n",
                        "\(load.output)"
                    )
                    let entries =
                        (try? FileManager.default.contentsOfDirectory(atPath: daemon.imageCacheDirectory)) ?? []
                    #expect(entries.isEmpty, "nothing cached on a refusal: \(entries)")
                }
            }
        }

        /// SPEC §8.2, §1.7: eight Loads of one uncached image share one download, and while it runs (the stand-in
        /// holds each blob for a second) List and Get answer and an Attach of another program goes through: the
        /// pull holds neither the readers nor the writer lock.
        @Test(.enabled(if: RegistryTools.canRunStandin, "\(RegistryTools.cannotRunStandin)"))
        func eightConcurrentLoadsDownloadOnceWithoutBlockingOthers() async throws {
            let layout = try Self.tracepointLayout()
            defer { try? FileManager.default.removeItem(atPath: layout.directory) }
            let standin = try await RegistryStandin.start(
                layout: layout.directory,
                repository: "slow/tp",
                options: .init(blobDelay: 1.0)
            )
            defer { standin.stop() }
            try await withDaemon { daemon in
                let object = try DaemonKernelTests.tracepointObject
                let other = try await CLI.bpfman(
                    daemon,
                    ["load", "file", "-p", object, "--programs", "tracepoint:count_kill"]
                )
                let otherID = try #require(CLI.row("Program ID", in: other.output), "\(other.output)")
                let url = "\(standin.host)/slow/tp:tp"
                let loads = Task {
                    try await withThrowingTaskGroup(of: SpawnResult.self) { group in
                        for _ in 0..<8 {
                            group.addTask {
                                try await CLI.bpfman(
                                    daemon,
                                    ["load", "image", "-i", url, "--programs", "tracepoint:count_kill"]
                                )
                            }
                        }
                        return try await group.reduce(into: []) { $0.append($1) }
                    }
                }
                try await Task.sleep(for: .milliseconds(300))
                let list = try await CLI.bpfman(daemon, ["list", "programs"])
                let get = try await CLI.bpfman(daemon, ["get", "program", otherID])
                let attach = try await CLI.bpfman(
                    daemon,
                    ["attach", otherID, "tracepoint", "-t", DaemonKernelTests.tracepoint]
                )
                let statsDuring = try standin.stats()
                #expect(
                    list.status == 0 && get.status == 0 && attach.status == 0,
                    "\(list.output)\(get.output)\(attach.output)"
                )
                let results = try await loads.value
                #expect(statsDuring.blobGets < 2, "the reads and the attach finished while the pull was running")
                #expect(results.allSatisfy { $0.status == 0 }, "\(results.map(\.output))\n\(daemon.log)")
                let stats = try standin.stats()
                // One download: the manifest, its `.sig` tag and its referrers (SPEC §8.5) once each, the blobs once.
                #expect(
                    stats.manifestGets == 2 && stats.referrersGets == 1 && stats.blobGets == 2,
                    "one download: \(stats)"
                )
                let ids = Set(results.compactMap { CLI.row("Program ID", in: $0.output) })
                #expect(ids.count == 8)
                for id in ids.union([otherID]) { _ = try await CLI.bpfman(daemon, ["unload", id]) }
            }
        }
    }
}
