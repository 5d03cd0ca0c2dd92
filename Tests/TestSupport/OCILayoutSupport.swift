import Foundation

// Bytecode images for tests, written as OCI image layouts directly (no container engine): blobs under
// `blobs/sha256`, `index.json` naming each image by its `org.opencontainers.image.ref.name` annotation, and the
// `oci-layout` marker. Everything is deterministic: the same inputs give the same digests.

/// The OCI media types the fixtures use.
public enum OCIMediaType {
    public static let index = "application/vnd.oci.image.index.v1+json"
    public static let manifest = "application/vnd.oci.image.manifest.v1+json"
    public static let config = "application/vnd.oci.image.config.v1+json"
    public static let layerTar = "application/vnd.oci.image.layer.v1.tar"
    public static let layerTarGzip = "application/vnd.oci.image.layer.v1.tar+gzip"
}

/// The annotation that names an image in a layout's `index.json` (what `oci:<dir>:<tag>` selects).
public let ociRefNameAnnotation = "org.opencontainers.image.ref.name"

/// This machine's architecture as Go spells it in image indexes (`amd64`, `arm64`, ...).
public let hostGoArchitecture: String = {
    #if arch(x86_64)
    "amd64"
    #elseif arch(arm64)
    "arm64"
    #elseif arch(s390x)
    "s390x"
    #elseif arch(powerpc64le)
    "ppc64le"
    #else
    "unknown"
    #endif
}()

/// A content descriptor: what a manifest or index says about a blob.
public struct OCIDescriptor: Sendable, Equatable {
    public var mediaType: String
    /// `sha256:<64 lower-case hex>`.
    public var digest: String
    public var size: Int
    /// `(os, architecture)`, set on image manifests so they can go into an index.
    public var platform: (os: String, architecture: String)?

    public init(mediaType: String, digest: String, size: Int, platform: (os: String, architecture: String)? = nil) {
        self.mediaType = mediaType
        self.digest = digest
        self.size = size
        self.platform = platform
    }

    public static func == (a: OCIDescriptor, b: OCIDescriptor) -> Bool {
        a.mediaType == b.mediaType && a.digest == b.digest && a.size == b.size
            && a.platform?.os == b.platform?.os && a.platform?.architecture == b.platform?.architecture
    }

    fileprivate var json: [String: Any] {
        var object: [String: Any] = ["mediaType": mediaType, "digest": digest, "size": size]
        if let platform { object["platform"] = ["os": platform.os, "architecture": platform.architecture] }
        return object
    }
}

/// One entry of a tar archive the tests write byte by byte (so they can write what `tar` refuses to, such as
/// a `../x` member name).
public struct TarEntry: Sendable {
    public enum Kind: Sendable {
        case file
        case directory
        case symlink(target: String)
    }

    public var name: String
    public var contents: [UInt8]
    public var kind: Kind

    public init(name: String, contents: [UInt8] = [], kind: Kind = .file) {
        self.name = name
        self.contents = contents
        self.kind = kind
    }
}

/// One layer of a test image.
public enum TestLayer: Sendable {
    /// A tar of `entries`, gzip-compressed when `gzip` (media type `…tar+gzip`, else `…tar`).
    case tar([TarEntry], gzip: Bool = true)
    /// Bytes as they are (a bare ELF object, say), gzip-compressed when `gzip`. The media type still says tar:
    /// bytecode layers are sniffed, not trusted by media type (SPEC §8.1).
    case bare([UInt8], gzip: Bool = false)

    /// The usual bytecode layer: a tar.gz holding one object file.
    public static func object(_ bytes: [UInt8], name: String = "bytecode.o") -> TestLayer {
        .tar([TarEntry(name: name, contents: bytes)], gzip: true)
    }
}

/// An image to write into a layout: config labels, layers and a platform.
public struct TestImage: Sendable {
    public var labels: [String: String]
    public var layers: [TestLayer]
    public var architecture: String

    public init(labels: [String: String] = [:], layers: [TestLayer], architecture: String = hostGoArchitecture) {
        self.labels = labels
        self.layers = layers
        self.architecture = architecture
    }

