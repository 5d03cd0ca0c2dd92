/// One `[[signing.trusted_identities]]` entry (SPEC §1.8): who may have signed an image. Exactly one identity
/// matcher (the certificate's SAN) and exactly one issuer matcher (its OIDC issuer extension); a pattern is a
/// regular expression anchored at both ends.
package struct TrustedIdentity: Sendable, Hashable, Codable {
    package enum Matcher: Sendable, Hashable {
        case exact(String)
        /// A regular expression that must match the whole value.
        case pattern(String)

        /// Whether `value` is matched. A pattern that does not compile matches nothing (start-up refuses those).
        package func matches(_ value: String) -> Bool {
            switch self {
            case .exact(let expected): return value == expected
            case .pattern(let pattern):
                guard let regex = try? Regex(pattern) else { return false }
                return (try? regex.wholeMatch(in: value)) != nil
            }
        }

        /// Why the pattern is not a usable regular expression, or nil.
        package var problem: String? {
            guard case .pattern(let pattern) = self else { return nil }
            do {
                _ = try Regex(pattern)
                return nil
            } catch {
                return "\(error)"
            }
        }

        /// A pattern that matches everything: `.*`, `.+` and their anchored spellings.
        package var isWildcard: Bool {
            guard case .pattern(let p) = self else { return false }
            return [".*", "^.*$", ".+", "^.+$", "(.*)"].contains(p)
        }

        /// `exact:<value>` or `regexp:<pattern>`, for messages and the canonical order of a policy.
        package var text: String {
            switch self {
            case .exact(let value): "exact:" + value
            case .pattern(let value): "regexp:" + value
            }
        }
    }

    package var identity: Matcher
    package var issuer: Matcher

    package init(identity: Matcher, issuer: Matcher) {
        self.identity = identity
        self.issuer = issuer
    }

    package func matches(identity: String, issuer: String) -> Bool {
        self.identity.matches(identity) && self.issuer.matches(issuer)
    }

    /// `identity=<matcher> issuer=<matcher>`.
    package var text: String { "identity=\(identity.text) issuer=\(issuer.text)" }

    /// The configuration file's keys, so a cache entry's `metadata.json` reads as the config does.
    enum CodingKeys: String, CodingKey {
        case certificateIdentity = "certificate_identity"
        case certificateIdentityRegexp = "certificate_identity_regexp"
        case certificateOIDCIssuer = "certificate_oidc_issuer"
        case certificateOIDCIssuerRegexp = "certificate_oidc_issuer_regexp"
    }

    package init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        func matcher(_ exact: CodingKeys, _ pattern: CodingKeys) throws -> Matcher {
            if let value = try container.decodeIfPresent(String.self, forKey: exact) { return .exact(value) }
            return .pattern(try container.decode(String.self, forKey: pattern))
        }
        identity = try matcher(.certificateIdentity, .certificateIdentityRegexp)
        issuer = try matcher(.certificateOIDCIssuer, .certificateOIDCIssuerRegexp)
    }

    package func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch identity {
        case .exact(let value): try container.encode(value, forKey: .certificateIdentity)
        case .pattern(let value): try container.encode(value, forKey: .certificateIdentityRegexp)
        }
        switch issuer {
        case .exact(let value): try container.encode(value, forKey: .certificateOIDCIssuer)
        case .pattern(let value): try container.encode(value, forKey: .certificateOIDCIssuerRegexp)
        }
    }
}
