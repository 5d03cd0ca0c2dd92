internal import FoundationEssentials

/// Sigstore's trust root (`trusted_root.json`, media type `application/vnd.dev.sigstore.trustedroot+json`): the
/// Fulcio certificate authorities and the Rekor transparency-log keys, each with the time range it may be used
/// for. Certificate-transparency logs and timestamp authorities are read past (SPEC §8.5 does not use them).
package struct TrustRoot {
    package struct Authority {
        /// The CA's certificates, the issuing one first and the self-signed root last.
        package var chain: [Certificate]
        package var validFor: ClosedRange<Int64>
    }

    package struct TransparencyLog {
        /// The log's id: the SHA-256 of its key's DER SubjectPublicKeyInfo.
        package var keyID: [UInt8]
        package var key: PublicKey
        package var validFor: ClosedRange<Int64>
    }

    package var authorities: [Authority]
    package var logs: [TransparencyLog]

    /// Parses the JSON text of a trust root.
    /// - Throws: `SigstoreError.trustRoot` naming what is wrong.
    package init(json: [UInt8]) throws(SigstoreError) {
        struct Range: Decodable {
            var start: String?
            var end: String?
        }
        struct RawBytes: Decodable { var rawBytes: String }
        struct Key: Decodable {
            var rawBytes: String?
            var keyDetails: String?
            var validFor: Range?
        }
        struct LogID: Decodable { var keyId: String }
        struct Log: Decodable {
            var baseUrl: String?
            var publicKey: Key
            var logId: LogID
        }
        struct Chain: Decodable { var certificates: [RawBytes] }
        struct CA: Decodable {
            var certChain: Chain
            var validFor: Range?
        }
        struct Document: Decodable {
            var mediaType: String?
            var tlogs: [Log]?
            var certificateAuthorities: [CA]?
        }
        func failed(_ reason: String) -> SigstoreError { SigstoreError(.trustRoot, reason) }
        do { try loadLibcrypto() } catch { throw failed(error.message) }
        let document: Document
        do { document = try JSONDecoder().decode(Document.self, from: Data(json)) } catch {
            throw failed("trusted_root.json is not a Sigstore trust root: \(error)")
        }
        if let type = document.mediaType, !type.hasPrefix("application/vnd.dev.sigstore.trustedroot") {
            throw failed("trusted_root.json has media type \(type), not a Sigstore trust root")
        }
        func range(_ range: Range?, what: String) throws(SigstoreError) -> ClosedRange<Int64> {
            guard let start = range?.start else { throw failed("\(what) has no validFor.start") }
            guard let from = rfc3339Seconds(start) else { throw failed("\(what) has an invalid time \(start)") }
            guard let end = range?.end else { return from...Int64.max }
            guard let to = rfc3339Seconds(end), to >= from else { throw failed("\(what) has an invalid time \(end)") }
            return from...to
        }
        var authorities: [Authority] = []
        for (index, ca) in (document.certificateAuthorities ?? []).enumerated() {
            let what = "certificate authority \(index + 1)"
            guard !ca.certChain.certificates.isEmpty, ca.certChain.certificates.count <= 10 else {
                throw failed("\(what) has \(ca.certChain.certificates.count) certificates (1 to 10 expected)")
            }
            var chain: [Certificate] = []
            for certificate in ca.certChain.certificates {
                guard let der = base64Decoded(certificate.rawBytes) else { throw failed("\(what): invalid base64") }
                do { chain.append(try Certificate(der: der)) } catch { throw failed("\(what): \(error.message)") }
            }
            authorities.append(Authority(chain: chain, validFor: try range(ca.validFor, what: what)))
        }
        var logs: [TransparencyLog] = []
        for (index, log) in (document.tlogs ?? []).enumerated() {
            let what = "transparency log \(index + 1)"
            guard let raw = log.publicKey.rawBytes, let der = base64Decoded(raw),
                let keyID = base64Decoded(log.logId.keyId)
            else { throw failed("\(what): missing or invalid key") }
            let key: PublicKey
            do { key = try PublicKey(subjectPublicKeyInfo: der) } catch { throw failed("\(what): \(error.message)") }
            logs.append(
                TransparencyLog(keyID: keyID, key: key, validFor: try range(log.publicKey.validFor, what: what))
            )
        }
        guard !authorities.isEmpty else { throw failed("trusted_root.json names no certificate authority") }
        guard !logs.isEmpty else { throw failed("trusted_root.json names no transparency log") }
        self.authorities = authorities
        self.logs = logs
    }
}

/// Seconds since the epoch of an RFC 3339 time (`2021-03-07T03:20:29Z`, fractions and offsets allowed), or nil.
package func rfc3339Seconds(_ text: String) -> Int64? {
    let bytes = Array(text.utf8)
    func number(_ from: Int, _ count: Int) -> Int? {
        guard from + count <= bytes.count else { return nil }
        var value = 0
        for byte in bytes[from..<from + count] {
            guard byte >= 0x30 && byte <= 0x39 else { return nil }
            value = value * 10 + Int(byte - 0x30)
        }
        return value
    }
    guard bytes.count >= 20, let year = number(0, 4), bytes[4] == 0x2d, let month = number(5, 2), bytes[7] == 0x2d,
        let day = number(8, 2), bytes[10] == 0x54 || bytes[10] == 0x74, let hour = number(11, 2), bytes[13] == 0x3a,
        let minute = number(14, 2), bytes[16] == 0x3a, let second = number(17, 2),
        (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61
    else { return nil }
    var index = 19
    if index < bytes.count, bytes[index] == 0x2e {
        index += 1
        while index < bytes.count, bytes[index] >= 0x30 && bytes[index] <= 0x39 { index += 1 }
    }
    var offset = 0
    if index < bytes.count, bytes[index] == 0x5a || bytes[index] == 0x7a {
        index += 1
    } else if index + 6 == bytes.count, bytes[index] == 0x2b || bytes[index] == 0x2d, let h = number(index + 1, 2),
        bytes[index + 3] == 0x3a, let m = number(index + 4, 2)
    {
        offset = (h * 3600 + m * 60) * (bytes[index] == 0x2b ? 1 : -1)
        index += 6
    } else {
        return nil
    }
    guard index == bytes.count else { return nil }
    let seconds = daysSinceEpoch(year: year, month: month, day: day) * 86400 + hour * 3600 + minute * 60 + second
    return Int64(seconds - offset)
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (the civil-from-days inverse, counted in
/// 400-year eras of 146097 days from 0000-03-01).
private func daysSinceEpoch(year: Int, month: Int, day: Int) -> Int {
    let y = month <= 2 ? year - 1 : year
    let era = (y >= 0 ? y : y - 399) / 400
    let yearOfEra = y - era * 400
    let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
    let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
    return era * 146097 + dayOfEra - 719468
}
