internal import COpenSSL
internal import FoundationEssentials
internal import Glibc

// The parts of libcrypto this module uses, each wrapped once: X.509 certificates, public keys and their signature
// checks, chain verification against a set of roots, SHA-256. libcrypto is opened with dlopen by the first
// `loadLibcrypto()` (COpenSSL); every entry point of this module calls it before touching libcrypto. libcrypto's
// conventions: functions return 1 on success (anything else is a failure, with the reason on the thread's error
// queue) and NULL for a failed allocation or parse. Every owner below frees its C object in deinit.

/// COpenSSL's table of libcrypto functions: written once by `copenssl_load`, only read afterwards, so threads may
/// share it.
private struct LibcryptoTable: @unchecked Sendable {
    let pointer: UnsafePointer<copenssl_api>
}

/// libcrypto's function table, or why it cannot be loaded. Resolved once, on first use (a global is lazy).
private let libcryptoLoad: Result<LibcryptoTable, SigstoreError> = {
    var error: UnsafePointer<CChar>?
    guard let table = copenssl_load(&error) else {
        return .failure(.invalid("libcrypto is unavailable: \(error.map { String(cString: $0) } ?? "dlopen failed")"))
    }
    return .success(LibcryptoTable(pointer: table))
}()

/// The table, for the helpers of COpenSSL.
private var api: UnsafePointer<copenssl_api> {
    guard case .success(let table) = libcryptoLoad else { preconditionFailure("libcrypto used before loadLibcrypto()") }
    return table.pointer
}

/// libcrypto's functions; only after `loadLibcrypto()` succeeded.
private var libcrypto: copenssl_api { api.pointee }

/// Loads libcrypto (once).
/// - Throws: `SigstoreError.invalid` naming why it cannot be loaded.
package func loadLibcrypto() throws(SigstoreError) {
    _ = try libcryptoLoad.get()
}

/// The most recent libcrypto error on this thread, as text (the queue is emptied).
func libcryptoError() -> String {
    var buffer = [CChar](repeating: 0, count: 256)
    copenssl_last_error(api, &buffer, buffer.count)
    let text = buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    return text.isEmpty ? "unknown libcrypto error" : text
}

/// SHA-256 of `bytes`. The corresponding C function is `EVP_Digest`.
/// - Important: call `loadLibcrypto()` first (every initializer of this module's types does).
package func sha256(_ bytes: [UInt8]) -> [UInt8] {
    var digest = [UInt8](repeating: 0, count: 32)
    var length: UInt32 = 0
    let ok = bytes.withUnsafeBytes { input in
        libcrypto.EVP_Digest(input.baseAddress, input.count, &digest, &length, libcrypto.EVP_sha256(), nil)
    }
    precondition(ok == 1 && length == 32, "EVP_Digest(SHA-256) failed: \(libcryptoError())")
    return digest
}

/// Standard base64 (with padding) decoded strictly: nil for any other character or a bad length.
package func base64Decoded(_ text: String) -> [UInt8]? {
    guard let data = Data(base64Encoded: text) else { return nil }
    return Array(data)
}

package func base64Encoded(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }

