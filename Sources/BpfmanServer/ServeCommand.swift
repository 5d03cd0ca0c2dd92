internal import ArgumentParser

/// Default locations, as upstream bpfman names them (SPEC §0.2).
package enum ServeDefaults {
    package static let socketPath = "/run/bpfman-sock/bpfman.sock"
    package static let runtimeDirectory = "/run/bpfman"
    package static let imageCacheDirectory = "/var/cache/bpfman"
    package static let configPath = "/etc/bpfman/bpfman.toml"
}

extension BpfmanCommand {
    /// `bpfman serve`: the daemon.
    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the bpfman daemon on its gRPC socket."
        )

        @Option(help: "Main gRPC socket.")
        var socketPath: String = ServeDefaults.socketPath

        @Option(name: [.customLong("runtime-dir")], help: "Root of all daemon state.")
        var runtimeDirectory: String = ServeDefaults.runtimeDirectory

        @Option(name: [.customLong("image-cache-dir")], help: "Cache for OCI bytecode images.")
        var imageCacheDirectory: String = ServeDefaults.imageCacheDirectory

        @Flag(help: "Also serve the CSI Identity and Node services on <runtime-dir>/csi/csi.sock.")
        var csiSupport = false

        @Option(help: "Exit after this many idle seconds; 0 never exits.")
        var timeout: UInt64?

        @Option(help: "Configuration file.")
        var config: String = ServeDefaults.configPath

        func validate() throws {
            guard socketPath.utf8.count <= 107 else {
                throw ValidationError("--socket-path is longer than a Unix socket path may be (107 bytes)")
            }
        }

        func run() async throws {
            // The daemon itself is built by the BpfmanServer issue; until then say so plainly.
            print(
                """
                bpfman serve: would serve bpfman.v1.Bpfman on \(socketPath) with runtime dir \(runtimeDirectory).
                The gRPC daemon is not implemented yet in this build; see README.md for what works today.
                """
            )
            throw ExitCode.failure
        }
    }
}
