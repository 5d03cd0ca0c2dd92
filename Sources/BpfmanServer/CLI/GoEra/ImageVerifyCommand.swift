internal import ArgumentParser
internal import BpfmanImages
internal import FoundationEssentials
internal import Glibc
internal import H2Transport
internal import Proto

extension BpfmanCommand.ImageCommand {
    /// `bpfman image verify <image>` (Go era): checks the image's signature under the configured signing policy
    /// with verification forced on (SPEC §8.5), the flags replacing the policy's parts they name. The image is
    /// pulled into a scratch cache removed afterwards, so the node's image cache is not touched.
    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Verify an OCI image signature.",
            discussion: """
                Examples:
                  bpfman image verify quay.io/bpfman-bytecode/xdp_pass:latest
                  bpfman image verify quay.io/bpfman-bytecode/xdp_pass:latest --certificate-identity signer@example.com --certificate-oidc-issuer https://github.com/login/oauth
                """
        )
        @Argument(help: "OCI image reference (e.g., quay.io/bpfman-bytecode/xdp_pass:latest).") var image: String
        @Flag(
            name: .customLong("allow-unsigned"),
            inversion: .prefixedNo,
            help: "Allow unsigned images (overrides config file)."
        )
        var allowUnsigned: Bool?
        @Option(name: .customLong("certificate-identity"), help: "Expected signing certificate identity.")
        var certificateIdentity: String?
        @Option(name: .customLong("certificate-oidc-issuer"), help: "Expected signing certificate OIDC issuer.")
        var certificateOIDCIssuer: String?
        @Option(name: .customLong("certificate-identity-regexp"), help: "Expected signing certificate identity regexp.")
        var certificateIdentityRegexp: String?
        @Option(
            name: .customLong("certificate-oidc-issuer-regexp"),
            help: "Expected signing certificate OIDC issuer regexp."
        )
        var certificateOIDCIssuerRegexp: String?
        @Option(name: .customLong("registry-auth"), help: "BASE64(user:password) (default $BPFMAN_REGISTRY_AUTH).")
        var registryAuth: String?
        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            if certificateIdentity != nil && certificateIdentityRegexp != nil {
                throw ClientError(
                    plain: "--certificate-identity and --certificate-identity-regexp are mutually exclusive"
                )
            }
            if certificateOIDCIssuer != nil && certificateOIDCIssuerRegexp != nil {
                throw ClientError(
                    plain: "--certificate-oidc-issuer and --certificate-oidc-issuer-regexp are mutually exclusive"
                )
            }
            let request = try bytecodeImage(
                image,
                "Always",
                registryAuth ?? ProcessInfo.processInfo.environment["BPFMAN_REGISTRY_AUTH"]
            )
            var policy = try imageConfig(connection).signingPolicy
            policy.verifyEnabled = true
            if let allowUnsigned { policy.allowUnsigned = allowUnsigned }
            let identity =
                certificateIdentity.map(TrustedIdentity.Matcher.exact)
                ?? certificateIdentityRegexp.map(TrustedIdentity.Matcher.pattern)
            let issuer =
                certificateOIDCIssuer.map(TrustedIdentity.Matcher.exact)
                ?? certificateOIDCIssuerRegexp.map(TrustedIdentity.Matcher.pattern)
            if identity != nil || issuer != nil {
                policy.trustedIdentities = [
                    TrustedIdentity(identity: identity ?? .pattern(".*"), issuer: issuer ?? .pattern(".*"))
                ]
            }
            for matcher in [identity, issuer].compactMap({ $0 }) {
                if let problem = matcher.problem { throw ClientError(plain: "invalid regular expression: \(problem)") }
            }
            var template = Array("/tmp/bpfman-verify-XXXXXX".utf8CString)
            guard
                let scratch = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }).map({
                    String(cString: $0)
                })
            else { throw ClientError(plain: "cannot make a scratch directory: \(String(cString: strerror(errno)))") }
            defer { try? FileManager.default.removeItem(atPath: scratch) }
            do {
                let store = try imageStore(connection, signing: policy, directory: scratch + "/cache")
                let cached = try await store.resolve(
                    url: request.url,
                    policy: PullPolicy.always,
                    username: request.username.isEmpty ? nil : request.username,
                    password: request.password.isEmpty ? nil : request.password
                )
                if cached.verifiedDigest != nil {
                    emit("Image \(image): signature verified")
                } else {
                    emit("Image \(image): unsigned image accepted by policy")
                }
            } catch {
                throw ClientError(plain: "verification failed: \(error.grpcStatus.message)", code: .unknown)
            }
        }
    }
}
