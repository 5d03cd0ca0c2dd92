internal import BpfmanImages
internal import CArchive
internal import Glibc
internal import SystemCalls

/// An OCI image layout directory on this host (`oci:<dir>[:<tag>]`, SPEC §8.2): `index.json` and
/// `blobs/sha256/<hex>`, read with the same digest and size checks as a registry's blobs.
struct LayoutSource: ImageSource {
    /// The layout directory, opened by the daemon (the fetcher itself may not be allowed to reach it).
    let directoryFD: CInt
    /// Its path, for messages.
    let directory: String
    let tag: String?

    mutating func rootManifest(limits: ImageLimits) throws(PullFailure) -> FetchedDocument {
        var info = stat()
        guard fstatat(directoryFD, "index.json", &info, 0) == 0 else {
            if Errno.current == .noSuchFileOrDirectory { throw PullFailure(kind: .manifestNotFound, reason: "") }
            throw .transfer("\(directory)/index.json: \(Errno.current)")
        }
        guard let bytes = readSmallFile(at: directoryFD, "index.json", limit: limits.document) else {
            throw .transfer("\(directory)/index.json cannot be read or is over \(limits.document) bytes")
        }
        struct Index: Decodable { var manifests: [Descriptor] }
        let index: Index
        do { index = try decodeJSON(Index.self, bytes) } catch {
            throw .transfer("\(directory)/index.json is not an OCI index: \(jsonReason(error))")
        }
        let candidates =
            tag.map { tag in index.manifests.filter { $0.annotations?["org.opencontainers.image.ref.name"] == tag } }
            ?? index.manifests
        guard let chosen = candidates.first else { throw PullFailure(kind: .manifestNotFound, reason: "") }
        guard candidates.count == 1 else {
            throw .transfer("\(directory) holds \(candidates.count) images; name one with :<tag>")
        }
        let descriptor = try chosen.checked()
        let document = try blob(descriptor, limit: limits.document)
        return FetchedDocument(bytes: document, contentType: descriptor.mediaType, digest: descriptor.digest)
    }

    mutating func taggedManifest(_ tag: String, limits: ImageLimits) throws(PullFailure) -> FetchedDocument? {
        guard let bytes = readSmallFile(at: directoryFD, "index.json", limit: limits.document) else { return nil }
        struct Index: Decodable { var manifests: [Descriptor] }
        guard let index = try? decodeJSON(Index.self, bytes),
            let chosen = index.manifests.first(where: { $0.annotations?["org.opencontainers.image.ref.name"] == tag })
        else { return nil }
        let descriptor = try chosen.checked()
        return FetchedDocument(
            bytes: try blob(descriptor, limit: limits.document),
            contentType: descriptor.mediaType,
            digest: descriptor.digest
        )
    }

    /// A layout has no referrers API; the tag schema (`sha256-<hex>`) is its only way.
    mutating func referrers(of digest: String, limits: ImageLimits) throws(PullFailure) -> FetchedDocument? { nil }

    mutating func manifest(_ descriptor: Descriptor, limits: ImageLimits) throws(PullFailure) -> FetchedDocument {
        FetchedDocument(
            bytes: try blob(descriptor, limit: limits.document),
            contentType: descriptor.mediaType,
            digest: descriptor.digest
        )
    }

    mutating func blob(_ descriptor: Descriptor, limit: Int) throws(PullFailure) -> [UInt8] {
        var bytes: [UInt8] = []
        try copyBlob(descriptor, limit: limit) { chunk in
            bytes.append(contentsOf: chunk)
            return .success(())
        }
        return bytes
    }

    mutating func blob(_ descriptor: Descriptor, into fd: CInt, limit: Int) throws(PullFailure) {
        try copyBlob(descriptor, limit: limit) { chunk in Syscalls.writeAll(fd, chunk) }
    }

