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

extension Puller {
    /// Describes the image (`image inspect`): the root's digest and media type, and for each manifest (the root,
    /// or every manifest of an index) its platform, config labels and layer descriptors. Reads documents and
    /// configs only, each within `limits.document`; no layer is downloaded.
    func inspect(from source: inout some ImageSource, reference: String) throws(PullFailure) -> ImageInspection {
        let root = try source.rootManifest(limits: limits)
        let document = try ManifestDocument(bytes: root.bytes, contentType: root.contentType)
        var inspection = ImageInspection(
            reference: reference,
            digest: root.digest,
            mediaType: mediaType(root.contentType)
        )
        switch document {
        case .manifest(let config, let layers):
            if inspection.mediaType.isEmpty { inspection.mediaType = MediaType.ociManifest }
            let (programs, maps) = try labels(config, from: &source)
            inspection.programs = programs
            inspection.maps = maps
            inspection.layers = try summaries(layers)
        case .index(let manifests):
            if inspection.mediaType.isEmpty { inspection.mediaType = MediaType.ociIndex }
            // As many manifests as a pull would accept layers: each costs a document and a config download.
            guard manifests.count <= limits.layers else {
                throw .content(
                    .invalidArgument("image \(url) lists \(manifests.count) manifests, more than \(limits.layers)")
                )
            }
            inspection.manifests = try manifests.map { (entry: Descriptor) throws(PullFailure) in
                let checked = try entry.checked()
                let fetched = try source.manifest(checked, limits: limits)
                guard
                    case .manifest(let config, let layers) = try ManifestDocument(
                        bytes: fetched.bytes,
                        contentType: fetched.contentType
                    )
                else { throw .transfer("an index names another index") }
                let (programs, maps) = try labels(config, from: &source)
                return ImageInspection.ManifestSummary(
                    digest: checked.digest,
                    mediaType: checked.mediaType ?? fallback(mediaType(fetched.contentType), MediaType.ociManifest),
                    size: checked.size,
                    platform: checked.platform.map { p in
                        [p.os, p.architecture, p.variant].compactMap { $0 }.joined(separator: "/")
                    },
                    programs: programs,
                    maps: maps,
                    layers: try summaries(layers)
                )
            }
        }
        return inspection
    }

    private func fallback(_ value: String, _ otherwise: String) -> String { value.isEmpty ? otherwise : value }

    /// A Content-Type header's media type: parameters and surrounding white space (a header's CR LF) dropped.
    private func mediaType(_ contentType: String?) -> String {
        let type = contentType?.split(separator: ";", maxSplits: 1).first ?? ""
        return String(type.filter { !$0.isWhitespace && !$0.isNewline })
    }

    private func labels(
        _ config: Descriptor,
        from source: inout some ImageSource
    ) throws(PullFailure) -> ([String: String]?, [String: String]?) {
        let bytes = try source.blob(try config.checked(), limit: limits.document)
        let labels = try ImageLabels(configBytes: bytes)
        do {
            return (try labels.programs(url: url), try labels.maps(url: url))
        } catch {
            throw .content(error)
        }
    }

    private func summaries(_ layers: [Descriptor]) throws(PullFailure) -> [ImageInspection.DescriptorSummary] {
        guard layers.count <= limits.layers else {
            throw .content(.invalidArgument("image \(url) has \(layers.count) layers, more than \(limits.layers)"))
        }
        return try layers.map { (layer: Descriptor) throws(PullFailure) in
            let checked = try layer.checked()
            return ImageInspection.DescriptorSummary(
                digest: checked.digest,
                mediaType: checked.mediaType ?? "",
                size: checked.size
            )
        }
    }
}
