import Foundation
import TestSupport
import Testing

extension DaemonKernelTests {
    /// The Go-era `image generate-build-args`, `image build` and `image verify` (SPEC §9.4): the plan as upstream
    /// prints it, images written by `bpfman` itself (no container engine), byte-identical across builds, pushed
    /// with skopeo to Debian's docker-registry and loaded through a daemon and in-process; signatures checked
    /// against the test-made Sigstore material the image-signature tests use.
    @Suite struct CLIImageBuild {
        typealias Run = CLIWithoutDaemon.Run

        static func bpfman(
            _ place: TestDaemon,
            _ arguments: [String],
            environment: [String: String] = [:]
        ) async throws -> Run {
            try await CLIWithoutDaemon.bpfman(place, arguments, environment: environment)
        }

        /// The tracepoint fixture's labels, as upstream's builder computes them.
        static let programsLabel = "{\"count_kill\":\"tracepoint\"}"
        static let mapsLabel = "{\"counter\":\"array\"}"

        @Test func generateBuildArgsPrintsUpstreamsPlan() async throws {
            let object = try DaemonKernelTests.tracepointObject
            try await CLIWithoutDaemon.withPlace { place in
                let text = try await Self.bpfman(place, ["image", "generate-build-args", object])
                #expect(text.status == 0, "\(text.stderr)")
                #expect(
                    text.stdout
                        == "BYTECODE_FILE=\(object)\nPROGRAMS=\(Self.programsLabel)\nMAPS=\(Self.mapsLabel)\n",
                    "\(text.stdout)"
                )

                let json = try await Self.bpfman(
                    place,
                    ["image", "generate-build-args", "-o", "json", "linux/amd64=\(object)", "linux/arm64=\(object)"]
                )
                #expect(json.status == 0, "\(json.stderr)")
                #expect(json.stdout.hasPrefix("{\n  \"platforms\": [\n    \"linux/amd64\",\n"), "\(json.stdout)")
                let plan = try CLIWithoutDaemon.json(json.stdout)
                #expect(plan["platforms"] as? [String] == ["linux/amd64", "linux/arm64"])
                #expect(plan["build_args"] as? [String: String] == ["BC_AMD64_EL": object, "BC_ARM64_EL": object])
                #expect(plan["programs"] as? [String: String] == ["count_kill": "tracepoint"])
                #expect(plan["maps"] as? [String: String] == ["counter": "array"])
                let single = try await Self.bpfman(place, ["image", "generate-build-args", "-o", "json", object])
                #expect(try CLIWithoutDaemon.json(single.stdout)["platforms"] as? [String] == [], "\(single.stdout)")

                // A cilium/ebpf project directory: objects named <stem>_<arch>_bpfel.o, sorted by platform.
                let project = place.directory + "/cilium"
                try FileManager.default.createDirectory(atPath: project, withIntermediateDirectories: true)
                for name in ["counter_x86_bpfel.o", "counter_arm64_bpfel.o"] {
                    try FileManager.default.copyItem(atPath: object, toPath: project + "/" + name)
                }
                let cilium = try await Self.bpfman(place, ["image", "generate-build-args", "-c", project])
                #expect(
                    cilium.stdout
                        == "BC_AMD64_EL=\(project)/counter_x86_bpfel.o\nBC_ARM64_EL=\(project)/counter_arm64_bpfel.o\n"
                        + "PROGRAMS=\(Self.programsLabel)\nMAPS=\(Self.mapsLabel)\n",
                    "\(cilium.stdout)\(cilium.stderr)"
                )

