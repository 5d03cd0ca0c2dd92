internal import BpfmanImages
internal import BpfmanSigstore
internal import Glibc
internal import SystemCalls

/// An image as pulled and checked, not yet in the cache.
struct PulledImage {
    /// The digest of the manifest or index the reference named (what `@sha256:` pins).
    var digest: String
    var object: [UInt8]
    var programs: [String: String]?
    var maps: [String: String]?
    /// What the signature check found, when one was asked for.
    var signature: SignatureReport?
}

/// Turns a reference into a checked BPF object (SPEC §8.1): index → `linux/<host arch>` manifest → config
/// labels → layers, every blob checked against its digest and size, the object's ELF header checked last.
struct Puller {
    /// The url as the client gave it, for messages.
    let url: String
    let limits: ImageLimits
    /// A scratch directory that the caller removes.
    let staging: String
    /// Signature verification, or nil when it is off.
    var signing: SignatureCheck? = nil
    /// Reads the trust root the daemon opened (fd 5); called only when a signature is found.
    var readTrustRoot: () throws(PullFailure) -> [UInt8]? = { nil }

    func pull(from source: inout some ImageSource) throws(PullFailure) -> PulledImage {
        let root = try source.rootManifest(limits: limits)
        // Signatures are checked before any layer is downloaded; for an index, the index digest is what is signed.
        var signature: SignatureReport?
        if let signing {
            signature = try checkSignatures(of: root, from: &source, check: signing) { () throws(PullFailure) in
                try parseTrustRoot(try readTrustRoot(), check: signing)
            }
        }
        var document = try ManifestDocument(bytes: root.bytes, contentType: root.contentType)
        if case .index(let manifests) = document {
            let arch = hostArchitecture
            guard
                let chosen = manifests.first(where: { $0.platform?.os == "linux" && $0.platform?.architecture == arch })
            else { throw .content(.invalidArgument("image \(url) has no linux/\(arch) manifest")) }
            let manifest = try source.manifest(try chosen.checked(), limits: limits)
            document = try ManifestDocument(bytes: manifest.bytes, contentType: manifest.contentType)
        }
        guard case .manifest(let configDescriptor, let layers) = document else {
            throw .transfer("an index names another index")
        }
        // A bytecode image has one layer or a few; a manifest naming thousands would mean as many downloads.
        guard layers.count <= limits.layers else {
            throw .content(.invalidArgument("image \(url) has \(layers.count) layers, more than \(limits.layers)"))
        }
        let config = try source.blob(try configDescriptor.checked(), limit: limits.document)
        let labels = try ImageLabels(configBytes: config)
        let programs: [String: String]?
        let maps: [String: String]?
        do {
            programs = try labels.programs(url: url)
            maps = try labels.maps(url: url)
        } catch {
            throw .content(error)
        }
        for (index, layer) in layers.enumerated() {
            let path = "\(staging)/layer-\(index)"
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw .transfer("cannot write \(path): \(Errno.current)") }
            do {
                defer { close(fd) }
                try source.blob(try layer.checked(), into: fd, limit: limits.layer)
            }
            let content = try readLayer(path: path, limits: limits, url: url)
            unlink(path)
            // The daemon checks the ELF header (the engine's check) before anything is cached.
            guard case .object(_, let bytes) = content else { continue }
            return PulledImage(
                digest: root.digest,
                object: bytes,
                programs: programs,
                maps: maps,
                signature: signature
            )
        }
        throw .content(
            .invalidArgument("image \(url) does not hold a BPF object for this machine: no layer holds an ELF file")
        )
    }
}
