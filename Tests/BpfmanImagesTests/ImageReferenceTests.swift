import BpfmanImages
import Foundation
import TestSupport
import Testing

/// SPEC §8.2's reference grammar and normalization, and the cache key built from it (§8.3).
@Suite struct ImageReferenceTests {
    static let digest = "sha256:" + String(repeating: "ab", count: 32)

    /// (url, normalized reference) pairs.
    static let normalized: [(String, String)] = [
        ("x", "docker.io/library/x:latest"),
        ("x:v1", "docker.io/library/x:v1"),
        ("library/x", "docker.io/library/x:latest"),
        ("docker.io/x", "docker.io/library/x:latest"),
        ("index.docker.io/library/x:latest", "docker.io/library/x:latest"),
        ("registry-1.docker.io/x", "docker.io/library/x:latest"),
        ("bpfman/xdp-pass", "docker.io/bpfman/xdp-pass:latest"),
        ("quay.io/bpfman-bytecode/xdp_pass:latest", "quay.io/bpfman-bytecode/xdp_pass:latest"),
        ("localhost/x", "localhost/x:latest"),
        ("localhost:5000/a/b", "localhost:5000/a/b:latest"),
        ("127.0.0.1:5000/a/b:v1.2-rc_3", "127.0.0.1:5000/a/b:v1.2-rc_3"),
        ("[::1]:5000/x", "[::1]:5000/x:latest"),
        ("[::1]/x:t", "[::1]/x:t"),
        ("ghcr.io/a/b/c/d:t", "ghcr.io/a/b/c/d:t"),
        ("x@\(digest)", "docker.io/library/x@\(digest)"),
        // A digest wins over a tag.
        ("x:v1@\(digest)", "docker.io/library/x@\(digest)"),
        ("localhost:5000/a:v1@\(digest)", "localhost:5000/a@\(digest)"),
        ("a__b-c--d/e.f", "docker.io/a__b-c--d/e.f:latest"),
        ("oci:/var/lib/images/x", "oci:/var/lib/images/x"),
        ("oci:/var/lib/images/x:v2", "oci:/var/lib/images/x:v2"),
        ("oci:/a:b/layout:v2", "oci:/a:b/layout:v2"),
        ("oci-archive:/tmp/x.tar:t", "oci-archive:/tmp/x.tar:t"),
    ]

    @Test(arguments: normalized)
    func normalizes(_ url: String, _ expected: String) throws {
        #expect(try ImageReference(parsing: url).normalized == expected)
    }

    @Test func registryPartsAreSplitAsDockerDoes() throws {
        guard case .registry(let reference) = try ImageReference(parsing: "localhost:5000/a/b:v1") else {
            Issue.record("not a registry reference")
            return
        }
        #expect(reference.registry == "localhost:5000")
        #expect(reference.host == "localhost:5000")
        #expect(reference.repository == "a/b")
        #expect(reference.tag == "v1")
        #expect(reference.digest == nil)
        #expect(reference.isLoopback)

        guard case .registry(let hub) = try ImageReference(parsing: "x") else {
            Issue.record("not a registry reference")
            return
        }
        #expect(hub.registry == "docker.io")
        #expect(hub.host == "registry-1.docker.io")
        #expect(hub.repository == "library/x")
        #expect(!hub.isLoopback)

        guard case .registry(let pinned) = try ImageReference(parsing: "quay.io/a:v1@\(Self.digest)") else {
            Issue.record("not a registry reference")
            return
        }
        #expect(pinned.manifestReference == Self.digest)
    }

    @Test(arguments: [
        ("127.0.0.1:5000/x", true), ("127.9.8.7/x", true), ("localhost/x", true), ("[::1]:5000/x", true),
        ("128.0.0.1/x", false), ("localhost.example.com/x", false), ("[::2]/x", false), ("x", false),
    ])
    func loopbackRegistries(_ url: String, _ loopback: Bool) throws {
        guard case .registry(let reference) = try ImageReference(parsing: url) else {
            Issue.record("not a registry reference")
            return
        }
        #expect(reference.isLoopback == loopback)
    }

