internal import BpfmanImages
internal import FoundationEssentials

/// The JSON documents of the OCI image spec and Docker's v2 formats that a bytecode image is made of. Fields
/// this daemon does not use are not decoded.
enum MediaType {
    static let ociIndex = "application/vnd.oci.image.index.v1+json"
    static let ociManifest = "application/vnd.oci.image.manifest.v1+json"
    static let dockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
    static let dockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
    /// The manifest `Accept` header of SPEC §8.2, most preferred first.
    static let acceptManifests = [ociIndex, ociManifest, dockerManifestList, dockerManifest]
}

struct Descriptor: Decodable, Sendable {
    var mediaType: String?
    /// An OCI 1.1 artifact's type, in a referrers index.
    var artifactType: String?
    var digest: String
    var size: Int
    var platform: Platform?
    var annotations: [String: String]?

    struct Platform: Decodable, Sendable {
        var architecture: String
        var os: String
        var variant: String?
    }

    /// Checks the digest's form before it is used in a URL or a file name.
    func checked() throws(PullFailure) -> Descriptor {
        guard digest.hasPrefix("sha256:"), digest.utf8.count == 71,
            digest.dropFirst(7).allSatisfy({ $0.isHexDigit && !$0.isUppercase })
        else { throw .transfer("unsupported digest \"\(digest.prefix(80))\" (only sha256 is accepted)") }
        guard size >= 0 else { throw .transfer("negative size in descriptor \(digest)") }
        return self
    }
}

/// An image index or a Docker manifest list; or an image manifest; told apart by their fields and media type.
enum ManifestDocument {
    case index([Descriptor])
    case manifest(config: Descriptor, layers: [Descriptor])

    private struct Fields: Decodable {
        var schemaVersion: Int?
        var mediaType: String?
        var manifests: [Descriptor]?
        var config: Descriptor?
        var layers: [Descriptor]?
    }

    init(bytes: [UInt8], contentType: String?) throws(PullFailure) {
        let fields: Fields
        do { fields = try JSONDecoder().decode(Fields.self, from: Data(bytes)) } catch {
            throw .transfer("the manifest is not valid JSON: \(jsonReason(error))")
        }
        let type = fields.mediaType ?? contentType.map { trimmed(String($0.split(separator: ";").first ?? "")) }
        if fields.schemaVersion == 1 || type?.contains("v1+prettyjws") == true
            || type?.hasSuffix("manifest.v1+json") == true && type?.contains("docker") == true
        {
            throw .transfer("Docker schema 1 manifests are not supported")
        }
        if let manifests = fields.manifests, fields.layers == nil {
            self = .index(manifests)
        } else if let config = fields.config, let layers = fields.layers {
            self = .manifest(config: config, layers: layers)
        } else {
            throw .transfer("the manifest has neither manifests nor config and layers (media type \(type ?? "none"))")
        }
    }
}

/// The labels of an image config (`config.Labels`, the same place in OCI and Docker configs).
struct ImageLabels {
    var labels: [String: String]

    private struct Fields: Decodable {
        struct Config: Decodable {
            var Labels: [String: String]?
        }
        var config: Config?
    }

    init(configBytes: [UInt8]) throws(PullFailure) {
        do {
            labels = try JSONDecoder().decode(Fields.self, from: Data(configBytes)).config?.Labels ?? [:]
        } catch {
            throw .transfer("the image config is not valid JSON: \(jsonReason(error))")
        }
    }

    /// `io.ebpf.programs` (SPEC §8.1), else the legacy single-program labels; nil when the image declares none.
    func programs(url: String) throws(ImageError) -> [String: String]? {
        if let text = labels["io.ebpf.programs"] { return try Self.object(text, label: "io.ebpf.programs", url: url) }
        if let function = labels["io.ebpf.bpf_function_name"] {
            return [function: labels["io.ebpf.program_type"] ?? ""]
        }
        return nil
    }

    /// `io.ebpf.maps`, or nil.
    func maps(url: String) throws(ImageError) -> [String: String]? {
        guard let text = labels["io.ebpf.maps"] else { return nil }
        return try Self.object(text, label: "io.ebpf.maps", url: url)
    }

    private static func object(_ text: String, label: String, url: String) throws(ImageError) -> [String: String] {
        do { return try JSONDecoder().decode([String: String].self, from: Data(text.utf8)) } catch {
            throw .invalidArgument(
                "image \(url) has an invalid \(label) label: not a JSON object of strings (\(jsonReason(error)))"
            )
        }
    }
}

/// Decodes JSON from bytes.
func decodeJSON<T: Decodable>(_ type: T.Type, _ bytes: [UInt8]) throws -> T {
    try JSONDecoder().decode(type, from: Data(bytes))
}

/// A short reason for a JSON decoding error, without the full coding path dump.
func jsonReason(_ error: any Error) -> String {
    switch error {
    case DecodingError.dataCorrupted(let context): context.debugDescription
    case DecodingError.typeMismatch(_, let context): "wrong type at \(path(context))"
    case DecodingError.keyNotFound(let key, let context): "missing \"\(key.stringValue)\" at \(path(context))"
    case DecodingError.valueNotFound(_, let context): "null at \(path(context))"
    default: "\(error)"
    }
}

private func path(_ context: DecodingError.Context) -> String {
    let path = context.codingPath.map(\.stringValue).joined(separator: ".")
    return path.isEmpty ? "the top level" : path
}

/// The platform name of this machine as Go spells it in image indexes (`amd64`, `arm64`, ...).
var hostArchitecture: String {
    #if arch(x86_64)
    "amd64"
    #elseif arch(arm64)
    "arm64"
    #elseif arch(s390x)
    "s390x"
    #elseif arch(powerpc64le)
    "ppc64le"
    #elseif arch(arm)
    "arm"
    #elseif arch(i386)
    "386"
    #else
    "unknown"
    #endif
}
