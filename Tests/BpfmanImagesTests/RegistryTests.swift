import BpfmanImages
import Foundation
import TestSupport
import Testing

/// Pulls from Debian's real distribution registry (`docker-registry`, v2.8) on 127.0.0.1, with images pushed by
/// skopeo: manifest formats, reference forms, indexes, labels, errors, caps, pull policies and the cache.
@Suite(
    .serialized,
    .enabled(if: RegistryTools.canRunRegistry, "\(RegistryTools.cannotRunRegistry)"),
    .timeLimit(.minutes(2))
)
struct RegistryTests {
    /// A registry holding the tracepoint image as `bytecode:latest` (pushed in `format`), and the workspace.
    func withPushedImage(
        format: ManifestFormat = .oci,
        image: TestImage? = nil,
        _ body: (Workspace, TestRegistry, _ digest: String) async throws -> Void
    ) async throws {
        try await withWorkspace { workspace in
            try await withTestRegistry { registry in
                let layout = try workspace.layout(with: try image ?? Objects.tracepointImage())
                let digest = try await registry.push(
                    layout: layout.directory,
                    tag: "v1",
                    repository: "bytecode",
                    format: format
                )
                try await body(workspace, registry, digest)
            }
        }
    }

    @Test(arguments: [ManifestFormat.oci, .v2s2])
    func imageResolvesToTheFixtureObject(_ format: ManifestFormat) async throws {
        try await withPushedImage(format: format) { workspace, registry, digest in
            let raw = try await registry.rawManifest(repository: "bytecode")
            let mediaType = try #require(
                (try JSONSerialization.jsonObject(with: Data(raw)) as? [String: Any])?["mediaType"] as? String
            )
            #expect(
                mediaType
                    == (format == .oci
                        ? "application/vnd.oci.image.manifest.v1+json"
                        : "application/vnd.docker.distribution.manifest.v2+json")
            )
            #expect(digest == "sha256:" + sha256Hex(raw))

            let before = Int64(Date().timeIntervalSince1970)
            let url = "\(registry.host)/bytecode:latest"
            let image = try await workspace.store().resolve(url: url, policy: .ifNotPresent)
            try expectEntry(image, holds: try Objects.tracepoint().bytes, in: workspace)
            #expect(image.reference == url)
            #expect(image.digest == digest)
            #expect(image.programs == Objects.tracepointPrograms)
            #expect(image.maps == Objects.tracepointMaps)