    /// A bytecode image as upstream builds them: the object in a tar.gz layer, with `io.ebpf.programs` and
    /// `io.ebpf.maps` labels when given (JSON objects, as SPEC §8.1 describes).
    public static func bytecode(
        objectAt path: String,
        programs: [String: String]? = nil,
        maps: [String: String]? = nil,
        architecture: String = hostGoArchitecture
    ) throws -> TestImage {
        var labels: [String: String] = [:]
        if let programs { labels["io.ebpf.programs"] = try jsonText(programs) }
        if let maps { labels["io.ebpf.maps"] = try jsonText(maps) }
        return TestImage(labels: labels, layers: [.object(try readBytes(path))], architecture: architecture)
    }
}

/// An OCI image layout directory that a test writes images into.
///
/// Not thread-safe: one test builds its layout, then hands its `directory` to whatever reads it.
public final class OCILayout {
    public let directory: String
    private var tags: [(tag: String, descriptor: OCIDescriptor)] = []

    /// Makes `directory` (and its parents) with `blobs/sha256`, `oci-layout` and an empty `index.json`.
    public init(directory: String) throws {
        self.directory = directory
        try FileManager.default.createDirectory(
            atPath: directory + "/blobs/sha256",
            withIntermediateDirectories: true
        )
        try writeBytes(Array(#"{"imageLayoutVersion":"1.0.0"}"#.utf8), to: directory + "/oci-layout")
        try writeIndex()
    }

    /// Stores `bytes` as a blob.
    @discardableResult
    public func addBlob(_ bytes: [UInt8], mediaType: String) throws -> OCIDescriptor {
        let digest = "sha256:" + sha256Hex(bytes)
        try writeBytes(bytes, to: "\(directory)/blobs/sha256/\(digest.dropFirst(7))")
        return OCIDescriptor(mediaType: mediaType, digest: digest, size: bytes.count)
    }

    /// Stores an image's layers, config and manifest; returns the manifest's descriptor, with its platform.
    public func addImage(_ image: TestImage) throws -> OCIDescriptor {
        var layers: [OCIDescriptor] = []
        var diffIDs: [String] = []
        for layer in image.layers {
            let (uncompressed, compress) =
                switch layer {
                case .tar(let entries, let gzip): (tarArchive(entries), gzip)
                case .bare(let bytes, let gzip): (bytes, gzip)
                }
            diffIDs.append("sha256:" + sha256Hex(uncompressed))
            let stored = compress ? try gzipCompress(uncompressed) : uncompressed
            layers.append(try addBlob(stored, mediaType: compress ? OCIMediaType.layerTarGzip : OCIMediaType.layerTar))
        }
        let config: [String: Any] = [
            "architecture": image.architecture,
            "os": "linux",
            "created": "1970-01-01T00:00:00Z",
            "config": ["Labels": image.labels],
            "rootfs": ["type": "layers", "diff_ids": diffIDs],
        ]
        let configDescriptor = try addBlob(try jsonBytes(config), mediaType: OCIMediaType.config)
        let manifest: [String: Any] = [
            "schemaVersion": 2,
            "mediaType": OCIMediaType.manifest,
            "config": configDescriptor.json,
            "layers": layers.map(\.json),
        ]
        var descriptor = try addBlob(try jsonBytes(manifest), mediaType: OCIMediaType.manifest)
        descriptor.platform = ("linux", image.architecture)
        return descriptor
    }

    /// Stores an image index over `manifests` (each with its platform); returns the index's descriptor.
    public func addIndex(_ manifests: [OCIDescriptor]) throws -> OCIDescriptor {
        let index: [String: Any] = [
            "schemaVersion": 2,
            "mediaType": OCIMediaType.index,
            "manifests": manifests.map(\.json),
        ]
        return try addBlob(try jsonBytes(index), mediaType: OCIMediaType.index)
    }

    /// Names `descriptor` `tag` in `index.json` (replacing an earlier image of that tag).
    public func tag(_ descriptor: OCIDescriptor, as tag: String) throws {
        tags.removeAll { $0.tag == tag }
        tags.append((tag, descriptor))
        try writeIndex()
    }

    /// Adds `image` and tags it: the one-call way to a single-image layout.
    @discardableResult
    public func add(_ image: TestImage, tag: String) throws -> OCIDescriptor {
        let descriptor = try addImage(image)
        try self.tag(descriptor, as: tag)
        return descriptor
    }

    /// Writes the layout as a tar file (what `oci-archive:<file>` reads): `oci-layout`, `index.json` and every
    /// blob, in a fixed order.
    public func writeArchive(to path: String) throws {
        var entries = [
            TarEntry(name: "oci-layout", contents: try readBytes(directory + "/oci-layout")),
            TarEntry(name: "index.json", contents: try readBytes(directory + "/index.json")),
            TarEntry(name: "blobs/", kind: .directory),
            TarEntry(name: "blobs/sha256/", kind: .directory),
        ]
        for name in try FileManager.default.contentsOfDirectory(atPath: directory + "/blobs/sha256").sorted() {
            entries.append(
                TarEntry(name: "blobs/sha256/" + name, contents: try readBytes("\(directory)/blobs/sha256/\(name)"))
            )
        }
        try writeBytes(tarArchive(entries), to: path)
    }

    private func writeIndex() throws {
        let manifests: [[String: Any]] = tags.map { tag, descriptor in
            var entry = descriptor.json
            entry["platform"] = nil
            entry["annotations"] = [ociRefNameAnnotation: tag]
            return entry
        }
        try writeBytes(try jsonBytes(["schemaVersion": 2, "manifests": manifests]), to: directory + "/index.json")
    }
}

// MARK: - Bytes

/// A ustar archive of `entries` (mode 0644/0755, owner 0, mtime 0), ended by two zero blocks.
public func tarArchive(_ entries: [TarEntry]) -> [UInt8] {
    var out: [UInt8] = []
    for entry in entries {
        var header = [UInt8](repeating: 0, count: 512)
        func put(_ text: String, at offset: Int, width: Int) {
            for (index, byte) in text.utf8.prefix(width).enumerated() { header[offset + index] = byte }
        }
        func octal(_ value: Int, at offset: Int, width: Int) {
            let digits = String(value, radix: 8)
            put(String(repeating: "0", count: max(0, width - 1 - digits.count)) + digits, at: offset, width: width - 1)
        }
        let (type, mode, size, link): (String, Int, Int, String) =
            switch entry.kind {
            case .file: ("0", 0o644, entry.contents.count, "")
            case .directory: ("5", 0o755, 0, "")
            case .symlink(let target): ("2", 0o777, 0, target)
            }
        put(entry.name, at: 0, width: 100)
        octal(mode, at: 100, width: 8)
        octal(0, at: 108, width: 8)
        octal(0, at: 116, width: 8)
        octal(size, at: 124, width: 12)
        octal(0, at: 136, width: 12)
        put("        ", at: 148, width: 8)
        put(type, at: 156, width: 1)
        put(link, at: 157, width: 100)
        put("ustar", at: 257, width: 6)
        put("00", at: 263, width: 2)
        put("root", at: 265, width: 32)
        put("root", at: 297, width: 32)
        let checksum = header.reduce(0) { $0 + Int($1) }
        octal(checksum, at: 148, width: 7)  // six digits, NUL, space
        header[154] = 0
        header[155] = 0x20
        out += header
        if size > 0 {
            out += entry.contents
            out += [UInt8](repeating: 0, count: (512 - size % 512) % 512)
        }
    }
    out += [UInt8](repeating: 0, count: 1024)
    return out
}

/// `bytes` compressed by the `gzip` command with `-n` (no name, no time stamp), so the output is the same
/// every time.
public func gzipCompress(_ bytes: [UInt8]) throws -> [UInt8] {
    let directory = try makeTemporaryDirectory(prefix: "gzip")
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let path = directory + "/data"
    try writeBytes(bytes, to: path)
    let result = try run("gzip", ["-n", "-9", "-f", path])
    guard result.status == 0 else { throw FixtureError("gzip failed: \(result.output)") }
    return try readBytes(path + ".gz")
}

/// A fresh directory under the system's temporary directory, named `bpfman-<prefix>-XXXXXX`.
public func makeTemporaryDirectory(prefix: String) throws -> String {
    var template = Array((NSTemporaryDirectory() + "/bpfman-\(prefix)-XXXXXX").utf8CString)
    guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
        throw FixtureError("mkdtemp failed: errno \(errno)")
    }
    return URL(fileURLWithPath: String(cString: made)).standardizedFileURL.path
}

/// The whole file at `path`.
public func readBytes(_ path: String) throws -> [UInt8] {
    guard let data = FileManager.default.contents(atPath: path) else { throw FixtureError("cannot read \(path)") }
    return Array(data)
}

/// Writes `bytes` to `path`, replacing it.
public func writeBytes(_ bytes: [UInt8], to path: String) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

/// Compact JSON with sorted keys and unescaped slashes (media types keep their `/`).
private func jsonBytes(_ object: Any) throws -> [UInt8] {
    Array(try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]))
}

