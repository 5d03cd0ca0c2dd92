package import BpfmanImages

/// The daemon's configuration file, `/etc/bpfman/bpfman.toml` (SPEC §1.8), as typed values.
///
/// Unknown sections and keys are collected as warnings, not errors: the Kubernetes operator ships
/// sections this build may not know. A known key with the wrong type or an invalid value is an error
/// naming the key and its line.
package struct DaemonConfig: Equatable, Sendable {
    /// XDP link modes, with the flag values the kernel takes (`XDP_FLAGS_*`).
    package enum XDPMode: String, Equatable, Sendable, CaseIterable {
        case skb, drv, hw

        package var flags: UInt32 {
            switch self {
            case .skb: 2
            case .drv: 4
            case .hw: 8
            }
        }
    }

    /// How XDP and TC programs are attached (Swift extension, SPEC §1.8 and §4.3).
    package enum AttachMode: String, Equatable, Sendable, CaseIterable {
        case auto, dispatcher, native
    }

    package enum LogLevel: String, Equatable, Sendable, CaseIterable, Comparable {
        case error, warn, info, debug, trace

        package static func < (a: LogLevel, b: LogLevel) -> Bool {
            allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
        }
    }

    package enum LogFormat: String, Equatable, Sendable, CaseIterable {
        case text, json
    }

    /// One `[[signing.trusted_identities]]` entry: exactly one identity matcher and one issuer matcher.
    package typealias TrustedIdentity = BpfmanImages.TrustedIdentity

    package var interfaceXDPModes: [String: XDPMode] = [:]
    package var verifySignatures = true
    package var allowUnsigned = true
    package var trustedIdentities: [TrustedIdentity] = []
    package var lockMaxRetries = 10
    package var lockRetryDelayMilliseconds = 1000
    package var logLevel = LogLevel.info
    package var logFormat = LogFormat.text
    package var attachMode = AttachMode.auto
    /// `[csi] pods_root` (Swift extension): when set, NodePublishVolume refuses target paths outside this
    /// directory (the kubelet's pods tree, e.g. `/var/lib/kubelet/pods`). Unset accepts any absolute path.
    package var csiPodsRoot: String?
    /// Keys and sections this build does not know, as "line N: name", for the start-up log.
    package var warnings: [String] = []

    package init() {}

    /// The XDP mode configured for `interface`, `drv` when none is.
    package func xdpMode(for interface: String) -> XDPMode {
        interfaceXDPModes[interface] ?? .drv
    }
}

/// A configuration file that cannot be used; the daemon exits 1 with this message.
package struct ConfigError: Error, Equatable, CustomStringConvertible {
    package var message: String
    package var description: String { message }
}

extension DaemonConfig {
    /// Parses the text of a configuration file.
    /// - Parameters:
    ///   - text: the file's contents.
    ///   - file: the file's path, used in error messages.
    /// - Throws: `ConfigError` naming the file and line of a syntax error or a wrongly typed or invalid known key.
    package static func parse(_ text: String, file: String) throws(ConfigError) -> DaemonConfig {
        let document: TOMLTable
        do {
            document = try TOMLTable.parse(text)
        } catch {
            throw ConfigError(message: "\(file): \(error)")
        }
        var reader = ConfigReader(file: file)
        var config = DaemonConfig()
        for entry in document.entries {
            switch entry.key {
            case "interfaces":
                let interfaces = try reader.table(entry, "interfaces")
                for iface in interfaces.entries {
                    let settings = try reader.table(iface, "interfaces.\(iface.key)")
                    for setting in settings.entries {
                        let key = "interfaces.\(iface.key).\(setting.key)"
                        if setting.key == "xdp_mode" {
                            config.interfaceXDPModes[iface.key] = try reader.choice(setting, key, XDPMode.self)
                        } else {
                            reader.unknown(setting, key)
                        }
                    }
                }
            case "signing":
                let signing = try reader.table(entry, "signing")
                for setting in signing.entries {
                    let key = "signing.\(setting.key)"
                    switch setting.key {
                    case "verify_enabled": config.verifySignatures = try reader.bool(setting, key)
                    case "allow_unsigned": config.allowUnsigned = try reader.bool(setting, key)
                    case "trusted_identities": config.trustedIdentities = try reader.identities(setting, key)
                    default: reader.unknown(setting, key)
                    }
                }
            case "database":
                let database = try reader.table(entry, "database")
                for setting in database.entries {
                    let key = "database.\(setting.key)"
                    switch setting.key {
                    case "max_retries": config.lockMaxRetries = try reader.count(setting, key)
                    case "millisec_delay": config.lockRetryDelayMilliseconds = try reader.count(setting, key)
                    default: reader.unknown(setting, key)
                    }
                }
            case "logging":
                let logging = try reader.table(entry, "logging")
                for setting in logging.entries {
                    let key = "logging.\(setting.key)"
                    switch setting.key {
                    case "level": config.logLevel = try reader.choice(setting, key, LogLevel.self)
                    case "format": config.logFormat = try reader.choice(setting, key, LogFormat.self)
                    default: reader.unknown(setting, key)
                    }
                }
            case "engine":
                let engine = try reader.table(entry, "engine")
                for setting in engine.entries {
                    let key = "engine.\(setting.key)"
                    if setting.key == "attach_mode" {
                        config.attachMode = try reader.choice(setting, key, AttachMode.self)
                    } else {
                        reader.unknown(setting, key)
                    }
                }
            case "csi":
                let csi = try reader.table(entry, "csi")
                for setting in csi.entries {
                    let key = "csi.\(setting.key)"
                    if setting.key == "pods_root" {
                        config.csiPodsRoot = try reader.absolutePath(setting, key)
                    } else {
                        reader.unknown(setting, key)
                    }
                }
            default:
                reader.unknown(entry, entry.key)
            }
        }
        config.warnings = reader.warnings
        return config
    }
}