    @Test func layoutReferencesKeepTheirPathAndTag() throws {
        #expect(try ImageReference(parsing: "oci:/a/b:t") == .layout(directory: "/a/b", tag: "t"))
        #expect(try ImageReference(parsing: "oci:/a/b") == .layout(directory: "/a/b", tag: nil))
        #expect(try ImageReference(parsing: "oci-archive:/a/b.tar") == .archive(file: "/a/b.tar", tag: nil))
    }

    /// Malformed references, each with what the message names.
    static let malformed: [(String, String)] = [
        ("", "empty"),
        ("Upper/x", "bad repository component"),
        ("quay.io/Bpfman/x", "bad repository component"),
        ("x@sha256:abc", "digest"),
        ("x@sha256:" + String(repeating: "AB", count: 32), "digest"),
        ("x@md5:" + String(repeating: "a", count: 32), "digest"),
        ("a b", "white space"),
        (" x", "white space"),
        ("x:", "bad tag"),
        ("x:-v1", "bad tag"),
        ("x:" + String(repeating: "t", count: 129), "bad tag"),
        ("a//b", "empty path component"),
        ("/x", "empty path component"),
        ("x/", "empty path component"),
        ("x-/y", "bad repository component"),
        ("localhost:0/x", "bad registry"),
        ("bad_host.io/x", "bad registry"),
        ("host:abc/x", "bad registry"),
        ("x:@\(digest)", "bad tag"),
        ("caf\u{E9}/x", "non-ASCII"),
        ("oci:relative/dir:t", "must be absolute"),
        ("oci:relative", "must be absolute"),
        ("oci-archive:x.tar", "must be absolute"),
        ("oci:/a/../b:t", ".."),
        ("oci:/a/b:bad tag", "bad tag"),
    ]

    @Test(arguments: malformed)
    func refusesMalformedReferences(_ url: String, _ reason: String) throws {
        do {
            let parsed = try ImageReference(parsing: url)
            Issue.record("\"\(url)\" parsed as \(parsed)")
        } catch {
            #expect(error.code == .invalidArgument)
            #expect(error.message.hasPrefix("invalid image reference \"\(url)\""), "\(error.message)")
            #expect(error.message.contains(reason), "\(error.message)")
        }
    }

    /// The store refuses them before any cache or network access, with the same INVALID_ARGUMENT.
    @Test(arguments: ["Upper/x", "x@sha256:abc", "a b", "oci:relative/dir:t"])
    func resolveRefusesMalformedReferences(_ url: String) async throws {
        try await withWorkspace { workspace in
            let store = try workspace.store()
            for policy in [PullPolicy.always, .ifNotPresent, .never] {
                await expectImageError(.invalidArgument, "invalid image reference") {
                    try await store.resolve(url: url, policy: policy)
                }
            }
            expectEmptyCache(workspace)
        }
    }

    @Test func anEmptyURLIsRequired() async throws {
        try await withWorkspace { workspace in
            let store = try workspace.store()
            let error = await expectImageError(.invalidArgument, "image url is required") {
                try await store.resolve(url: "", policy: .ifNotPresent)
            }
            #expect(error?.message == "image url is required")
        }
    }

    /// `sha256_<first 16 bytes of sha256(normalized reference) as 32 hex>` (SPEC §8.3), computed here with the
    /// tests' own SHA-256; `x`, `docker.io/library/x` and `x:latest` share one entry.
    @Test func cacheEntriesAreKeyedByTheNormalizedReference() async throws {
        try await withWorkspace { workspace in
            let store = try workspace.store()
            let expected = workspace.cache + "/sha256_" + sha256Hex(Array("docker.io/library/x:latest".utf8)).prefix(32)
            for url in ["x", "docker.io/library/x", "x:latest", "index.docker.io/library/x:latest"] {
                #expect(try store.entryDirectory(for: try ImageReference(parsing: url).normalized) == expected)
            }
            #expect(try store.entryDirectory(for: "docker.io/library/x:v1") != expected)
        }
    }
}