private func jsonText(_ object: [String: String]) throws -> String {
    String(decoding: try jsonBytes(object), as: UTF8.self)
}

// MARK: - SHA-256

/// The lower-case hex SHA-256 of `bytes` (FIPS 180-4), written here so tests check the module's libcrypto
/// digests against an implementation of their own.
public func sha256Hex(_ bytes: [UInt8]) -> String {
    var state: [UInt32] = [
        0x6a09_e667, 0xbb67_ae85, 0x3c6e_f372, 0xa54f_f53a, 0x510e_527f, 0x9b05_688c, 0x1f83_d9ab, 0x5be0_cd19,
    ]
    var message = bytes
    message.append(0x80)
    while message.count % 64 != 56 { message.append(0) }
    let bitLength = UInt64(bytes.count) * 8
    for shift in stride(from: 56, through: 0, by: -8) { message.append(UInt8(truncatingIfNeeded: bitLength >> shift)) }
    func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 - n)) }
    var w = [UInt32](repeating: 0, count: 64)
    for chunk in stride(from: 0, to: message.count, by: 64) {
        for i in 0..<16 {
            w[i] =
                UInt32(message[chunk + 4 * i]) << 24 | UInt32(message[chunk + 4 * i + 1]) << 16
                | UInt32(message[chunk + 4 * i + 2]) << 8 | UInt32(message[chunk + 4 * i + 3])
        }
        for i in 16..<64 {
            let s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3)
            let s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10)
            w[i] = w[i - 16] &+ s0 &+ w[i - 7] &+ s1
        }
        var (a, b, c, d, e, f, g, h) = (state[0], state[1], state[2], state[3], state[4], state[5], state[6], state[7])
        for i in 0..<64 {
            let s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)
            let choice = (e & f) ^ (~e & g)
            let t1 = h &+ s1 &+ choice &+ sha256RoundConstants[i] &+ w[i]
            let s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)
            let majority = (a & b) ^ (a & c) ^ (b & c)
            let t2 = s0 &+ majority
            (h, g, f, e, d, c, b, a) = (g, f, e, d &+ t1, c, b, a, t1 &+ t2)
        }
        for (i, value) in [a, b, c, d, e, f, g, h].enumerated() { state[i] = state[i] &+ value }
    }
    return state.map { word in
        let digits = String(word, radix: 16)
        return String(repeating: "0", count: 8 - digits.count) + digits
    }.joined()
}

