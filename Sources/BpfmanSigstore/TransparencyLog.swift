internal import BpfmanImages
internal import FoundationEssentials

// Rekor's side of a signature (SPEC §8.5): the entry's body must describe this very signature, and the log must
// vouch for the entry with a signed entry timestamp (SET) or an inclusion proof up to a signed checkpoint, signed
// by a log key of the trust root. Formats: Rekor's canonical entry bodies (hashedrekord and dsse, v0.0.1), RFC 6962
// Merkle trees, and the signed-note format of checkpoints.

extension LogEntry {
    /// Checks the entry against `material` and the trust root's logs: the body, the SET, and the inclusion proof
    /// with its checkpoint when there is one. A SET is required: it is what signs the integration time.
    /// - Returns: the entry's integration time, which the certificate must cover.
    func verify(for material: SignatureMaterial, logs: [TrustRoot.TransparencyLog]) throws(SigstoreError) -> Int64 {
        guard let log = logs.first(where: { $0.keyID == logID }) else {
            throw .invalid("the log entry comes from a transparency log not in the trust root (\(hex(logID)))")
        }
        guard integratedTime > 0 else {
            throw .invalid("the log entry has no integration time (timestamp authorities are not supported)")
        }
        guard log.validFor.contains(integratedTime) else {
            throw .invalid("the transparency log's key was not valid at the entry's integration time")
        }
        try checkBody(material)
        var vouched = false
        if let signedEntryTimestamp {
            // The SET signs the canonical JSON of the entry: keys sorted, no spaces.
            let canonical =
                #"{"body":"\#(base64Encoded(body))","integratedTime":\#(integratedTime),"#
                + #""logID":"\#(hex(logID))","logIndex":\#(logIndex)}"#
            guard log.key.verify(signature: signedEntryTimestamp, message: Array(canonical.utf8)) else {
                throw .invalid("the log entry's signed entry timestamp does not verify with the log's key")
            }
            vouched = true
        }
        if let inclusionProof {
            try inclusionProof.verify(leaf: body, key: log.key, requireCheckpoint: !vouched)
            vouched = true
        }
        guard vouched else {
            throw .invalid("the log entry has neither a signed entry timestamp nor an inclusion proof")
        }
        // An inclusion proof covers the body only: the integration time beside it is the bundle's word. Only the
        // SET signs the time, and the certificate's validity is checked against it (a signing key kept past its
        // certificate's ten minutes could otherwise be given any time).
        guard signedEntryTimestamp != nil else {
            throw .invalid(
                "the log entry's integration time is not signed (an inclusion proof without a signed entry "
                    + "timestamp; timestamp authorities are not supported)"
            )
        }
        return integratedTime
    }

    /// The body must record this signature, this certificate and this content's hash.
    private func checkBody(_ material: SignatureMaterial) throws(SigstoreError) {
        struct Hash: Decodable {
            var algorithm: String?
            var value: String?
        }
        struct Key: Decodable { var content: String? }
        struct Signature: Decodable {
            var content: String?
            var publicKey: Key?
            // dsse
            var signature: String?
            var verifier: String?
        }
        struct Data_: Decodable { var hash: Hash? }
        struct Spec: Decodable {
            var data: Data_?
            var signature: Signature?
            var payloadHash: Hash?
            var signatures: [Signature]?
        }
        struct Body: Decodable {
            var kind: String?
            var apiVersion: String?
            var spec: Spec?
        }
        let parsed: Body
        do { parsed = try JSONDecoder().decode(Body.self, from: Data(body)) } catch {
            throw .invalid("the log entry's body is not valid JSON")
        }
        func sameCertificate(_ encodedPEM: String?) throws(SigstoreError) -> Bool {
            guard let encodedPEM, let pem = base64Decoded(encodedPEM) else { return false }
            let certificates = try Certificate.pem(String(decoding: pem, as: UTF8.self), limit: 1)
            return certificates.first?.der == material.leaf.der
        }
        switch (material.content, parsed.kind) {
        case (_, "hashedrekord"):
            // A message's hash, or for a DSSE envelope logged as hashedrekord (the client spec allows it) the hash of
            // PAE(type, payload): the bytes the signature covers.
            guard parsed.apiVersion == "0.0.1", let spec = parsed.spec else {
                throw .invalid("the log entry is hashedrekord \(parsed.apiVersion ?? "?"), not 0.0.1")
            }
            let signed: [UInt8] =
                switch material.content {
                case .message(_, let digest, _): digest
                case .dsse(let payloadType, let payload, _): sha256(preAuthenticationEncoding(payloadType, payload))
                }
            guard spec.data?.hash?.algorithm == "sha256", spec.data?.hash?.value == hex(signed) else {
                throw .invalid("the log entry records another artifact hash than the one signed")
            }
            guard spec.signature?.content.flatMap(base64Decoded) == material.content.signature else {
                throw .invalid("the log entry records another signature")
            }
            guard try sameCertificate(spec.signature?.publicKey?.content) else {
                throw .invalid("the log entry records another certificate")
            }
        case (.dsse(_, let payload, let signature), "dsse"):
            guard parsed.apiVersion == "0.0.1", let spec = parsed.spec else {
                throw .invalid("the log entry is dsse \(parsed.apiVersion ?? "?"), not 0.0.1")
            }
            guard spec.payloadHash?.algorithm == "sha256", spec.payloadHash?.value == hex(sha256(payload)) else {
                throw .invalid("the log entry records another DSSE payload")
            }
            var found = false
            for entry in spec.signatures ?? [] where entry.signature.flatMap(base64Decoded) == signature {
                if try sameCertificate(entry.verifier) { found = true }
            }
            guard found else { throw .invalid("the log entry records another signature or certificate") }
        case (_, let kind):
            throw .invalid("unsupported transparency-log entry kind \(kind ?? "(none)") for this signature")
        }
    }
}

