internal import SystemCalls

/// Every path and environment name of the engine in one place (STYLE convention 10, SPEC §2); the CSI plugin's
/// are `CSIPaths`, the server's other defaults `ServeDefaults`.
///
/// `init(root:)` relocates the runtime directory so tests run under a temp dir with a private bpffs.
package struct BpfmanPaths: Sendable, Hashable {
    /// Mode of map pins.
    package static let mapPinMode: UInt32 = 0o660
    /// Environment variable naming the `bpfman-ns` helper executable (SPEC §4.14).
    package static let nsHelperEnvironmentKey = "BPFMAN_NS_PATH"

    /// The executable to run as the `bpfman-ns` helper (argv[0] "bpfman-ns"): `$BPFMAN_NS_PATH`, else the `bpfman`
    /// executable (SystemCalls' `bpfmanExecutable(override:)`).
    package static var nsHelperPath: String {
        bpfmanExecutable(override: Syscalls.environment(nsHelperEnvironmentKey))
    }

    /// The runtime directory `<rd>`.
    package var root: String

    /// `root` defaults to upstream's runtime directory (`defaultBpfmanRuntimeDirectory`, SystemCalls).
    package init(root: String = defaultBpfmanRuntimeDirectory) {
        var root = root
        while root.count > 1 && root.hasSuffix("/") { root.removeLast() }
        self.root = root
    }

    /// `<rd>/db`
    package var databaseDirectory: String { root + "/db" }
    /// `<rd>/db/store.db`
    package var database: String { databaseDirectory + "/store.db" }
    /// `<rd>/fs`, the bpffs holding every pin.
    package var bpffs: String { root + "/fs" }
    /// `<rd>/fs/prog_<id>`
    package func programPin(_ id: UInt32) -> String { bpffs + "/prog_\(id)" }
    /// `<rd>/fs/maps`
    package var mapsDirectory: String { bpffs + "/maps" }
    /// `<rd>/fs/maps/<owner id>`
    package func mapSetDirectory(_ ownerID: UInt32) -> String { mapsDirectory + "/\(ownerID)" }
    /// `<rd>/fs/maps/<owner id>/<map name>`
    package func mapPin(owner: UInt32, map: String) -> String { mapSetDirectory(owner) + "/" + map }
    /// `<rd>/fs/shared`, libbpf's pin root for PIN_BY_NAME maps.
    package var sharedMapsDirectory: String { bpffs + "/shared" }
    /// `<rd>/fs/links`
    package var linksDirectory: String { bpffs + "/links" }
    /// `<rd>/fs/links/<link id>`
    package func linkPin(_ id: UInt32) -> String { linksDirectory + "/\(id)" }
    /// `<rd>/fs/xdp`
    package var xdpDirectory: String { bpffs + "/xdp" }
    /// `<rd>/tuf`
    package var tufDirectory: String { root + "/tuf" }
}
