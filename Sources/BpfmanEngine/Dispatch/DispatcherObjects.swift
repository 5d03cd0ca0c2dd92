internal import Glibc

/// Where the compiled dispatcher objects are (`xdp_dispatcher.bpf.o`, `tc_dispatcher.bpf.o`).
///
/// They are built from `bpf/*.bpf.c` by `scripts/build-bpf.sh` (run by `make build`) into `.build/bpf/`,
/// never committed. At run time the daemon looks, in order, in `$BPFMAN_BPF_DIR`, in `bpf/` and `../bpf/`
/// next to its executable (so `.build/debug/bpfman` finds `.build/bpf/`), and in `/usr/lib/bpfman/bpf`.
package struct DispatcherObjects: Sendable, Equatable {
    /// The environment variable that overrides the search.
    package static let environmentKey = "BPFMAN_BPF_DIR"
    /// The installed location.
    package static let systemDirectory = "/usr/lib/bpfman/bpf"

    /// The directory holding both objects.
    package var directory: String

    package init(directory: String) {
        self.directory = directory
    }

    /// The object for `family`.
    package func path(for family: ProceedOnFamily) -> String {
        "\(directory)/\(family == .xdp ? "xdp" : "tc")_dispatcher.bpf.o"
    }

    /// Finds the objects as described above.
    /// - Parameter executable: the daemon's executable path (`/proc/self/exe` resolved), or nil.
    /// - Throws: `.internal` naming every place searched when none holds both objects.
    package static func locate(executable: String?) throws(DispatchError) -> DispatcherObjects {
        var candidates: [String] = []
        if let override = getenv(environmentKey) { candidates.append(String(cString: override)) }
        if let executable, let slash = executable.lastIndex(of: "/") {
            let dir = String(executable[..<slash])
            candidates += ["\(dir)/bpf", "\(dir)/../bpf"]
        }
        candidates.append(systemDirectory)
        for directory in candidates {
            let objects = DispatcherObjects(directory: directory)
            if access(objects.path(for: .xdp), R_OK) == 0, access(objects.path(for: .tc), R_OK) == 0 {
                return objects
            }
        }
        throw DispatchError(
            .internal,
            "dispatcher objects not found in \(candidates.joined(separator: ", ")); run `make build` or set "
                + environmentKey
        )
    }
}