/// A public key (`EVP_PKEY`): ECDSA P-256/P-384/P-521, Ed25519 or RSA.
package final class PublicKey {
    let pointer: OpaquePointer

    /// Takes ownership of `pointer`.
    init(owning pointer: OpaquePointer) { self.pointer = pointer }

    /// A DER SubjectPublicKeyInfo, as `trusted_root.json` holds Rekor's keys. The corresponding C function is
    /// `d2i_PUBKEY`.
    package convenience init(subjectPublicKeyInfo der: [UInt8]) throws(SigstoreError) {
        try loadLibcrypto()
        let key: OpaquePointer? = der.withUnsafeBufferPointer { buffer in
            var cursor: UnsafePointer<UInt8>? = buffer.baseAddress
            let key = libcrypto.d2i_PUBKEY(nil, &cursor, buffer.count)
            // Trailing bytes after the key mean it is not one DER structure.
            if let key, cursor != buffer.baseAddress.map({ $0 + buffer.count }) {
                libcrypto.EVP_PKEY_free(key)
                return nil
            }
            return key
        }
        guard let key else { throw .invalid("not a DER public key: \(libcryptoError())") }
        self.init(owning: key)
    }

    deinit { libcrypto.EVP_PKEY_free(pointer) }

    /// The digest a signature by this key is made over: SHA-256 for P-256 and RSA, SHA-384 for P-384, SHA-512 for
    /// P-521, none for Ed25519 (which hashes internally).
    private var digest: OpaquePointer?? {
        switch libcrypto.EVP_PKEY_get_base_id(pointer) {
        case EVP_PKEY_EC:
            switch libcrypto.EVP_PKEY_get_bits(pointer) {
            case 256: return .some(libcrypto.EVP_sha256())
            case 384: return .some(libcrypto.EVP_sha384())
            case 521: return .some(libcrypto.EVP_sha512())
            default: return nil
            }
        case EVP_PKEY_ED25519: return .some(nil)
        case EVP_PKEY_RSA, EVP_PKEY_RSA_PSS: return .some(libcrypto.EVP_sha256())
        default: return nil
        }
    }

    /// Whether `signature` is this key's signature of `message`. The corresponding C function is
    /// `EVP_DigestVerify`.
    package func verify(signature: [UInt8], message: [UInt8]) -> Bool {
        guard let digest, let context = libcrypto.EVP_MD_CTX_new() else { return false }
        defer { libcrypto.EVP_MD_CTX_free(context) }
        guard libcrypto.EVP_DigestVerifyInit(context, nil, digest, nil, pointer) == 1 else {
            libcrypto.ERR_clear_error()
            return false
        }
        let result = signature.withUnsafeBufferPointer { sig in
            message.withUnsafeBufferPointer { msg in
                libcrypto.EVP_DigestVerify(context, sig.baseAddress, sig.count, msg.baseAddress, msg.count)
            }
        }
        libcrypto.ERR_clear_error()
        return result == 1
    }

    /// Whether `signature` is this key's signature of a message whose SHA-256 is `sha256Digest` (a Sigstore bundle
    /// over a blob given only by its digest). Ed25519 cannot verify a prehash. The corresponding C function is
    /// `EVP_PKEY_verify`.
    package func verify(signature: [UInt8], sha256Digest: [UInt8]) -> Bool {
        guard libcrypto.EVP_PKEY_get_base_id(pointer) != EVP_PKEY_ED25519,
            let context = libcrypto.EVP_PKEY_CTX_new(pointer, nil)
        else {
            return false
        }
        defer { libcrypto.EVP_PKEY_CTX_free(context) }
        guard libcrypto.EVP_PKEY_verify_init(context) == 1,
            libcrypto.EVP_PKEY_CTX_set_signature_md(context, libcrypto.EVP_sha256()) == 1
        else {
            libcrypto.ERR_clear_error()
            return false
        }
        let result = signature.withUnsafeBufferPointer { sig in
            sha256Digest.withUnsafeBufferPointer { digest in
                libcrypto.EVP_PKEY_verify(context, sig.baseAddress, sig.count, digest.baseAddress, digest.count)
            }
        }
        libcrypto.ERR_clear_error()
        return result == 1
    }
}

