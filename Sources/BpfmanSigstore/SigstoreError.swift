/// Why a Sigstore signature did not verify, or why the trust material cannot be used. The message is the reason
/// a user reads after `signature verification failed for <url>: ` (SPEC §8.5).
package struct SigstoreError: Error, Sendable, Equatable, CustomStringConvertible {
    package enum Kind: Sendable, Equatable {
        /// The signature, its certificate, its log entry or the signed payload is wrong or malformed.
        case invalid
        /// The trust root (`trusted_root.json`) is missing or unusable.
        case trustRoot
    }

    package var kind: Kind
    package var message: String

    package init(_ kind: Kind = .invalid, _ message: String) {
        self.kind = kind
        self.message = message
    }

    package var description: String { message }

    static func invalid(_ message: String) -> SigstoreError { SigstoreError(.invalid, message) }
}