extension InclusionProof {
    /// Recomputes the Merkle root from the leaf and the proof's hashes (RFC 9162 §2.1.3.2) and checks the signed
    /// checkpoint that names that root.
    func verify(leaf: [UInt8], key: PublicKey, requireCheckpoint: Bool) throws(SigstoreError) {
        guard treeSize > 0, logIndex >= 0, logIndex < treeSize, hashes.allSatisfy({ $0.count == 32 }),
            rootHash.count == 32
        else { throw .invalid("the inclusion proof is malformed (index \(logIndex), size \(treeSize))") }
        var fn = logIndex
        var sn = treeSize - 1
        var hash = sha256([0] + leaf)
        for sibling in hashes {
            guard sn != 0 else { throw .invalid("the inclusion proof has too many hashes") }
            if fn & 1 == 1 || fn == sn {
                hash = sha256([1] + sibling + hash)
                while fn & 1 == 0 && fn != 0 {
                    fn >>= 1
                    sn >>= 1
                }
            } else {
                hash = sha256([1] + hash + sibling)
            }
            fn >>= 1
            sn >>= 1
        }
        guard sn == 0, hash == rootHash else {
            throw .invalid("the inclusion proof does not lead to the log's root hash")
        }
        guard let checkpoint else {
            if requireCheckpoint { throw .invalid("the inclusion proof has no signed checkpoint") }
            return
        }
        try verifyCheckpoint(checkpoint, key: key)
    }

    /// A checkpoint is a signed note: `origin\nsize\nbase64(root)\n[extensions]\n\n— name base64(hint‖sig)\n…`.
    private func verifyCheckpoint(_ note: String, key: PublicKey) throws(SigstoreError) {
        let bytes = Array(note.utf8)
        guard bytes.count <= 1 << 16, let split = findBlankLine(bytes) else {
            throw .invalid("the checkpoint is not a signed note")
        }
        let text = Array(bytes[...split])  // up to and including the first newline of the blank line
        let lines = String(decoding: text, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.count >= 4, Int64(lines[1]) == treeSize, base64Decoded(String(lines[2])) == rootHash else {
            throw .invalid("the checkpoint does not name the inclusion proof's tree size and root hash")
        }
        let signatureLines = String(decoding: bytes[(split + 2)...], as: UTF8.self).split(separator: "\n")
        for line in signatureLines where line.hasPrefix("\u{2014} ") {
            guard let encoded = line.split(separator: " ").last, let blob = base64Decoded(String(encoded)),
                blob.count > 4
            else { continue }
            if key.verify(signature: Array(blob.dropFirst(4)), message: text) { return }
        }
        throw .invalid("the checkpoint's signature does not verify with the log's key")
    }
}

/// The index of the first `\n` of the first `\n\n` in `bytes`.
private func findBlankLine(_ bytes: [UInt8]) -> Int? {
    guard bytes.count >= 2 else { return nil }
    for index in 0..<(bytes.count - 1) where bytes[index] == 0x0a && bytes[index + 1] == 0x0a { return index }
    return nil
}