/// An X.509 certificate (`X509`).
package final class Certificate {
    let pointer: OpaquePointer
    /// The certificate's DER bytes, as parsed.
    package let der: [UInt8]

    /// Parses one DER certificate; trailing bytes are refused. The corresponding C function is `d2i_X509`.
    package init(der: [UInt8]) throws(SigstoreError) {
        try loadLibcrypto()
        let parsed: OpaquePointer? = der.withUnsafeBufferPointer { buffer in
            var cursor: UnsafePointer<UInt8>? = buffer.baseAddress
            let certificate = libcrypto.d2i_X509(nil, &cursor, buffer.count)
            if let certificate, cursor != buffer.baseAddress.map({ $0 + buffer.count }) {
                libcrypto.X509_free(certificate)
                return nil
            }
            return certificate
        }
        guard let parsed else { throw .invalid("not a DER X.509 certificate: \(libcryptoError())") }
        pointer = parsed
        self.der = der
    }

    deinit { libcrypto.X509_free(pointer) }

    /// The certificates of PEM text (`-----BEGIN CERTIFICATE-----` blocks), at most `limit` of them.
    package static func pem(_ text: String, limit: Int) throws(SigstoreError) -> [Certificate] {
        let begin = "-----BEGIN CERTIFICATE-----"
        let end = "-----END CERTIFICATE-----"
        var certificates: [Certificate] = []
        var rest = Substring(text)
        while let start = rest.firstRange(of: begin) {
            guard let stop = rest[start.upperBound...].firstRange(of: end) else {
                throw .invalid("a PEM certificate block has no END line")
            }
            guard certificates.count < limit else {
                throw .invalid("the certificate chain has more than \(limit) certificates")
            }
            let body = rest[start.upperBound..<stop.lowerBound].filter { !$0.isWhitespace }
            guard let der = base64Decoded(String(body)) else {
                throw .invalid("a PEM certificate block is not valid base64")
            }
            certificates.append(try Certificate(der: der))
            rest = rest[stop.upperBound...]
        }
        return certificates
    }

    /// Seconds since the epoch of notBefore and notAfter.
    package var validity: (notBefore: Int64, notAfter: Int64) {
        (
            Int64(copenssl_asn1_time_seconds(api, libcrypto.X509_get0_notBefore(pointer))),
            Int64(copenssl_asn1_time_seconds(api, libcrypto.X509_get0_notAfter(pointer)))
        )
    }

    /// The subject public key. The corresponding C function is `X509_get_pubkey`.
    package func publicKey() throws(SigstoreError) -> PublicKey {
        guard let key = libcrypto.X509_get_pubkey(pointer) else {
            throw .invalid("the certificate's public key cannot be read: \(libcryptoError())")
        }
        return PublicKey(owning: key)
    }

    /// The subjectAltName entries that name a signer: e-mail addresses, URIs and UTF8String otherNames, in order.
    package func signerNames() throws(SigstoreError) -> [String] {
        var names: OpaquePointer?
        let count = copenssl_subject_alt_names(api, pointer, &names)
        guard count >= 0 else { throw .invalid("the certificate's subjectAltName extension is malformed") }
        guard let names else { return [] }
        defer { libcrypto.GENERAL_NAMES_free(names) }
        var result: [String] = []
        for index in 0..<count {
            var value: UnsafePointer<UInt8>?
            var length: CInt = 0
            let type = copenssl_general_name(api, names, index, &value, &length)
            guard type == GEN_EMAIL || type == GEN_URI || type == GEN_OTHERNAME, let value, length > 0 else {
                continue
            }
            result.append(String(decoding: UnsafeBufferPointer(start: value, count: Int(length)), as: UTF8.self))
        }
        return result
    }

    /// The value (the extnValue OCTET STRING's contents) of the extension `oid`, or nil without one.
    package func extensionValue(_ oid: String) -> [UInt8]? {
        var length: CInt = 0
        guard let value = copenssl_extension_value(api, pointer, oid, &length) else { return nil }
        return Array(UnsafeBufferPointer(start: value, count: Int(length)))
    }

    /// Whether the extended key usage includes code signing (Fulcio's leaves carry it).
    package var allowsCodeSigning: Bool { copenssl_has_code_signing_usage(api, pointer) == 1 }
}

/// Verifies that `leaf` chains through `intermediates` to one of `roots`, with every certificate valid at `time`
/// and no unknown critical extension; at most `maxDepth` certificates below the root. The corresponding C
/// function is `X509_verify_cert`.
/// - Throws: `SigstoreError.invalid` with libcrypto's reason.
package func verifyChain(
    leaf: Certificate,
    intermediates: [Certificate],
    roots: [Certificate],
    time: Int64,
    maxDepth: Int = 8
) throws(SigstoreError) {
    guard let store = libcrypto.X509_STORE_new() else { throw .invalid("out of memory") }
    defer { libcrypto.X509_STORE_free(store) }
    for root in roots where libcrypto.X509_STORE_add_cert(store, root.pointer) != 1 {
        throw .invalid("cannot use a trusted root: \(libcryptoError())")
    }
    guard let untrusted = libcrypto.OPENSSL_sk_new_null() else { throw .invalid("out of memory") }
    defer { libcrypto.OPENSSL_sk_free(untrusted) }
    for certificate in intermediates
    where libcrypto.OPENSSL_sk_push(untrusted, UnsafeRawPointer(certificate.pointer)) == 0 {
        throw .invalid("out of memory")
    }
    guard let context = libcrypto.X509_STORE_CTX_new() else { throw .invalid("out of memory") }
    defer { libcrypto.X509_STORE_CTX_free(context) }
    guard libcrypto.X509_STORE_CTX_init(context, store, leaf.pointer, untrusted) == 1 else {
        throw .invalid("cannot set up chain verification: \(libcryptoError())")
    }
    let parameters = libcrypto.X509_STORE_CTX_get0_param(context)
    libcrypto.X509_VERIFY_PARAM_set_time(parameters, time_t(time))
    libcrypto.X509_VERIFY_PARAM_set_depth(parameters, CInt(maxDepth))
    // The roots (and intermediates) verify with their own time checks; the leaf's purpose is checked by the
    // caller (code signing), since Fulcio's CA certificates carry no purpose OpenSSL knows.
    let result = libcrypto.X509_verify_cert(context)
    let code = libcrypto.X509_STORE_CTX_get_error(context)
    // The context holds a reference to the leaf and the stack while it lives; nothing escapes.
    libcrypto.ERR_clear_error()
    guard result == 1 else {
        throw .invalid(
            "certificate chain: \(libcrypto.X509_verify_cert_error_string(Int(code)).map { String(cString: $0) } ?? "error \(code)")"
        )
    }
}
