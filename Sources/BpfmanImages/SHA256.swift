internal import Crypto

/// An incremental SHA-256 (swift-crypto): every image blob is checked with one (SPEC §8.1), and cache entries
/// are named by one. swift-crypto is compiled into the executables, so the daemon loads no crypto library.
package struct SHA256Hasher {
    private var hasher = SHA256()

    package init() {}

    package mutating func update(_ bytes: UnsafeRawBufferPointer) {
        hasher.update(bufferPointer: bytes)
    }

    /// `sha256:<64 lower-case hex>`.
    package func finish() -> String {
        "sha256:" + hex(hasher.finalize())
    }

    /// The digest of `bytes` in one call.
    package static func digest(_ bytes: [UInt8]) -> String {
        "sha256:" + hex(SHA256.hash(data: bytes))
    }
}

/// Lower-case hex of `bytes`.
package func hex(_ bytes: some Sequence<UInt8>) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    for byte in bytes {
        out.append(digits[Int(byte >> 4)])
        out.append(digits[Int(byte & 15)])
    }
    return String(decoding: out, as: UTF8.self)
}
