import BpfmanImages
import Testing

@testable import BpfmanServer

@Suite struct DaemonConfigTests {
    @Test func emptyFileGivesSPECDefaults() throws {
        let config = try DaemonConfig.parse("", file: "/etc/bpfman/bpfman.toml")
        #expect(config == DaemonConfig())
        #expect(config.lockMaxRetries == 10)
        #expect(config.lockRetryDelayMilliseconds == 1000)
        #expect(config.verifySignatures && config.allowUnsigned)
        #expect(config.logLevel == .info && config.logFormat == .text && config.attachMode == .auto)
        #expect(config.xdpMode(for: "eth0") == .drv)
    }

    @Test func readsEveryKnownKey() throws {
        let config = try DaemonConfig.parse(
            """
            [interfaces.eth0]
            xdp_mode = "skb"
            [signing]
            verify_enabled = false
            allow_unsigned = false
            [[signing.trusted_identities]]
            certificate_identity = "dev@example.com"
            certificate_oidc_issuer_regexp = "https://.*"
            [database]
            max_retries = 3
            millisec_delay = 50
            [logging]
            level = "debug"
            format = "json"
            [engine]
            attach_mode = "native"
            [csi]
            pods_root = "/var/lib/kubelet/pods"
            """,
            file: "c.toml"
        )
        #expect(config.xdpMode(for: "eth0") == .skb)
        #expect(DaemonConfig.XDPMode.skb.flags == 2)
        #expect(!config.verifySignatures && !config.allowUnsigned)
        #expect(
            config.trustedIdentities == [.init(identity: .exact("dev@example.com"), issuer: .pattern("https://.*"))]
        )
        #expect(config.lockMaxRetries == 3 && config.lockRetryDelayMilliseconds == 50)
        #expect(config.logLevel == .debug && config.logFormat == .json && config.attachMode == .native)
        #expect(config.csiPodsRoot == "/var/lib/kubelet/pods")
        #expect(config.warnings.isEmpty)
    }

    @Test func unknownSectionsAndKeysAreWarningsNotErrors() throws {
        let config = try DaemonConfig.parse("[database]\nfoo = 1\n[operator]\nx = true\n", file: "c.toml")
        #expect(
            config.warnings == [
                "c.toml: line 2: unknown configuration key database.foo ignored",
                "c.toml: line 3: unknown configuration key operator ignored",
            ]
        )
    }

    static let badValues: [(String, String)] = [
        ("[database]\nmax_retries = \"ten\"", "c.toml: line 2: database.max_retries must be an integer, not a string"),
        ("[logging]\nlevel = \"loud\"", "c.toml: line 2: logging.level has invalid value \"loud\""),
        ("[signing]\nverify_enabled = 1", "c.toml: line 2: signing.verify_enabled must be a boolean"),
        ("[interfaces.eth0]\nxdp_mode = \"fast\"", "c.toml: line 2: interfaces.eth0.xdp_mode has invalid value"),
        ("[engine]\nattach_mode = 2", "c.toml: line 2: engine.attach_mode must be a string"),
        ("[database]\nmillisec_delay = -1", "c.toml: line 2: database.millisec_delay must be between"),
        ("logging = 3", "c.toml: line 1: logging must be a table"),
        ("[csi]\npods_root = \"pods\"", "c.toml: line 2: csi.pods_root must be an absolute path, got \"pods\""),
        ("[database\n", "c.toml: line 1: expected ]"),
        (
            "[[signing.trusted_identities]]\ncertificate_identity = \"a\"",
            "signing.trusted_identities entry 1 needs exactly one of certificate_oidc_issuer and "
                + "certificate_oidc_issuer_regexp"
        ),
        (
            """
            [[signing.trusted_identities]]
            certificate_identity = "a"
            certificate_oidc_issuer = "b"
            [[signing.trusted_identities]]
            certificate_identity_regexp = "(unclosed"
            certificate_oidc_issuer = "b"
            """,
            "signing.trusted_identities entry 2 has an invalid certificate_identity_regexp \"(unclosed\""
        ),
        (
            """
            [[signing.trusted_identities]]
            certificate_identity = "a"
            certificate_oidc_issuer_regexp = "https://[z-a]"
            """,
            "signing.trusted_identities entry 1 has an invalid certificate_oidc_issuer_regexp \"https://[z-a]\""
        ),
        (
            """
            [[signing.trusted_identities]]
            certificate_identity_regexp = ".*"
            certificate_oidc_issuer_regexp = ".*"
            [[signing.trusted_identities]]
            certificate_identity = "a"
            certificate_oidc_issuer = "b"
            """,
            "wildcard entry"
        ),
    ]

    @Test(arguments: badValues)
    func wronglyTypedKnownKeyIsAnErrorNamingFileLineAndKey(text: String, message: String) {
        #expect {
            try DaemonConfig.parse(text, file: "c.toml")
        } throws: { error in
            String(describing: error).contains(message)
        }
    }

    static let rustLog: [(String, DaemonConfig.LogLevel?)] = [
        ("info", .info), ("bpfman=debug,info", .info), ("debug,bpfman=trace", .debug), ("warn,error", .error),
        ("bpfman=debug", nil), ("", nil),
    ]

    @Test(arguments: rustLog)
    func rustLogLastBareLevelWins(value: String, expected: DaemonConfig.LogLevel?) {
        #expect(logLevel(fromRustLog: value) == expected)
    }
}