/// Typed access to TOML entries with errors that name the file, line and key.
private struct ConfigReader {
    let file: String
    var warnings: [String] = []

    func fail(_ entry: TOMLTable.Entry, _ key: String, _ reason: String) -> ConfigError {
        ConfigError(message: "\(file): line \(entry.line): \(key) \(reason)")
    }

    mutating func unknown(_ entry: TOMLTable.Entry, _ key: String) {
        warnings.append("\(file): line \(entry.line): unknown configuration key \(key) ignored")
    }

    func table(_ entry: TOMLTable.Entry, _ key: String) throws(ConfigError) -> TOMLTable {
        guard case .table(let t) = entry.value else {
            throw fail(entry, key, "must be a table, not a \(entry.value.typeName)")
        }
        return t
    }

    func bool(_ entry: TOMLTable.Entry, _ key: String) throws(ConfigError) -> Bool {
        guard case .boolean(let b) = entry.value else {
            throw fail(entry, key, "must be a boolean, not a \(entry.value.typeName)")
        }
        return b
    }

    func absolutePath(_ entry: TOMLTable.Entry, _ key: String) throws(ConfigError) -> String {
        guard case .string(let s) = entry.value else {
            throw fail(entry, key, "must be a string, not a \(entry.value.typeName)")
        }
        guard s.hasPrefix("/") else { throw fail(entry, key, "must be an absolute path, got \"\(s)\"") }
        return s
    }

    func count(_ entry: TOMLTable.Entry, _ key: String) throws(ConfigError) -> Int {
        guard case .integer(let i) = entry.value else {
            throw fail(entry, key, "must be an integer, not a \(entry.value.typeName)")
        }
        guard i >= 0, i <= Int64(Int32.max) else { throw fail(entry, key, "must be between 0 and \(Int32.max)") }
        return Int(i)
    }

    func choice<T: RawRepresentable & CaseIterable>(
        _ entry: TOMLTable.Entry,
        _ key: String,
        _: T.Type
    ) throws(ConfigError) -> T where T.RawValue == String {
        guard case .string(let s) = entry.value else {
            throw fail(entry, key, "must be a string, not a \(entry.value.typeName)")
        }
        guard let value = T(rawValue: s.lowercased()) else {
            let allowed = T.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")
            throw fail(entry, key, "has invalid value \"\(s)\" (expected one of \(allowed))")
        }
        return value
    }

    func identities(_ entry: TOMLTable.Entry, _ key: String) throws(ConfigError) -> [DaemonConfig.TrustedIdentity] {
        guard case .array(let items) = entry.value else {
            throw fail(entry, key, "must be an array of tables, not a \(entry.value.typeName)")
        }
        var result: [DaemonConfig.TrustedIdentity] = []
        var sawWildcard = false
        for (index, item) in items.enumerated() {
            // Entries are named by their position, counting from 1, as they appear in the file.
            let name = "\(key) entry \(index + 1)"
            guard case .table(let t) = item else { throw fail(entry, key, "must be an array of tables") }
            func matcher(_ exact: String, _ pattern: String) throws(ConfigError) -> DaemonConfig.TrustedIdentity.Matcher
            {
                switch (t[exact], t[pattern]) {
                case (.string(let s)?, nil): return .exact(s)
                case (nil, .string(let s)?):
                    let matcher = DaemonConfig.TrustedIdentity.Matcher.pattern(s)
                    if let problem = matcher.problem {
                        throw fail(entry, name, "has an invalid \(pattern) \"\(s)\": \(problem)")
                    }
                    return matcher
                case (nil, nil), (.some, .some):
                    throw fail(entry, name, "needs exactly one of \(exact) and \(pattern)")
                default:
                    throw fail(entry, name, "\(exact) and \(pattern) must be strings")
                }
            }
            let identity = try matcher("certificate_identity", "certificate_identity_regexp")
            let issuer = try matcher("certificate_oidc_issuer", "certificate_oidc_issuer_regexp")
            if identity.isWildcard && issuer.isWildcard { sawWildcard = true }
            result.append(DaemonConfig.TrustedIdentity(identity: identity, issuer: issuer))
        }
        if sawWildcard && result.count > 1 {
            throw fail(entry, key, "has a wildcard entry (any identity, any issuer) combined with other entries")
        }
        return result
    }
}

/// Reads the effective log level from `RUST_LOG`, kept for compatibility with existing deployments
/// (SPEC §1.9): the last bare level in the comma-separated list wins; `crate=level` items are ignored.
package func logLevel(fromRustLog value: String) -> DaemonConfig.LogLevel? {
    var level: DaemonConfig.LogLevel?
    for item in value.split(separator: ",") {
        let word = item.trimmingCharacters(in: " ").lowercased()
        if let parsed = DaemonConfig.LogLevel(rawValue: word == "warning" ? "warn" : word) {
            level = parsed
        }
    }
    return level
}

extension Substring {
    fileprivate func trimmingCharacters(in set: Character) -> String {
        String(drop { $0 == set }.reversed().drop { $0 == set }.reversed())
    }
}

extension DaemonConfig {
    /// The `[signing]` settings as the image cache records them (SPEC §8.3, §8.5).
    package var signingPolicy: SigningPolicy {
        SigningPolicy(
            verifyEnabled: verifySignatures,
            allowUnsigned: allowUnsigned,
            // Sorted: the order of the entries in the file does not change what is admitted.
            trustedIdentities: trustedIdentities.sorted { $0.text < $1.text }
        )
    }
}
