internal import BpfmanImages
// Image references (SPEC §8.2): the `url` of a BytecodeImage, as a client sends it. Input: the text.
//
// What must hold: a reference that parses normalizes to text that parses to the same reference (normalizing is
// idempotent, and the cache key of both is the same); a registry reference's repository has no empty, `.` or `..`
// component (it becomes part of a URL path and of the cache's key); a layout path is absolute without `..`.
// Anything else fails with INVALID_ARGUMENT quoting the url.
internal import FuzzSupport

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    let reference: ImageReference
    do { reference = try ImageReference(parsing: text) } catch {
        require(error.code == .invalidArgument, "refused with \(error.code)")
        require(error.message.hasPrefix("invalid image reference"), "message \(error.message)")
        return 0
    }
    let normalized = reference.normalized
    // The 512-byte cap is on what the client sends; normalizing can add up to 25 bytes (`docker.io/library/`,
    // `:latest`), and the normalized text is only a cache key, never parsed again (fuzz-reference's find, kept as
    // corpus/reference/long-normalized). Over the cap it is not fed back.
    guard normalized.utf8.count <= 512 else { return 0 }
    let again: ImageReference
    do { again = try ImageReference(parsing: normalized) } catch {
        fail("\(text) normalizes to \(normalized), which does not parse: \(error.message)")
    }
    require(again.normalized == normalized, "normalizing \(text) is not idempotent")
    switch reference {
    case .registry(let registry):
        if case .registry(let other) = again {
            require(other.registry == registry.registry && other.repository == registry.repository)
            require(other.digest == registry.digest, "digest changed")
        } else {
            fail("\(normalized) changed kind")
        }
        for component in registry.repository.split(separator: "/", omittingEmptySubsequences: false) {
            require(!component.isEmpty && component != "." && component != "..", "repository \(registry.repository)")
        }
        require(!registry.registry.isEmpty, "empty registry")
    case .layout(let path, _), .archive(let path, _):
        require(again == reference, "\(text) -> \(normalized) changed")
        require(path.hasPrefix("/") && !path.split(separator: "/").contains(".."), "path \(path)")
    }
    return 0
}