                // Upstream's refusals, each with its message, exit 1 and nothing on stdout.
                let refusals: [([String], String)] = [
                    ([object, object], "cannot infer OCI platforms from multiple BPF objects"),
                    (["linux/sparc=\(object)"], "unsupported OCI platform \"linux/sparc\"; supported platforms: "),
                    (["linux/amd64=\(object)", object], "cannot mix bare bytecode inputs with platform-mapped inputs"),
                    (
                        ["linux/amd64=\(object)", "linux/amd64=\(object)"],
                        "platform linux/amd64 specified more than once"
                    ),
                    (["linux/s390x=\(object)"], "has little-endian byte order, expected big-endian"),
                    ([], "no bytecode files found for building BPF image"),
                    (["/bin/true"], "bytecode /bin/true is not a BPF object: "),
                    ([place.directory + "/missing.o"], "cannot read bytecode \(place.directory)/missing.o"),
                ]
                for (arguments, message) in refusals {
                    let refused = try await Self.bpfman(place, ["image", "generate-build-args"] + arguments)
                    #expect(refused.status == 1, "\(arguments): \(refused.stderr)")
                    #expect(refused.stdout.isEmpty)
                    #expect(refused.stderr.hasPrefix("bpfman: error: "), "\(refused.stderr)")
                    #expect(refused.stderr.contains(message), "\(arguments): \(refused.stderr)")
                }
                #expect(!CLIWithoutDaemon.exists(place.runtimeDirectory), "no runtime directory is involved")
            }
        }

        /// Two builds of the same inputs are byte-identical, as layouts and as archives; another
        /// SOURCE_DATE_EPOCH gives another digest (the time stamps are in the image), none gives epoch 0.
        @Test func buildsAreReproducible() async throws {
            let object = try DaemonKernelTests.tracepointObject
            try await CLIWithoutDaemon.withPlace { place in
                let epoch = ["SOURCE_DATE_EPOCH": "1700000000"]
                var printed: [String] = []
                for name in ["a", "b"] {
                    let layout = try await Self.bpfman(
                        place,
                        ["image", "build", "oci:\(place.directory)/layout-\(name):tp", object],
                        environment: epoch
                    )
                    #expect(layout.status == 0, "\(layout.stderr)")
                    printed.append(layout.stdout)
                    let archive = try await Self.bpfman(
                        place,
                        [
                            "image", "build", "oci-archive:\(place.directory)/image-\(name).tar:multi",
                            "linux/amd64=\(object)", "linux/arm64=\(object)",
                        ],
                        environment: epoch
                    )
                    #expect(archive.status == 0, "\(archive.stderr)")
                }
                #expect(printed[0].hasPrefix("oci:\(place.directory)/layout-a:tp@sha256:"), "\(printed[0])")
                #expect(printed[0].split(separator: "@").last == printed[1].split(separator: "@").last)
                #expect(try Self.files(place.directory + "/layout-a") == Self.files(place.directory + "/layout-b"))
                #expect(
                    try readBytes(place.directory + "/image-a.tar") == readBytes(place.directory + "/image-b.tar")
                )

                let later = try await Self.bpfman(
                    place,
                    ["image", "build", "oci:\(place.directory)/layout-c:tp", object],
                    environment: ["SOURCE_DATE_EPOCH": "1700000001"]
                )
                #expect(
                    later.status == 0
                        && later.stdout.split(separator: "@").last != printed[0].split(separator: "@").last
                )
                let unset = try await Self.bpfman(place, ["image", "build", "oci:\(place.directory)/layout-d", object])
                #expect(unset.status == 0, "\(unset.stderr)")
                let config = try Self.config(of: "oci:\(place.directory)/layout-d:latest")
                #expect(config["created"] as? String == "1970-01-01T00:00:00Z", "\(config)")
                let labels = (config["config"] as? [String: Any])?["Labels"] as? [String: String]
                #expect(labels == ["io.ebpf.programs": Self.programsLabel, "io.ebpf.maps": Self.mapsLabel])

                // Another tag into the same layout keeps the first; a registry reference is refused.
                let second = try await Self.bpfman(
                    place,
                    ["image", "build", "oci:\(place.directory)/layout-d:v2", object]
                )
                #expect(second.status == 0, "\(second.stderr)")
                #expect(try Self.config(of: "oci:\(place.directory)/layout-d:latest")["os"] as? String == "linux")
                let registry = try await Self.bpfman(place, ["image", "build", "quay.io/x/y:latest", object])
                #expect(registry.status == 1)
                #expect(registry.stderr.contains("skopeo copy --all oci:<dir>:<tag> docker://quay.io/x/y:latest"))
                let badEpoch = try await Self.bpfman(
                    place,
                    ["image", "build", "oci:\(place.directory)/layout-e", object],
                    environment: ["SOURCE_DATE_EPOCH": "yesterday"]
                )
                #expect(badEpoch.status == 1 && badEpoch.stderr.contains("invalid SOURCE_DATE_EPOCH"))
                #expect(!FileManager.default.fileExists(atPath: place.directory + "/layout-e"))
            }
        }

        /// Built, pushed with skopeo to a real registry, loaded from it through a daemon or in-process: the
        /// program is in the kernel (bpftool sees its id); the multi-arch archive loads its host manifest.
        @Test(
            .enabled(if: RegistryTools.canRunRegistry, "\(RegistryTools.cannotRunRegistry)"),
            arguments: [false, true]
        )
        func builtImagesLoad(daemon: Bool) async throws {
            let object = try DaemonKernelTests.tracepointObject
            try await Self.withRegistryAndPlace { registry, place in
                let (layout, built) = try await Self.buildLayout(place, object)
                let pushed = try await registry.push(layout: layout, tag: "tp", repository: "built")
                #expect(pushed == built, "skopeo kept the manifest byte for byte")
                let archive = place.directory + "/multi.tar"
                let multi = try await Self.bpfman(
                    place,
                    [
                        "image", "build", "oci-archive:\(archive):m", "linux/amd64=\(object)",
                        "linux/arm64=\(object)",
                    ]
                )
                #expect(multi.status == 0, "\(multi.stderr)")
                chmod(archive, 0o644)
                if daemon { try place.start() }

                for url in ["\(registry.host)/built:latest", "oci-archive:\(archive):m"] {
                    let load = try await Self.bpfman(
                        place,
                        ["program", "load", "image", url, "--programs", "tracepoint:count_kill", "-o", "json"]
                    )
                    #expect(load.status == 0, "\(url): \(load.stderr)")
                    let programs = try #require(
                        try CLIWithoutDaemon.json(load.stdout)["programs"] as? [[String: Any]],
                        "\(load.stdout)"
                    )
                    let id = try #require(CLIWithoutDaemon.dig(programs.first, "record", "program_id") as? Int)
                    #expect(
                        CLIWithoutDaemon.dig(programs.first, "record", "load", "image_source", "url") as? String == url,
                        "\(load.stdout)"
                    )
                    let shown = try TestSupport.run("bpftool", ["-j", "prog", "show", "id", "\(id)"])
                    #expect(
                        shown.status == 0 && shown.output.contains("\"name\":\"count_kill\""),
                        "\(shown.output)"
                    )
                    let unload = try await Self.bpfman(place, ["program", "unload", "\(id)"])
                    #expect(unload.status == 0, "\(unload.stderr)")
                }
                if daemon {
                    #expect(place.log.contains("rpc=Load"), "with a daemon, the loads went through it")
                } else {
                    #expect(!TestDaemon.canConnect(place.socketPath))
                }
            }
        }

        /// `image verify` against images signed with the test's own Sigstore CA and Rekor key: verified with
        /// the right identity, refused with another, an unsigned image accepted or refused as the policy says;
        /// the node's image cache is left untouched.
        @Test(
            .enabled(if: RegistryTools.canRunRegistry, "\(RegistryTools.cannotRunRegistry)"),
            .enabled(if: SigstoreForge.canRun, "\(SigstoreForge.cannotRun)")
        )
        func verifyChecksSignatures() async throws {
            let object = try DaemonKernelTests.tracepointObject
            try await Self.withRegistryAndPlace { registry, place in
                let (layout, _) = try await Self.buildLayout(place, object)
                let signed = try await registry.push(layout: layout, tag: "tp", repository: "signed")
                try await registry.push(layout: layout, tag: "tp", repository: "unsigned")
                let root = try await SigstoreForge.makeRoot(in: place.directory + "/sigstore")
                try await SigstoreForge.signImage(
                    root: root,
                    digest: signed,
                    format: .bundle,
                    registry: registry.host,
                    repository: "signed"
                )
                let environment = ["SIGSTORE_ROOT_FILE": root.trustedRoot]
                let signedURL = "\(registry.host)/signed:latest"
                let unsignedURL = "\(registry.host)/unsigned:latest"
                let identity = [
                    "--certificate-identity", SigstoreForge.identity, "--certificate-oidc-issuer",
                    SigstoreForge.issuer,
                ]
                let verified = try await Self.bpfman(
                    place,
                    ["image", "verify", signedURL] + identity,
                    environment: environment
                )
                #expect(verified.status == 0, "\(verified.stderr)")
                #expect(verified.stdout == "Image \(signedURL): signature verified\n", "\(verified.stdout)")
                let regexp = try await Self.bpfman(
                    place,
                    [
                        "image", "verify", signedURL, "--certificate-identity-regexp", ".*@bpfman\\.test",
                        "--certificate-oidc-issuer", SigstoreForge.issuer,
                    ],
                    environment: environment
                )
                #expect(regexp.status == 0, "\(regexp.stderr)")

                let stranger = try await Self.bpfman(
                    place,
                    [
                        "image", "verify", signedURL, "--certificate-identity", "mallory@bpfman.test",
                        "--certificate-oidc-issuer", SigstoreForge.issuer,
                    ],
                    environment: environment
                )
                #expect(stranger.status == 1 && stranger.stdout.isEmpty)
                #expect(stranger.stderr.hasPrefix("bpfman: error: verification failed: "), "\(stranger.stderr)")

                let accepted = try await Self.bpfman(
                    place,
                    ["image", "verify", unsignedURL],
                    environment: environment
                )
                #expect(accepted.status == 0, "\(accepted.stderr)")
                #expect(accepted.stdout == "Image \(unsignedURL): unsigned image accepted by policy\n")
                let refused = try await Self.bpfman(
                    place,
                    ["image", "verify", unsignedURL, "--no-allow-unsigned"],
                    environment: environment
                )
                #expect(refused.status == 1)
                #expect(
                    refused.stderr.contains("is not signed and unsigned images are not allowed"),
                    "\(refused.stderr)"
                )
                let both = try await Self.bpfman(
                    place,
                    [
                        "image", "verify", signedURL, "--certificate-identity", "a",
                        "--certificate-identity-regexp", "b",
                    ]
                )
                #expect(both.status == 1 && both.stderr.contains("are mutually exclusive"), "\(both.stderr)")

                let cached = (try? FileManager.default.contentsOfDirectory(atPath: place.imageCacheDirectory)) ?? []
                #expect(cached.filter { $0.hasPrefix("sha256_") }.isEmpty, "verify left \(cached) in the cache")
            }
        }

        /// A test registry and a place without a daemon, for `body`.
        /// `image inspect` against a real registry, as upstream prints it: an image's media type, labels and
        /// layers, an index's per-platform manifests with theirs, every digest and size the registry's own
        /// documents give; only manifests and configs are read, so nothing lands in the image cache (a `-p never`
        /// load after it still finds nothing).
        @Test(.enabled(if: RegistryTools.canRunRegistry, "\(RegistryTools.cannotRunRegistry)"))
        func inspectReadsTheRegistryWithoutCaching() async throws {
            let object = try DaemonKernelTests.tracepointObject
            try await Self.withRegistryAndPlace { registry, place in
                let (layout, _) = try await Self.buildLayout(place, object)
                let single = try await registry.push(layout: layout, tag: "tp", repository: "single")
                let multiLayout = place.directory + "/multi"
                let multi = try await Self.bpfman(
                    place,
                    ["image", "build", "oci:\(multiLayout):m", "linux/amd64=\(object)", "linux/arm64=\(object)"]
                )
                #expect(multi.status == 0, "\(multi.stderr)")
                let index = try await registry.push(layout: multiLayout, tag: "m", repository: "multi")

                func manifest(_ repository: String, _ reference: String) async throws -> [String: Any] {
                    try CLIWithoutDaemon.json(
                        String(
                            decoding: try await registry.rawManifest(repository: repository, reference: reference),
                            as: UTF8.self
                        )
                    )
                }
                func layers(_ document: [String: Any]) -> [[String: AnyHashable]] {
                    (document["layers"] as? [[String: Any]] ?? []).map {
                        [
                            "digest": $0["digest"] as? String, "media_type": $0["mediaType"] as? String,
                            "size": $0["size"] as? Int,
                        ]
                    }
                }
                func described(_ value: Any?) -> [[String: AnyHashable]] {
                    (value as? [[String: Any]] ?? []).map {
                        [
                            "digest": $0["digest"] as? String, "media_type": $0["media_type"] as? String,
                            "size": $0["size"] as? Int,
                        ]
                    }
                }

                let one = try await Self.bpfman(place, ["image", "inspect", "\(registry.host)/single:latest"])
                #expect(one.status == 0, "\(one.stderr)")
                let image = try CLIWithoutDaemon.json(one.stdout)
                #expect(image["reference"] as? String == "\(registry.host)/single:latest", "\(one.stdout)")
                #expect(image["digest"] as? String == single)
                #expect(image["media_type"] as? String == "application/vnd.oci.image.manifest.v1+json")
                #expect(image["programs"] as? [String: String] == ["count_kill": "tracepoint"])
                #expect(image["maps"] as? [String: String] == ["counter": "array"])
                let served = try await manifest("single", single)
                #expect(described(image["layers"]) == layers(served) && !layers(served).isEmpty, "\(one.stdout)")
                #expect(image["manifests"] == nil)

                let all = try await Self.bpfman(place, ["image", "inspect", "\(registry.host)/multi:latest"])
                #expect(all.status == 0, "\(all.stderr)")
                let described2 = try CLIWithoutDaemon.json(all.stdout)
                #expect(described2["digest"] as? String == index)
                #expect(described2["media_type"] as? String == "application/vnd.oci.image.index.v1+json")
                #expect(described2["programs"] == nil && described2["layers"] == nil, "\(all.stdout)")
                let entries = try #require(described2["manifests"] as? [[String: Any]], "\(all.stdout)")
                let servedIndex = try await manifest("multi", index)
                let children = try #require(servedIndex["manifests"] as? [[String: Any]])
                #expect(entries.map { $0["digest"] as? String } == children.map { $0["digest"] as? String })
                #expect(entries.map { $0["size"] as? Int } == children.map { $0["size"] as? Int })
                #expect(entries.map { $0["platform"] as? String } == ["linux/amd64", "linux/arm64"])
                for entry in entries {
                    #expect(entry["programs"] as? [String: String] == ["count_kill": "tracepoint"])
                    let child = try await manifest("multi", try #require(entry["digest"] as? String))
                    #expect(described(entry["layers"]) == layers(child), "\(entry)")
                }

                // Nothing was cached: a load that may not pull finds nothing.
                let never = try await Self.bpfman(
                    place,
                    [
                        "program", "load", "image", "\(registry.host)/single:latest", "--programs",
                        "tracepoint:count_kill", "-p", "never",
                    ]
                )
                #expect(never.status == 1 && never.stderr.contains("not in cache"), "\(never.stderr)")
                let missing = try await Self.bpfman(place, ["image", "inspect", "\(registry.host)/nothing:latest"])
                #expect(missing.status == 1 && missing.stderr.hasPrefix("bpfman: error: "), "\(missing.stderr)")
            }
        }

        static func withRegistryAndPlace(_ body: (TestRegistry, TestDaemon) async throws -> Void) async throws {
            try await withTestRegistry { registry in
                try await CLIWithoutDaemon.withPlace { place in try await body(registry, place) }
            }
        }

        /// `object` built as `oci:<place>/built:tp` (readable by the fetcher, which runs as nobody); the layout
        /// and the digest the build printed.
        static func buildLayout(_ place: TestDaemon, _ object: String) async throws -> (String, String) {
            chmod(place.directory, 0o755)
            let layout = place.directory + "/built"
            let build = try await bpfman(place, ["image", "build", "oci:\(layout):tp", object])
            #expect(build.status == 0, "\(build.stderr)")
            let digest = try #require(
                build.stdout.split(separator: "@").last.map { $0.trimmingCharacters(in: .newlines) },
                "\(build.stdout)"
            )
            return (layout, digest)
        }

        /// Every file under `directory`, by relative path, with its bytes.
        static func files(_ directory: String) throws -> [String: [UInt8]] {
            var result: [String: [UInt8]] = [:]
            let enumerator = FileManager.default.enumerator(atPath: directory)
            while let path = enumerator?.nextObject() as? String {
                var isDirectory: ObjCBool = false
                if FileManager.default.fileExists(atPath: directory + "/" + path, isDirectory: &isDirectory),
                    !isDirectory.boolValue
                {
                    result[path] = try readBytes(directory + "/" + path)
                }
            }
            return result
        }

        /// The image config skopeo reads from `reference`.
        static func config(of reference: String) throws -> [String: Any] {
            let skopeo = try #require(RegistryTools.skopeo, "\(RegistryTools.cannotRunRegistry)")
            let result = try TestSupport.run(skopeo, ["inspect", "--config", reference])
            try #require(result.status == 0, "\(result.output)")
            return try CLIWithoutDaemon.json(result.output)
        }
    }
}
