internal import FoundationEssentials
internal import Glibc
internal import SystemCalls

/// The daemon's side of fetching the Sigstore trust root through TUF (SPEC §8.5), used when neither
/// `$SIGSTORE_ROOT_FILE` nor `<rd>/tuf/trusted_root.json` is there. The fetcher (as nobody) downloads and verifies;
/// the daemon keeps the metadata it verified under `<rd>/tuf/<repository hash>/` (root, timestamp, snapshot,
/// targets, and the `trusted_root.json` target), and hands them to the next update for root rotation and rollback
/// protection.
///
/// Trust boundary: the daemon already takes the fetcher's word that a signature verified, so the fetcher's TUF
/// verdict adds no new trust; the daemon still checks that the target it is given has the length and SHA-256 that
/// the targets metadata it is given lists, and that the metadata is of the kind it claims, before caching it.
package struct TUFCache: Sendable {
    /// `$BPFMAN_TUF_URL`, else Sigstore's public-good repository.
    package let repository: String
    /// `$BPFMAN_TUF_ROOT`: the initial root for a repository not cached yet, else the embedded Sigstore root.
    package let initialRootPath: String?
    package let directory: String

    static let fileLimit = 1 << 20
    static let names = ["root.json", "timestamp.json", "snapshot.json", "targets.json", "trusted_root.json"]

    package init(environment: [String: String], runtimeDirectory: String) {
        repository = environment["BPFMAN_TUF_URL"].flatMap { $0.isEmpty ? nil : $0 } ?? SigstorePublicGood.repository
        initialRootPath = environment["BPFMAN_TUF_ROOT"].flatMap { $0.isEmpty ? nil : $0 }
        let key = (try? SHA256Hasher.digest(Array(repository.utf8)))?.dropFirst(7).prefix(16) ?? "repository"
        directory = runtimeDirectory + "/tuf/" + key
    }

    /// The request for the fetcher: the cached metadata, or the initial root when none is cached.
    /// - Throws: why the initial root cannot be read (a message for `sigstore trust root unavailable`).
    package func request() throws(ImageError) -> TUFRequest {
        func cached(_ name: String) -> [UInt8]? { readSmallFile(directory + "/" + name, limit: Self.fileLimit) }
        var root = cached("root.json")
        if root == nil {
            if let initialRootPath {
                guard let bytes = readSmallFile(initialRootPath, limit: Self.fileLimit) else {
                    throw .internal("cannot read the initial TUF root BPFMAN_TUF_ROOT=\(initialRootPath)")
                }
                root = bytes
            } else {
                root = Array(SigstorePublicGood.initialRoot.utf8)
            }
        }
        return TUFRequest(
            repository: repository,
            root: root!,
            timestamp: cached("timestamp.json"),
            snapshot: cached("snapshot.json"),
            targets: cached("targets.json"),
            trustedRoot: cached("trusted_root.json")
        )
    }

    /// Checks `update` against itself and caches it.
    /// - Throws: why it is refused or cannot be written; nothing is cached then.
    package func store(_ update: TUFUpdate) throws(ImageError) {
        struct Target: Decodable {
            var length: Int
            var hashes: [String: String]
        }
        struct Signed: Decodable {
            var _type: String
            var targets: [String: Target]?
        }
        struct Envelope: Decodable { var signed: Signed }
        func kind(_ bytes: [UInt8]) -> Signed? { (try? JSONDecoder().decode(Envelope.self, from: Data(bytes)))?.signed }
        let files = [update.root, update.timestamp, update.snapshot, update.targets, update.trustedRoot]
        guard files.allSatisfy({ $0.count <= Self.fileLimit }),
            kind(update.root)?._type == "root", kind(update.timestamp)?._type == "timestamp",
            kind(update.snapshot)?._type == "snapshot", let targets = kind(update.targets), targets._type == "targets"
        else { throw .internal("the image fetcher returned TUF metadata that is not what it claims") }
        guard let target = targets.targets?["trusted_root.json"], target.length == update.trustedRoot.count,
            let expected = target.hashes["sha256"],
            "sha256:" + expected.lowercased() == (try? SHA256Hasher.digest(update.trustedRoot))
        else {
            throw .internal("the image fetcher returned a trusted_root.json that its targets metadata does not list")
        }
        try makeDirectories(directory)
        for (name, bytes) in zip(Self.names, files) {
            let temporary = directory + "/." + name + "-" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
            guard writeFile(temporary, bytes), rename(temporary, directory + "/" + name) == 0 else {
                unlink(temporary)
                throw .internal("cannot write \(directory)/\(name): \(Errno.current)")
            }
        }
    }
}
