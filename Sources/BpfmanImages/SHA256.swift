internal import CLazyCrypto

/// An incremental SHA-256 over libcrypto's EVP interface, loaded on first use (CLazyCrypto): every image blob is
/// checked with one (SPEC §8.1), and cache entries are named by one (SPEC §8.3).
package struct SHA256Hasher: ~Copyable {
    private let api: UnsafePointer<clazycrypto_api>
    private let context: UnsafeMutableRawPointer

    /// - Throws: `ImageError.internal` when libcrypto cannot be loaded.
    package init() throws(ImageError) {
        var error: UnsafePointer<CChar>?
        guard let api = clazycrypto_load(&error), let context = api.pointee.md_ctx_new() else {
            throw .internal("SHA-256 is unavailable: \(error.map { String(cString: $0) } ?? "EVP_MD_CTX_new failed")")
        }
        guard api.pointee.digest_init(context, api.pointee.sha256(), nil) == 1 else {
            api.pointee.md_ctx_free(context)
            throw .internal("SHA-256 is unavailable: EVP_DigestInit_ex failed")
        }
        self.api = api
        self.context = context
    }

    deinit { api.pointee.md_ctx_free(context) }

    package mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        _ = api.pointee.digest_update(context, base, bytes.count)
    }

    /// `sha256:<64 lower-case hex>`; the hasher cannot be used afterwards.
    package consuming func finish() -> String {
        var digest = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        _ = api.pointee.digest_final(context, &digest, &length)
        return "sha256:" + hex(digest)
    }

    /// The digest of `bytes` in one call.
    package static func digest(_ bytes: [UInt8]) throws(ImageError) -> String {
        var hasher = try SHA256Hasher()
        bytes.withUnsafeBytes { hasher.update($0) }
        return hasher.finish()
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