private let sha256RoundConstants: [UInt32] = [
    0x428a_2f98, 0x7137_4491, 0xb5c0_fbcf, 0xe9b5_dba5, 0x3956_c25b, 0x59f1_11f1, 0x923f_82a4, 0xab1c_5ed5,
    0xd807_aa98, 0x1283_5b01, 0x2431_85be, 0x550c_7dc3, 0x72be_5d74, 0x80de_b1fe, 0x9bdc_06a7, 0xc19b_f174,
    0xe49b_69c1, 0xefbe_4786, 0x0fc1_9dc6, 0x240c_a1cc, 0x2de9_2c6f, 0x4a74_84aa, 0x5cb0_a9dc, 0x76f9_88da,
    0x983e_5152, 0xa831_c66d, 0xb003_27c8, 0xbf59_7fc7, 0xc6e0_0bf3, 0xd5a7_9147, 0x06ca_6351, 0x1429_2967,
    0x27b7_0a85, 0x2e1b_2138, 0x4d2c_6dfc, 0x5338_0d13, 0x650a_7354, 0x766a_0abb, 0x81c2_c92e, 0x9272_2c85,
    0xa2bf_e8a1, 0xa81a_664b, 0xc24b_8b70, 0xc76c_51a3, 0xd192_e819, 0xd699_0624, 0xf40e_3585, 0x106a_a070,
    0x19a4_c116, 0x1e37_6c08, 0x2748_774c, 0x34b0_bcb5, 0x391c_0cb3, 0x4ed8_aa4a, 0x5b9c_ca4f, 0x682e_6ff3,
    0x748f_82ee, 0x78a5_636f, 0x84c8_7814, 0x8cc7_0208, 0x90be_fffa, 0xa450_6ceb, 0xbef9_a3f7, 0xc671_78f2,
]
