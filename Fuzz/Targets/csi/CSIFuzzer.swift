// CSI request validation (SPEC §7.3, §7.4): NodePublishVolume and NodeUnpublishVolume requests as the kubelet
// sends them, decoded from the wire and validated. Input: one flags byte (bit 0: a pods root is configured; bit 1:
// the bytes are a NodeUnpublishVolumeRequest), then the request's wire bytes.
//
// What must hold: a rejected request fails with INVALID_ARGUMENT, nothing else; an accepted one is what the mount
// code relies on: a volume id that is one path element, an absolute target path with no `.`/`..`/empty components
// and no NUL, below the pods root when one is set, a trimmed program name, map names that are single path elements,
// unique and sorted. Validation is pure: the same request validates the same way twice.
internal import FuzzSupport
internal import H2Transport
internal import Proto

@testable internal import BpfmanServer

private let podsRoot = "/var/lib/kubelet/pods"

private func checkElement(_ name: String, _ what: String) {
    require(
        !name.isEmpty && name != "." && name != ".." && !name.contains("/") && !name.utf8.contains(0),
        "\(what) \"\(name)\" is not one path element"
    )
}

private func checkTarget(_ path: String, root: String?) {
    require(path.hasPrefix("/") && path != "/", "target \"\(path)\" is not absolute")
    require(!path.utf8.contains(0), "target has a NUL")
    for component in path.dropFirst().split(separator: "/", omittingEmptySubsequences: false) {
        require(!component.isEmpty && component != "." && component != "..", "target \"\(path)\" is not clean")
    }
    if let root { require(path.hasPrefix(root + "/"), "target \"\(path)\" is outside \(root)") }
}

/// What the kubelet is sent for a refusal: the status ErrorMapping makes of it.
private func rejected(_ error: CSIError) {
    let status = ErrorMapping.status(for: error)
    require(status.code == .invalidArgument, "rejected with \(status.code), not INVALID_ARGUMENT")
    require(!status.message.isEmpty, "rejected without a message")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 1 else { return 0 }
    let root = data[0] & 1 != 0 ? podsRoot : nil
    let bytes = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    if data[0] & 2 != 0 {
        guard let request = try? Csi_V1_NodeUnpublishVolumeRequest(serializedBytes: bytes) else { return 0 }
        do {
            checkElement(try CSIPublishRequest.validVolumeID(request.volumeID), "volume id")
            checkTarget(try CSIPublishRequest.validTargetPath(request.targetPath, podsRoot: root), root: root)
        } catch { rejected(error) }
        return 0
    }
    guard let request = try? Csi_V1_NodePublishVolumeRequest(serializedBytes: bytes) else { return 0 }
    let first = Result { () throws(CSIError) in try CSIPublishRequest(validating: request, podsRoot: root) }
    let second = Result { () throws(CSIError) in try CSIPublishRequest(validating: request, podsRoot: root) }
    switch (first, second) {
    case (.success(let plan), .success(let again)):
        require(plan == again, "validation is not deterministic")
        checkElement(plan.volumeID, "volume id")
        require(plan.volumeID == request.volumeID, "volume id changed")
        checkTarget(plan.targetPath, root: root)
        require(!plan.programName.isEmpty, "empty program name")
        require(CSIPublishRequest.trimmed(plan.programName) == plan.programName, "program name not trimmed")
        require(!plan.maps.isEmpty, "no maps")
        require(plan.maps == plan.maps.sorted() && Set(plan.maps).count == plan.maps.count, "maps not a set")
        for map in plan.maps { checkElement(map, "map") }
        require(plan.readOnly == request.readonly, "readonly changed")
    case (.failure(let error), .failure(let again)):
        require(ErrorMapping.status(for: error) == ErrorMapping.status(for: again), "validation is not deterministic")
        rejected(error)
    default:
        fail("validation is not deterministic")
    }
    return 0
}
