// `bpfman image build` (SPEC §9.4): writes a bytecode image as an OCI image layout directory or an OCI archive,
// with no container engine. Run as `bpfman-image build-image <request JSON>` under the caller's identity; the
// daemon never writes images. The same request gives the same bytes: every time stamp is the request's
// (SOURCE_DATE_EPOCH, else 0), JSON keys are sorted, tar headers carry no owner names, and the gzip header
// carries no time.
internal import BpfmanImages
internal import CArchive
internal import FoundationEssentials
internal import Glibc
internal import SystemCalls

package enum ImageWriter {
    /// Runs `bpfman-image build-image <request JSON>`: prints `<destination>@<digest>` and returns 0, or prints
    /// the reason on standard error and returns 1.
    package static func command(_ arguments: [String]) -> Int32 {
        guard arguments.count == 1,
            let request = try? JSONDecoder().decode(ImageBuildRequest.self, from: Data(arguments[0].utf8))
        else {
            printError("bpfman-image build-image: expected one request")
            return 1
        }
        do {
            let digest = try write(request)
            print("\(request.destination)@\(digest)")
            return 0
        } catch {
            printError("Error: \(error.message)")
            return 1
        }
    }

    /// Writes the image and returns the digest of what the tag names (the manifest, or the index when
    /// `multiArch`).
    static func write(_ request: ImageBuildRequest) throws(BuildFailure) -> String {
        let reference: ImageReference
        do { reference = try ImageReference(parsing: request.destination) } catch {
            throw BuildFailure(message: "\(request.destination): \(error)")
        }
        var blobs = BlobSet()
        var manifests: [(descriptor: Descriptor, platform: ImageBuildRequest.Input)] = []
        for input in request.inputs {
            manifests.append((try imageManifest(input, request, into: &blobs), input))
        }
        guard let first = manifests.first else { throw BuildFailure(message: "no bytecode object given") }
        let top: Descriptor
        if request.multiArch {
            let index = JSONValue.fields([
                ("schemaVersion", .integer(2)), ("mediaType", .string(ociIndexType)),
                (
                    "manifests",
                    .array(
                        manifests.map { entry in
                            entry.descriptor.json(
                                platform: .fields([
                                    ("architecture", .string(entry.platform.architecture)),
                                    ("os", .string(entry.platform.os)),
                                ])
                            )
                        }
                    )
                ),
            ])
            top = try blobs.add(index.canonical, mediaType: ociIndexType)
        } else {
            top = first.descriptor
        }
        switch reference {
        case .layout(let directory, let tag):
            try writeLayout(blobs, top: top, tag: tag ?? "latest", directory: directory, merge: true)
        case .archive(let file, let tag):
            try writeArchive(blobs, top: top, tag: tag ?? "latest", file: file, timestamp: request.timestamp)
        case .registry:
            throw BuildFailure(
                message: "image build writes oci:<dir>[:<tag>] or oci-archive:<file>[:<tag>]; "
                    + "copy the result to a registry with 'skopeo copy --all oci:<dir>:<tag> docker://<image>'"
            )
        }
        return top.digest
    }

    static func printError(_ line: String) {
        let bytes = Array((line + "\n").utf8)
        _ = bytes.withUnsafeBytes { Syscalls.writeAll(2, $0) }
    }

    static let ociIndexType = "application/vnd.oci.image.index.v1+json"
    static let ociManifestType = "application/vnd.oci.image.manifest.v1+json"
    static let ociConfigType = "application/vnd.oci.image.config.v1+json"
    static let ociLayerType = "application/vnd.oci.image.layer.v1.tar+gzip"

    /// The layer, config and manifest of one platform's image; returns the manifest's descriptor.
    static func imageManifest(
        _ input: ImageBuildRequest.Input,
        _ request: ImageBuildRequest,
        into blobs: inout BlobSet
    ) throws(BuildFailure) -> Descriptor {
        let object = try readObject(input.path)
        let name = input.path.split(separator: "/").last.map(String.init) ?? input.path
        let tar = try tarBytes([(name, object, 0o644)], timestamp: request.timestamp)
        let layer = try gzipBytes(tar)
        let diffID = try digest(tar)
        let layerDescriptor = try blobs.add(layer, mediaType: ociLayerType)
        let created = iso8601(request.timestamp)
        let config = JSONValue.fields([
            ("architecture", .string(input.architecture)),
            ("config", .fields([("Labels", .object(request.labels.mapValues { .string($0) }))])),
            ("created", .string(created)),
            (
                "history",
                .array([.fields([("created", .string(created)), ("created_by", .string("bpfman image build"))])])
            ),
            ("os", .string(input.os)),
            ("rootfs", .fields([("diff_ids", .array([.string(diffID)])), ("type", .string("layers"))])),
        ])
        let configDescriptor = try blobs.add(config.canonical, mediaType: ociConfigType)
        let manifest = JSONValue.fields([
            ("schemaVersion", .integer(2)), ("mediaType", .string(ociManifestType)),
            ("config", configDescriptor.json()), ("layers", .array([layerDescriptor.json()])),
        ])
        return try blobs.add(manifest.canonical, mediaType: ociManifestType)
    }

    static func readObject(_ path: String) throws(BuildFailure) -> [UInt8] {
        let fd: OwnedFD
        do { fd = try Syscalls.open(path, O_RDONLY | O_CLOEXEC) } catch {
            throw BuildFailure(message: "cannot read \(path): \(error.errno)")
        }
        var info = stat()
        guard fstat(fd.rawValue, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            throw BuildFailure(message: "\(path) is not a regular file")
        }
        guard let bytes = Syscalls.readAll(fd.rawValue) else {
            throw BuildFailure(message: "cannot read \(path): \(Errno.current)")
        }
        return bytes
    }

    /// A ustar archive of regular files, every time stamp `timestamp`, owned by 0:0 with no owner names, ended
    /// by two zero blocks. Written here rather than with libarchive's tar writer: that one's object file also
    /// holds the table of every format libarchive writes (7-Zip, XAR, ZIP, ...), whose code needs libxml2,
    /// liblzma, libbz2 and nettle, which this static link leaves out on purpose (Package.swift).
    static func tarBytes(
        _ entries: [(name: String, bytes: [UInt8], mode: UInt32)],
        timestamp: Int64
    ) throws(BuildFailure) -> [UInt8] {
        var out: [UInt8] = []
        for (name, bytes, mode) in entries {
            guard name.utf8.count < 100 else { throw BuildFailure(message: "file name \(name) is over 99 bytes") }
            var header = [UInt8](repeating: 0, count: 512)
            func put(_ text: String, at offset: Int) {
                for (index, byte) in text.utf8.enumerated() { header[offset + index] = byte }
            }
            func octal(_ value: Int64, width: Int) -> String {
                let digits = String(value, radix: 8)
                return String(repeating: "0", count: max(0, width - 1 - digits.count)) + digits
            }
            put(name, at: 0)
            put(octal(Int64(mode), width: 8), at: 100)
            put(octal(0, width: 8), at: 108)
            put(octal(0, width: 8), at: 116)
            put(octal(Int64(bytes.count), width: 12), at: 124)
            put(octal(timestamp, width: 12), at: 136)
            put("        ", at: 148)
            put("0", at: 156)
            put("ustar\u{0}00", at: 257)
            let sum = header.reduce(0) { $0 + Int64($1) }
            put(octal(sum, width: 7) + "\u{0} ", at: 148)
            out += header
            out += bytes
            out += [UInt8](repeating: 0, count: (512 - bytes.count % 512) % 512)
        }
        return out + [UInt8](repeating: 0, count: 1024)
    }

    /// `bytes` gzip-compressed by libarchive (its raw format and gzip filter), with no name or time stamp in
    /// the gzip header and no padding after the stream.
    static func gzipBytes(_ bytes: [UInt8]) throws(BuildFailure) -> [UInt8] {
        guard let archive = archive_write_new() else { throw BuildFailure(message: "libarchive cannot start") }
        defer { archive_write_free(archive) }
        guard archive_write_set_format_raw(archive) == ARCHIVE_OK,
            archive_write_add_filter_gzip(archive) == ARCHIVE_OK,
            archive_write_set_filter_option(archive, "gzip", "timestamp", nil) == ARCHIVE_OK,
            archive_write_set_bytes_in_last_block(archive, 1) == ARCHIVE_OK
        else { throw BuildFailure(message: "libarchive: \(archiveError(archive))") }
        // Deflate never grows data by more than a few bytes per 16 KiB block.
        var output = [UInt8](repeating: 0, count: bytes.count + bytes.count / 100 + (64 << 10))
        var used = 0
        let status: Int32 = output.withUnsafeMutableBytes { buffer in
            guard archive_write_open_memory(archive, buffer.baseAddress, buffer.count, &used) == ARCHIVE_OK,
                let entry = archive_entry_new()
            else { return ARCHIVE_FATAL }
            defer { archive_entry_free(entry) }
            archive_entry_set_filetype(entry, UInt32(carchive_regular_file()))
            archive_entry_set_size(entry, la_int64_t(bytes.count))
            guard archive_write_header(archive, entry) == ARCHIVE_OK else { return ARCHIVE_FATAL }
            let written = bytes.withUnsafeBytes { archive_write_data(archive, $0.baseAddress, $0.count) }
            guard written == bytes.count else { return ARCHIVE_FATAL }
            return archive_write_close(archive)
        }
        guard status == ARCHIVE_OK else { throw BuildFailure(message: "libarchive: \(archiveError(archive))") }
        return Array(output[..<used])
    }

    static func digest(_ bytes: [UInt8]) throws(BuildFailure) -> String {
        do { return try SHA256Hasher.digest(bytes) } catch { throw BuildFailure(message: "\(error)") }
    }

    /// Writes (or adds to) the layout at `directory`: the blobs, `oci-layout`, and `index.json` with `top` under
    /// `tag` (an entry of another tag is kept; one of the same tag is replaced).
    static func writeLayout(
        _ blobs: BlobSet,
        top: Descriptor,
        tag: String,
        directory: String,
        merge: Bool
    ) throws(BuildFailure) {
        for path in [directory, directory + "/blobs", directory + "/blobs/sha256"] {
            if case .failure(let error) = Syscalls.mkdir(path, 0o755), error.errno != .fileExists {
                throw BuildFailure(message: "cannot make \(path): \(error.errno)")
            }
        }
        for (digest, bytes) in blobs.items {
            try writeFile(directory + "/blobs/sha256/" + digest.dropFirst(7), bytes)
        }
        try writeFile(directory + "/oci-layout", JSONValue.fields([("imageLayoutVersion", .string("1.0.0"))]).canonical)
        var entries: [JSONValue] = []
        // An existing index keeps its other images; one this build cannot read is an error, not overwritten.
        let indexPath = directory + "/index.json"
        if merge, access(indexPath, F_OK) == 0 {
            guard let old = readSmallFile(at: AT_FDCWD, indexPath, limit: 4 << 20),
                case .array(let manifests)? = (try? JSONDecoder().decode(JSONValue.self, from: Data(old)))
                    .flatMap({ if case .object(let fields) = $0 { fields["manifests"] } else { nil } })
            else { throw BuildFailure(message: "\(indexPath) is not an OCI index this build can add to") }
            for manifest in manifests {
                guard case .object(let entry) = manifest else { continue }
                if case .object(let annotations)? = entry["annotations"],
                    annotations["org.opencontainers.image.ref.name"] == .string(tag)
                {
                    continue
                }
                entries.append(manifest)
            }
        }
        entries.append(top.json(annotations: ["org.opencontainers.image.ref.name": tag]))
        let index = JSONValue.fields([
            ("schemaVersion", .integer(2)), ("mediaType", .string(ociIndexType)), ("manifests", .array(entries)),
        ])
        try writeFile(directory + "/index.json", index.canonical)
    }

    /// Writes an OCI archive: the layout as a plain tar, entries in a fixed order, every time stamp `timestamp`.
    static func writeArchive(
        _ blobs: BlobSet,
        top: Descriptor,
        tag: String,
        file: String,
        timestamp: Int64
    ) throws(BuildFailure) {
        let index = JSONValue.fields([
            ("schemaVersion", .integer(2)), ("mediaType", .string(ociIndexType)),
            ("manifests", .array([top.json(annotations: ["org.opencontainers.image.ref.name": tag])])),
        ])
        var entries: [(name: String, bytes: [UInt8], mode: UInt32)] = [
            ("oci-layout", JSONValue.fields([("imageLayoutVersion", .string("1.0.0"))]).canonical, 0o644),
            ("index.json", index.canonical, 0o644),
        ]
        for (digest, bytes) in blobs.items { entries.append(("blobs/sha256/" + digest.dropFirst(7), bytes, 0o644)) }
        try writeFile(file, try tarBytes(entries, timestamp: timestamp))
    }

    /// Writes `bytes` to a temporary name beside `path` and renames it into place.
    static func writeFile(_ path: String, _ bytes: [UInt8]) throws(BuildFailure) {
        if case .failure(let error) = Syscalls.writeFileAtomically(path, bytes, mode: 0o644) {
            throw BuildFailure(message: "cannot write \(path): \(error.errno)")
        }
    }

    static func iso8601(_ seconds: Int64) -> String {
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T"
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))Z"
    }

    /// The blobs of one build, by digest, in the order they were made.
    struct BlobSet {
        var items: [(digest: String, bytes: [UInt8])] = []

        mutating func add(_ bytes: [UInt8], mediaType: String) throws(BuildFailure) -> Descriptor {
            let digest = try ImageWriter.digest(bytes)
            if !items.contains(where: { $0.digest == digest }) { items.append((digest, bytes)) }
            return Descriptor(mediaType: mediaType, digest: digest, size: bytes.count)
        }
    }

    struct Descriptor {
        var mediaType: String
        var digest: String
        var size: Int

        func json(platform: JSONValue? = nil, annotations: [String: String] = [:]) -> JSONValue {
            var fields: [(String, JSONValue)] = []
            if !annotations.isEmpty {
                fields.append(
                    ("annotations", .object(annotations.mapValues { .string($0) }))
                )
            }
            fields += [("digest", .string(digest)), ("mediaType", .string(mediaType))]
            if let platform { fields.append(("platform", platform)) }
            fields.append(("size", .integer(Int64(size))))
            return .object(Dictionary(uniqueKeysWithValues: fields))
        }
    }
}

extension JSONValue {
    /// An object from key-value pairs (written with its keys sorted, as every JSONValue is).
    static func fields(_ pairs: [(String, JSONValue)]) -> JSONValue {
        .object(Dictionary(uniqueKeysWithValues: pairs))
    }
}

/// Why an image could not be built.
package struct BuildFailure: Error {
    package var message: String
}