    /// Streams `blobs/sha256/<hex>` through `body`, checking its size and sha256.
    private func copyBlob(
        _ descriptor: Descriptor,
        limit: Int,
        _ body: (UnsafeRawBufferPointer) -> Result<Void, SystemCallError>
    ) throws(PullFailure) {
        try checkSize(descriptor, limit: limit, what: "blob")
        let name = "blobs/sha256/\(descriptor.digest.dropFirst(7))"
        let path = "\(directory)/\(name)"
        let fd = openat(directoryFD, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { throw .transfer("\(path): \(Errno.current)") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            throw .transfer("\(path) is not a regular file")
        }
        var hasher: SHA256Hasher
        do { hasher = try SHA256Hasher() } catch { throw .transfer(error.message) }
        var length = 0
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n: Int
            switch buffer.withUnsafeMutableBytes({ buffer in
                valueOrErrno("read") { read(fd, buffer.baseAddress!, buffer.count) }
            }) {
            case .success(let count): n = count
            case .failure(let error): throw .transfer("\(path): \(error.errno)")
            }
            if n == 0 { break }
            length += n
            guard length <= descriptor.size else { break }
            let copied = buffer.withUnsafeBytes { raw in
                let chunk = UnsafeRawBufferPointer(rebasing: raw[..<n])
                hasher.update(chunk)
                return body(chunk)
            }
            if case .failure(let error) = copied { throw .transfer("cannot copy \(path): \(error.errno)") }
        }
        try checkContent(descriptor, length: length, digest: hasher.finish(), what: "blob")
    }
}

/// Unpacks the layout parts of an `oci-archive:` tar (`index.json`, `oci-layout`, `blobs/sha256/<hex>`) into
/// `directory`; every other entry is skipped, and nothing is written outside `directory`.
func unpackLayoutArchive(fd archiveFD: CInt, name file: String, into directory: String, limit: Int) throws(PullFailure)
{
    var info = stat()
    // A FIFO or a device would block the pull or never end.
    guard fstat(archiveFD, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
        throw .transfer("\(file) is not a regular file")
    }
    guard let archive = archive_read_new() else { throw .transfer("libarchive cannot start") }
    defer { archive_read_free(archive) }
    archive_read_support_format_tar(archive)
    archive_read_support_filter_gzip(archive)
    guard archive_read_open_fd(archive, archiveFD, 1 << 16) == ARCHIVE_OK else {
        throw .transfer("\(file): \(archiveError(archive))")
    }
    guard mkdir(directory + "/blobs", 0o700) == 0, mkdir(directory + "/blobs/sha256", 0o700) == 0 else {
        throw .transfer("cannot make \(directory)/blobs: \(Errno.current)")
    }
    var total = 0
    var entry: OpaquePointer?
    while true {
        let status = archive_read_next_header(archive, &entry)
        if status == ARCHIVE_EOF { break }
        guard status == ARCHIVE_OK || status == ARCHIVE_WARN, let entry else {
            throw .transfer("\(file): \(archiveError(archive))")
        }
        var name = archive_entry_pathname(entry).map { String(cString: $0) } ?? ""
        while name.hasPrefix("./") { name.removeFirst(2) }
        let isBlob =
            name.hasPrefix("blobs/sha256/") && name.utf8.count == 77
            && name.dropFirst(13).allSatisfy { $0.isHexDigit && !$0.isUppercase }
        guard archive_entry_filetype(entry) == carchive_regular_file(),
            isBlob || name == "index.json" || name == "oci-layout"
        else {
            continue
        }
        let size = Int(archive_entry_size(entry))
        total += size
        guard total <= limit else { throw .transfer("\(file) holds more than \(limit) bytes of layout") }
        let fd = open(directory + "/" + name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw .transfer("cannot unpack \(name): \(Errno.current)") }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var written = 0
        while true {
            let n = buffer.withUnsafeMutableBytes { archive_read_data(archive, $0.baseAddress, $0.count) }
            guard n >= 0 else { throw .transfer("\(file): \(archiveError(archive))") }
            if n == 0 { break }
            written += n
            guard written <= size else { throw .transfer("\(file): entry \(name) is longer than its header says") }
            let written = buffer.withUnsafeBytes { Syscalls.writeAll(fd, UnsafeRawBufferPointer(rebasing: $0[..<n])) }
            if case .failure(let error) = written { throw .transfer("cannot unpack \(name): \(error.errno)") }
        }
    }
}

func archiveError(_ archive: OpaquePointer) -> String {
    archive_error_string(archive).map { String(cString: $0) } ?? "unknown libarchive error"
}
