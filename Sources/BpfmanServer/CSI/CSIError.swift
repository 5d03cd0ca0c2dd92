internal import BpfmanEngine
internal import SystemCalls

/// Why a CSI call failed (SPEC §7). `ErrorMapping.status(for:)` turns each case into the status the kubelet
/// sees; nothing in the CSI plugin builds a `GRPCStatus` itself.
enum CSIError: Error, Sendable {
    /// A request that breaks SPEC §7.3 step 1; the message names the field.
    case invalidRequest(String)
    /// Another operation on `volumeID` is in flight (the CSI spec's ABORTED).
    case volumeBusy(volumeID: String)
    /// The target path is a mount of another file system.
    case targetMountedWithOtherFilesystem(targetPath: String, filesystem: String)
    /// The target path is a bpffs published with other maps or another access mode.
    case targetPublishedDifferently(targetPath: String)
    /// Finding the program or pinning its maps failed in the engine.
    case engine(EngineError)
    /// The per-volume directory is not a bpffs right after mounting one.
    case notBPFFS(path: String)
    /// A step on the node failed: `what` says which, `cause` why (errno text or the thrown error).
    case nodeOperation(what: String, cause: String)
    /// A `csi.v1.Node` method the plugin does not offer.
    case unimplemented(method: String, plugin: String)

    /// A failed system call of step `what`, with errno's text as the cause.
    static func systemCall(_ what: String, errno: Errno) -> CSIError {
        .nodeOperation(what: what, cause: "\(errno)")
    }
}
