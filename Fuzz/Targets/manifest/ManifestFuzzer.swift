internal import BpfmanImages
// The registry's JSON documents (SPEC §8.2): image manifests, indexes and Docker manifest lists as the fetcher
// reads them, the descriptors in them, and the image config's labels. Input: one flags byte (bits 0-2 pick the
// Content-Type the registry claims; bit 3: the bytes are an image config), then the document.
//
// What must hold: a document is either refused with a transfer failure or read; a descriptor either fails its
// check or has a `sha256:` digest of 64 lowercase hex digits and a size >= 0 (it becomes a URL and a file name);
// labels either give a string map or fail with INVALID_ARGUMENT naming the image.
internal import FuzzSupport

@testable internal import BpfmanImageFetch

private let contentTypes: [String?] = [
    nil, MediaType.ociIndex, MediaType.ociManifest, MediaType.dockerManifestList, MediaType.dockerManifest,
    "application/vnd.docker.distribution.manifest.v1+prettyjws", "application/json; charset=utf-8", "",
]

private func check(_ descriptor: Descriptor) {
    guard let checked = try? descriptor.checked() else { return }
    let hex = checked.digest.utf8.dropFirst(7)
    require(checked.digest.hasPrefix("sha256:") && hex.count == 64, "bad digest \(checked.digest) accepted")
    require(
        hex.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) },
        "digest \(checked.digest) is not lowercase hex"
    )
    require(checked.size >= 0, "negative size accepted")
}

private func checkLabels(_ labels: ImageLabels) {
    for read in [labels.programs, labels.maps] {
        do { _ = try read("fuzz.example/image") } catch {
            require(error.code == .invalidArgument, "labels refused with \(error.code)")
            require(error.message.contains("fuzz.example/image"), "label error does not name the image")
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 1 else { return 0 }
    let flags = data[0]
    let bytes = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    if flags & 8 != 0 {
        do { checkLabels(try ImageLabels(configBytes: bytes)) } catch {
            guard case .transfer = error.kind else { fail("config refused as \(error.kind)") }
        }
        return 0
    }
    do {
        switch try ManifestDocument(bytes: bytes, contentType: contentTypes[Int(flags & 7)]) {
        case .index(let manifests): manifests.forEach(check)
        case .manifest(let config, let layers):
            check(config)
            layers.forEach(check)
        }
    } catch {
        guard case .transfer = error.kind else { fail("manifest refused as \(error.kind)") }
        require(!error.reason.isEmpty, "manifest refused without a reason")
    }
    return 0
}
