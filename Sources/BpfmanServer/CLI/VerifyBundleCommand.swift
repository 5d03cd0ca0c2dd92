internal import ArgumentParser
internal import BpfmanImages
internal import FoundationEssentials
internal import Glibc

extension BpfmanCommand.ImageCommand {
    /// `bpfman image verify-bundle`: the verify subcommand of Sigstore's conformance CLI protocol (SPEC §8.5),
    /// offline. The verifier belongs to the image fetcher (BpfmanImageFetch, which this module does not import), so
    /// this command replaces itself with this same executable run as the fetcher, `bpfman-image verify-bundle` and
    /// the arguments: the exit status is that process's, 0 verified and 1 not.
    struct VerifyBundle: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "verify-bundle",
            abstract: "Verify a blob or a sha256 digest against a Sigstore bundle, offline."
        )
        @Option(help: "The Sigstore bundle (JSON).") var bundle: String
        @Option(name: .customLong("certificate-identity"), help: "The signer's identity (the certificate's SAN).")
        var certificateIdentity: String
        @Option(name: .customLong("certificate-oidc-issuer"), help: "The signer's OIDC issuer.")
        var certificateOIDCIssuer: String
        @Option(
            name: .customLong("trusted-root"),
            help: "trusted_root.json (default $SIGSTORE_ROOT_FILE, else <runtime dir>/tuf/trusted_root.json)."
        )
        var trustedRoot: String?
        @Option(
            name: .customLong("runtime-dir"),
            help: "The runtime directory (default $BPFMAN_RUNTIME_DIR, else /run/bpfman)."
        )
        var runtimeDirectory: String?
        @Argument(help: "The signed file, or sha256:<hex> of it.") var fileOrDigest: String

        func run() throws {
            let environment = ProcessInfo.processInfo.environment
            let runtime = runtimeDirectory ?? environment["BPFMAN_RUNTIME_DIR"] ?? ServeDefaults.runtimeDirectory
            let fetcher = ImageStore.fetcherPath(environment: environment)
            // Without --trusted-root the verifier looks for the trust material as the daemon does (SPEC §8.5),
            // fetching it through TUF when there is no file.
            let root = trustedRoot.map { ["--trusted-root", $0] } ?? ["--runtime-dir", runtime]
            let arguments =
                [
                    "bpfman-image", "verify-bundle", "--bundle", bundle, "--certificate-identity", certificateIdentity,
                    "--certificate-oidc-issuer", certificateOIDCIssuer,
                ] + root + [fileOrDigest]
            var argv = arguments.map { strdup($0) } + [nil]
            execv(fetcher, &argv)
            let reason = String(cString: strerror(errno))
            for pointer in argv { free(pointer) }
            throw ValidationError("cannot run the image verifier \(fetcher): \(reason)")
        }
    }
}
