internal import BpfmanImages
internal import CArchive
internal import Glibc

/// What a layer holds for us: the ELF object to load, sniffed rather than trusted by media type (SPEC §8.1).
enum LayerContent {
    /// An ELF object: the first regular file that starts with `\x7fELF`, one named `*.o` preferred.
    case object(name: String, bytes: [UInt8])
    /// No ELF object in this layer.
    case none
}

/// Reads a downloaded layer: a tar (plain, gzip or zstd), or a bare ELF (plain or gzip).
///
/// Entries with absolute paths or `..` components are refused; a regular entry over `limits.entry`, or a layer
/// that expands to more than `limits.expanded`, is refused before it is read whole. Compression filters are the
/// built-in ones only (never libarchive's external programs).
func readLayer(path: String, limits: ImageLimits, url: String) throws(PullFailure) -> LayerContent {
    guard let archive = archive_read_new() else { throw .transfer("libarchive cannot start") }
    defer { archive_read_free(archive) }
    archive_read_support_filter_gzip(archive)
    archive_read_support_filter_zstd(archive)
    archive_read_support_format_tar(archive)
    archive_read_support_format_raw(archive)
    guard archive_read_open_filename(archive, path, 1 << 16) == ARCHIVE_OK else {
        throw .content(
            .invalidArgument("image \(url) has a layer that is neither a tar nor an object: \(archiveError(archive))")
        )
    }
    var firstELF: (name: String, bytes: [UInt8])?
    var entry: OpaquePointer?
    while true {
        let status = archive_read_next_header(archive, &entry)
        if status == ARCHIVE_EOF { break }
        guard status == ARCHIVE_OK || status == ARCHIVE_WARN, let entry else {
            // An object already read whole is kept when only the layer's end is damaged.
            if firstELF != nil { break }
            throw .content(.invalidArgument("image \(url) has a layer that cannot be read: \(archiveError(archive))"))
        }
        // What the layer has expanded to so far, plus what this entry says it holds: a run of zeros that
        // compresses to nothing is refused before it is inflated. Filter 0 is the decompressed side; -1 would
        // be the file's own (compressed) bytes.
        let declared = archive_entry_size_is_set(entry) != 0 ? max(0, archive_entry_size(entry)) : 0
        guard archive_filter_bytes(archive, 0) + declared <= Int64(limits.expanded) else {
            throw .content(
                .invalidArgument("image \(url) has a layer that expands to more than \(limits.expanded) bytes")
            )
        }
        let raw = archive_format(archive) == ARCHIVE_FORMAT_RAW
        let name = raw ? "object" : (archive_entry_pathname(entry).map { String(cString: $0) } ?? "")
        if !raw {
            let parts = name.split(separator: "/", omittingEmptySubsequences: true)
            guard !name.hasPrefix("/"), !parts.contains("..") else {
                throw .content(.invalidArgument("image \(url) has a layer entry with an unsafe path \"\(name)\""))
            }
            guard archive_entry_filetype(entry) == carchive_regular_file() else { continue }
            guard archive_entry_size(entry) <= Int64(limits.entry) else {
                throw .content(
                    .invalidArgument(
                        "image \(url) has a layer entry \"\(name)\" of \(archive_entry_size(entry)) bytes, over the cap of "
                            + "\(limits.entry) bytes"
                    )
                )
            }
        }
        // The magic first; only an ELF is read on. A tar entry is read to its recorded size and no further, so
        // a layer whose writer left out the final padding and end blocks (umoci 0.4's `insert` does) still reads.
        let size: Int? = !raw && archive_entry_size_is_set(entry) != 0 ? Int(archive_entry_size(entry)) : nil
        var bytes = try readData(archive, upTo: min(4, size ?? 4), url: url)
        guard bytes == [0x7f, 0x45, 0x4c, 0x46] else { continue }
        guard name.hasSuffix(".o") || firstELF == nil else { continue }
        if let size {
            bytes += try readData(archive, upTo: size - 4, url: url)
            guard bytes.count == size else {
                throw .content(
                    .invalidArgument("image \(url) has a layer entry \"\(name)\" shorter than its header says")
                )
            }
        } else {
            bytes += try readData(archive, upTo: limits.entry - 3, url: url)
            guard bytes.count <= limits.entry else {
                throw .content(
                    .invalidArgument("image \(url) has an object over the cap of \(limits.entry) bytes")
                )
            }
        }
        if name.hasSuffix(".o") { return .object(name: name, bytes: bytes) }
        firstELF = (name, bytes)
    }
    return firstELF.map { .object(name: $0.name, bytes: $0.bytes) } ?? .none
}

/// Up to `count` bytes of the current entry.
private func readData(_ archive: OpaquePointer, upTo count: Int, url: String) throws(PullFailure) -> [UInt8] {
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while bytes.count < count {
        let want = min(chunk.count, count - bytes.count)
        let n = chunk.withUnsafeMutableBytes { archive_read_data(archive, $0.baseAddress, want) }
        guard n >= 0 else {
            throw .content(.invalidArgument("image \(url) has a layer that cannot be read: \(archiveError(archive))"))
        }
        if n == 0 { break }
        bytes += chunk[..<n]
    }
    return bytes
}