            let metadata = try workspace.metadata(of: image)
            #expect(metadata["reference"] as? String == url)
            #expect(metadata["digest"] as? String == digest)
            #expect(metadata["programs"] as? [String: String] == Objects.tracepointPrograms)
            #expect(metadata["maps"] as? [String: String] == Objects.tracepointMaps)
            let pulledAt = try #require((metadata["pulled_at"] as? NSNumber)?.int64Value)
            #expect(pulledAt >= before && pulledAt <= Int64(Date().timeIntervalSince1970))
            let policy = try #require(metadata["policy"] as? [String: Any])
            #expect(policy["verify_enabled"] as? Bool == true)
            #expect(policy["allow_unsigned"] as? Bool == true)
            #expect(metadata.keys.contains("verified_digest"))
            #expect(
                workspace.cacheContents() == [
                    URL(fileURLWithPath: image.objectPath).deletingLastPathComponent().lastPathComponent
                ]
            )
        }
    }

    /// `HOST/repo`, `HOST/repo:latest` and `HOST/repo@sha256:<digest>` name one image; the first two are one
    /// cache entry (no tag means `latest`), the digest form its own.
    @Test func tagLatestAndDigestGiveTheSameDigest() async throws {
        try await withPushedImage { workspace, registry, digest in
            #expect(try await registry.manifestDigest(repository: "bytecode") == digest)
            let store = try workspace.store()
            let bare = try await store.resolve(url: "\(registry.host)/bytecode", policy: .ifNotPresent)
            let latest = try await store.resolve(url: "\(registry.host)/bytecode:latest", policy: .always)
            let pinned = try await store.resolve(url: "\(registry.host)/bytecode@\(digest)", policy: .ifNotPresent)
            #expect([bare.digest, latest.digest, pinned.digest] == [digest, digest, digest])
            #expect(bare.reference == "\(registry.host)/bytecode:latest")
            #expect(bare.objectPath == latest.objectPath)
            #expect(pinned.reference == "\(registry.host)/bytecode@\(digest)")
            #expect(pinned.objectPath != bare.objectPath)
            for image in [bare, latest, pinned] {
                try expectEntry(image, holds: try Objects.tracepoint().bytes, in: workspace)
            }
            #expect(workspace.cacheContents().count == 2)
        }
    }

    @Test func digestThatTheRegistryDoesNotHoldIsNotFound() async throws {
        try await withPushedImage { workspace, registry, _ in
            let url = "\(registry.host)/bytecode@sha256:" + String(repeating: "0", count: 64)
            await expectImageError(.notFound, "image \(url) not found") {
                try await workspace.store().resolve(url: url, policy: .always)
            }
            expectEmptyCache(workspace)
        }
    }

    @Test(arguments: ["bytecode:v404", "nothing/here:latest"])
    func missingImageIsNotFound(_ name: String) async throws {
        try await withPushedImage { workspace, registry, _ in
            let url = "\(registry.host)/\(name)"
            let error = await expectImageError(.notFound, "not found") {
                try await workspace.store().resolve(url: url, policy: .ifNotPresent)
            }
            #expect(error?.message == "image \(url) not found")
            expectEmptyCache(workspace)
        }
    }

    /// A linux/amd64 + linux/arm64 index with a different object for each: the host's is the one cached, and
    /// the digest reported is the index's (what `@sha256:` pins).
    /// (`.v2s2` pushes it as a Docker manifest list of Docker manifests.)
    @Test(arguments: [ManifestFormat.oci, .v2s2])
    func indexSelectsTheHostArchitecture(_ format: ManifestFormat) async throws {
        try await withWorkspace { workspace in
            try await withTestRegistry { registry in
                let host = try Objects.tracepoint()
                let other = try Objects.xdp()
                let otherArchitecture = hostGoArchitecture == "arm64" ? "amd64" : "arm64"
                let layout = try workspace.layout()
                let index = try layout.addIndex([
                    try layout.addImage(TestImage.bytecode(objectAt: other.path, architecture: otherArchitecture)),
                    try layout.addImage(
                        TestImage.bytecode(objectAt: host.path, programs: Objects.tracepointPrograms)
                    ),
                ])
                try layout.tag(index, as: "multi")
                let digest = try await registry.push(
                    layout: layout.directory,
                    tag: "multi",
                    repository: "multi",
                    format: format
                )
                let raw = try await registry.rawManifest(repository: "multi")
                let mediaType = (try JSONSerialization.jsonObject(with: Data(raw)) as? [String: Any])?["mediaType"]
                #expect(
                    mediaType as? String
                        == (format == .oci
                            ? "application/vnd.oci.image.index.v1+json"
                            : "application/vnd.docker.distribution.manifest.list.v2+json")
                )
                #expect(digest == "sha256:" + sha256Hex(raw))
                if format == .oci { #expect(digest == index.digest) }
                let image = try await workspace.store().resolve(url: "\(registry.host)/multi", policy: .ifNotPresent)
                try expectEntry(image, holds: host.bytes, in: workspace)
                #expect(image.digest == digest)
                #expect(image.programs == Objects.tracepointPrograms)
            }
        }
    }

    @Test func indexWithoutTheHostArchitectureIsRefused() async throws {
        try await withWorkspace { workspace in
            try await withTestRegistry { registry in
                let object = try Objects.tracepoint().path
                let layout = try workspace.layout()
                let others = ["amd64", "arm64", "s390x"].filter { $0 != hostGoArchitecture }
                let index = try layout.addIndex(
                    try others.map { try layout.addImage(TestImage.bytecode(objectAt: object, architecture: $0)) }
                )
                try layout.tag(index, as: "multi")
                try await registry.push(layout: layout.directory, tag: "multi", repository: "multi")
                let url = "\(registry.host)/multi:latest"
                let error = await expectImageError(.invalidArgument, "has no linux/\(hostGoArchitecture) manifest") {
                    try await workspace.store().resolve(url: url, policy: .ifNotPresent)
                }
                #expect(error?.message == "image \(url) has no linux/\(hostGoArchitecture) manifest")
                expectEmptyCache(workspace)
            }
        }
    }

    @Test func legacyLabelsComeBackAsPrograms() async throws {
        let labels = ["io.ebpf.bpf_function_name": "count_kill", "io.ebpf.program_type": "tracepoint"]
        let image = TestImage(labels: labels, layers: [.object(try Objects.tracepoint().bytes)])
        try await withPushedImage(image: image) { workspace, registry, _ in
            let cached = try await workspace.store().resolve(url: "\(registry.host)/bytecode", policy: .always)
            #expect(cached.programs == ["count_kill": "tracepoint"])
            #expect(cached.maps == nil)
        }
    }

    @Test func programsLabelThatIsNotJSONIsRefused() async throws {
        var image = try Objects.tracepointImage()
        image.labels["io.ebpf.programs"] = "count_kill=tracepoint"
        try await withPushedImage(image: image) { workspace, registry, _ in
            await expectImageError(.invalidArgument, "has an invalid io.ebpf.programs label") {
                try await workspace.store().resolve(url: "\(registry.host)/bytecode", policy: .always)
            }
            expectEmptyCache(workspace)
        }
    }

    /// Some of LayoutImageTests' refused layers, this time through a registry.
    @Test(arguments: [
        LayoutImageTests.RefusedLayers.dotDotEntry, .noELF, .notBPF, .bigEndian,
    ])
    func layerWithoutAUsableObjectIsRefused(_ kind: LayoutImageTests.RefusedLayers) async throws {
        let image = TestImage(layers: try kind.layers(object: Objects.tracepoint().bytes))
        try await withPushedImage(image: image) { workspace, registry, _ in
            await expectImageError(.invalidArgument, kind.message) {
                try await workspace.store().resolve(url: "\(registry.host)/bytecode", policy: .always)
            }
            expectEmptyCache(workspace)
        }
    }

    /// SPEC §8.1's caps, made small: a manifest, a layer and an entry over them are refused and nothing is kept.
    @Test(arguments: ["manifest", "layer", "entry"])
    func capsRefuseBeforeReadingWhole(_ cap: String) async throws {
        try await withPushedImage { workspace, registry, _ in
            var limits = ImageLimits()
            let (code, fragment): (ImageError.Code, String)
            switch cap {
            case "manifest":
                limits.document = 64
                (code, fragment) = (.internal, "larger than 64 bytes")
            case "layer":
                limits.layer = 256
                (code, fragment) = (.internal, "over the cap of 256 bytes")
            default:
                limits.entry = 512
                (code, fragment) = (.invalidArgument, "over the cap of 512 bytes")
            }
            let url = "\(registry.host)/bytecode"
            await expectImageError(code, fragment) {
                try await workspace.store(limits: limits).resolve(url: url, policy: .always)
            }
            expectEmptyCache(workspace)
            // The same store with the default caps takes it.
            _ = try await workspace.store().resolve(url: url, policy: .always)
        }
    }

    // MARK: Pull policies and the cache

    @Test func neverOnAnEmptyCacheIsAFailedPrecondition() async throws {
        try await withPushedImage { workspace, registry, _ in
            let url = "\(registry.host)/bytecode"
            let error = await expectImageError(.failedPrecondition, "not in cache and pull policy is Never") {
                try await workspace.store().resolve(url: url, policy: .never)
            }
            #expect(error?.message == "image \(url) not in cache and pull policy is Never")
            expectEmptyCache(workspace)
        }
    }

    @Test func ifNotPresentAndNeverAreServedFromTheCacheOnceTheRegistryIsGone() async throws {
        try await withPushedImage { workspace, registry, digest in
            let url = "\(registry.host)/bytecode:latest"
            let store = try workspace.store()
            let pulled = try await store.resolve(url: url, policy: .always)
            registry.stop()
            #expect(!registry.isRunning)
            let cached = try await store.resolve(url: url, policy: .ifNotPresent)
            #expect(cached == pulled)
            #expect(try await store.resolve(url: "\(registry.host)/bytecode", policy: .never) == pulled)
            #expect(cached.digest == digest)
        }
    }

    @Test func alwaysFailsOnceTheRegistryIsGoneAndKeepsTheEntry() async throws {
        try await withPushedImage { workspace, registry, _ in
            let url = "\(registry.host)/bytecode"
            let store = try workspace.store()
            let pulled = try await store.resolve(url: url, policy: .always)
            registry.stop()
            let error = await expectImageError(.internal, "failed to pull image \(url): ") {
                try await store.resolve(url: url, policy: .always)
            }
            #expect(error?.message.contains("onnect") == true, "\(error?.message ?? "")")
            // The old entry is untouched.
            #expect(try await store.resolve(url: url, policy: .never) == pulled)
            try expectEntry(pulled, holds: try Objects.tracepoint().bytes, in: workspace)
        }
    }

    /// A new store on the same directory (a daemon restart) finds what the first one cached.
    @Test func restartedStoreFindsTheEntry() async throws {
        try await withPushedImage { workspace, registry, _ in
            let url = "\(registry.host)/bytecode"
            let pulled = try await workspace.store().resolve(url: url, policy: .ifNotPresent)
            registry.stop()
            let restarted = try workspace.store()
            #expect(try await restarted.resolve(url: url, policy: .never) == pulled)
            #expect(
                try await restarted.resolve(url: "\(registry.host)/bytecode:latest", policy: .ifNotPresent) == pulled
            )
        }
    }

    /// An entry admitted under one signing policy is not used as is under another (SPEC §8.3).
    @Test func entryFromAnotherSigningPolicyIsNotUsedAsIs() async throws {
        try await withPushedImage { workspace, registry, _ in
            let url = "\(registry.host)/bytecode"
            let lax = SigningPolicy(verifyEnabled: false)
            let checked = SigningPolicy(verifyEnabled: true, allowUnsigned: true)
            let first = try await workspace.store(signing: lax).resolve(url: url, policy: .ifNotPresent)
            #expect(
                (try workspace.metadata(of: first)["policy"] as? [String: Any])?["verify_enabled"] as? Bool == false
            )

            let store = try workspace.store(signing: checked)
            let error = await expectImageError(.failedPrecondition, "cached under a different signing policy") {
                try await store.resolve(url: url, policy: .never)
            }
            #expect(
                error?.message == "image \(url) was cached under a different signing policy and pull policy is Never"
            )

            let repulled = try await store.resolve(url: url, policy: .ifNotPresent)
            #expect(repulled.objectPath == first.objectPath)
            #expect(
                (try workspace.metadata(of: repulled)["policy"] as? [String: Any])?["verify_enabled"] as? Bool == true
            )
            registry.stop()
            #expect(try await store.resolve(url: url, policy: .never) == repulled)
        }
    }

    @Test func unsignedImageIsRefusedWhenUnsignedImagesAreNotAllowed() async throws {
        try await withPushedImage { workspace, registry, _ in
            let url = "\(registry.host)/bytecode"
            let store = try workspace.store(signing: SigningPolicy(verifyEnabled: true, allowUnsigned: false))
            for policy in [PullPolicy.always, .ifNotPresent] {
                let error = await expectImageError(.failedPrecondition, "is not signed") {
                    try await store.resolve(url: url, policy: policy)
                }
                #expect(error?.message == "image \(url) is not signed and unsigned images are not allowed")
            }
            expectEmptyCache(workspace)
        }
    }

    /// `Always` refreshes the entry: a new image pushed under the same tag replaces the cached one.
    @Test func alwaysRefreshesTheEntry() async throws {
        try await withPushedImage { workspace, registry, digest in
            let url = "\(registry.host)/bytecode"
            let store = try workspace.store()
            let first = try await store.resolve(url: url, policy: .always)
            let layout = try workspace.layout(with: try TestImage.bytecode(objectAt: Objects.xdp().path), name: "xdp")
            let newDigest = try await registry.push(layout: layout.directory, tag: "v1", repository: "bytecode")
            #expect(newDigest != digest)
            #expect(try await store.resolve(url: url, policy: .ifNotPresent) == first)
            let second = try await store.resolve(url: url, policy: .always)
            #expect(second.digest == newDigest)
            #expect(second.objectPath == first.objectPath)
            try expectEntry(second, holds: try Objects.xdp().bytes, in: workspace)
            #expect(workspace.cacheContents().count == 1)
        }
    }
}
