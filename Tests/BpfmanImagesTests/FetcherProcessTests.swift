import BpfmanImages
import Foundation
import TestSupport
import Testing

/// The `bpfman-image` process the store starts for each pull (README, "Bytecode images"): it reads untrusted
/// bytes as user nobody, not as root, and its absence or failure is a clear error.
@Suite(.enabled(if: RegistryTools.gzip != nil, "needs gzip to build image layers"), .timeLimit(.minutes(2)))
struct FetcherProcessTests {
    /// A layer blob that only root may read cannot be read by the fetcher: proof that it runs without root.
    /// Readable again, the same image resolves.
    @Test(.enabled(if: getuid() == 0, "needs root: the fetcher drops root only when it has it"))
    func fetcherReadsAsNobodyNotRoot() async throws {
        try await withWorkspace { workspace in
            let layout = try workspace.layout(with: try Objects.tracepointImage())
            let blobs = layout.directory + "/blobs/sha256"
            let layer = try #require(
                try FileManager.default.contentsOfDirectory(atPath: blobs).first { name in
                    (try? Data(contentsOf: URL(fileURLWithPath: blobs + "/" + name)))?.first == 0x1f  // gzip
                }
            )
            #expect(chmod(blobs + "/" + layer, 0o600) == 0)
            let store = try workspace.store()
            await expectImageError(.internal, "Permission denied") {
                try await store.resolve(url: "oci:\(layout.directory)", policy: .always)
            }
            #expect(workspace.cacheContents().isEmpty, "nothing cached")
            #expect(chmod(blobs + "/" + layer, 0o644) == 0)
            let image = try await store.resolve(url: "oci:\(layout.directory)", policy: .always)
            try expectEntry(image, holds: try Objects.tracepoint().bytes, in: workspace)
        }
    }

    /// A fetcher that cannot start, or that ends without a reply (here: one that is not a fetcher at all), fails
    /// the pull with INTERNAL, and nothing is cached.
    @Test(arguments: [
        ("/nonexistent/bpfman-image", "cannot start the image fetcher /nonexistent/bpfman-image"),
        ("/bin/false", "the image fetcher exited with status 1 without a reply"),
    ])
    func aBrokenFetcherIsAClearError(fetcher: String, message: String) async throws {
        try await withWorkspace { workspace in
            let layout = try workspace.layout(with: try Objects.tracepointImage())
            let store = try ImageStore(
                directory: workspace.cache,
                signing: SigningPolicy(),
                environment: [:],
                userAgent: "bpfman-images-tests",
                logger: workspace.log.makeLogger(label: "bpfman.images.test"),
                fetcher: fetcher,
                objectCheck: bpfObjectCheck
            )
            await expectImageError(.internal, message) {
                try await store.resolve(url: "oci:\(layout.directory)", policy: .always)
            }
            #expect(workspace.cacheContents().isEmpty)
        }
    }
}
