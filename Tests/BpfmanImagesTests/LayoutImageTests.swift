import BpfmanImages
import Foundation
import TestSupport
import Testing

/// Images read from an OCI layout on this host (`oci:<dir>[:<tag>]`, `oci-archive:<file>[:<tag>]`, SPEC §8.2)
/// and what their layers may hold (SPEC §8.1). Layers go through the same reader as a registry's, so the
/// content rules are tried here without a network; RegistryTests repeats some of them through a real registry.
@Suite(.enabled(if: RegistryTools.gzip != nil, "needs gzip to build image layers"), .timeLimit(.minutes(2)))
struct LayoutImageTests {
    @Test func ociLayoutWithTagResolves() async throws {
        try await withWorkspace { workspace in
            let layout = try workspace.layout()
            let manifest = try layout.add(try Objects.tracepointImage(), tag: "v1")
            let store = try workspace.store()
            let image = try await store.resolve(url: "oci:\(layout.directory):v1", policy: .ifNotPresent)
            try expectEntry(image, holds: try Objects.tracepoint().bytes, in: workspace)
            #expect(image.reference == "oci:\(layout.directory):v1")
            #expect(image.digest == manifest.digest)
            #expect(image.programs == Objects.tracepointPrograms)
            #expect(image.maps == Objects.tracepointMaps)
        }
    }

    @Test func ociLayoutWithOneImageResolvesWithoutATag() async throws {
        try await withWorkspace { workspace in
            let layout = try workspace.layout(with: try Objects.tracepointImage())
            let image = try await workspace.store().resolve(url: "oci:\(layout.directory)", policy: .always)
            try expectEntry(image, holds: try Objects.tracepoint().bytes, in: workspace)
        }
    }

    @Test func ociLayoutWithTwoImagesNeedsATag() async throws {
        try await withWorkspace { workspace in
            let layout = try workspace.layout()
            try layout.add(try Objects.tracepointImage(), tag: "one")
            try layout.add(try TestImage.bytecode(objectAt: Objects.xdp().path), tag: "two")
            let store = try workspace.store()
            await expectImageError(.internal, "holds 2 images; name one with :<tag>") {
                try await store.resolve(url: "oci:\(layout.directory)", policy: .always)
            }
            let two = try await store.resolve(url: "oci:\(layout.directory):two", policy: .always)
            try expectEntry(two, holds: try Objects.xdp().bytes, in: workspace)
        }
    }

    @Test func ociLayoutWithoutTheTagIsNotFound() async throws {
        try await withWorkspace { workspace in
            let layout = try workspace.layout(with: try Objects.tracepointImage(), tag: "v1")
            let store = try workspace.store()
            let url = "oci:\(layout.directory):v2"
            let error = await expectImageError(.notFound, "not found") {
                try await store.resolve(url: url, policy: .always)
            }
            #expect(error?.message == "image \(url) not found")
            await expectImageError(.notFound, "not found") {
                try await store.resolve(url: "oci:\(workspace.root)/missing:v1", policy: .always)
            }
            expectEmptyCache(workspace)
        }
    }

    @Test func ociArchiveResolves() async throws {
        try await withWorkspace { workspace in
            let layout = try workspace.layout()
            let manifest = try layout.add(try Objects.tracepointImage(), tag: "v1")
            try layout.add(try TestImage.bytecode(objectAt: Objects.xdp().path), tag: "v2")
            let archive = workspace.root + "/image.tar"
            try layout.writeArchive(to: archive)
            // The archive is all there is: the layout directory is gone.
            try FileManager.default.removeItem(atPath: layout.directory)
            let store = try workspace.store()
            let image = try await store.resolve(url: "oci-archive:\(archive):v1", policy: .ifNotPresent)
            try expectEntry(image, holds: try Objects.tracepoint().bytes, in: workspace)
            #expect(image.digest == manifest.digest)
            #expect(image.reference == "oci-archive:\(archive):v1")
            let other = try await store.resolve(url: "oci-archive:\(archive):v2", policy: .ifNotPresent)
            try expectEntry(other, holds: try Objects.xdp().bytes, in: workspace)
            #expect(workspace.cacheContents().count == 2)
            await expectImageError(.notFound, "not found") {
                try await store.resolve(url: "oci-archive:\(workspace.root)/missing.tar:v1", policy: .always)
            }
        }
    }

    /// A blob whose bytes no longer match its digest (changed on disk after the layout was written).
    @Test func ociLayoutWithATamperedBlobIsRefused() async throws {
        try await withWorkspace { workspace in
            let object = try Objects.tracepoint().bytes
            let layout = try workspace.layout()
            let image = TestImage(layers: [.bare(object)])
            try layout.add(image, tag: "v1")
            let blob = "\(layout.directory)/blobs/sha256/\(sha256Hex(object))"
            var bytes = try readBytes(blob)
            bytes[bytes.count - 1] ^= 0xFF
            try writeBytes(bytes, to: blob)
            let store = try workspace.store()
            await expectImageError(.internal, "does not match its descriptor") {
                try await store.resolve(url: "oci:\(layout.directory):v1", policy: .always)
            }
            expectEmptyCache(workspace)
        }
    }

    /// Layers that hold a usable object in the forms SPEC §8.1 accepts.
    enum AcceptedLayers: String, CaseIterable, CustomStringConvertible {
        case tarGzip = "a tar.gz with the object"
        case plainTar = "an uncompressed tar"
        case bareObject = "a bare ELF object"
        case gzipBareObject = "a gzip-compressed bare ELF object"
        case objectNamedDotO = "a tar where another ELF comes first but the object is named .o"
        case objectInASubdirectory = "a tar with directories, a symlink and the object in a subdirectory"
        case objectInTheSecondLayer = "a first layer without an ELF and a second with the object"

        var description: String { rawValue }

        func layers(object: [UInt8], otherELF: [UInt8]) -> [TestLayer] {
            switch self {
            case .tarGzip: [.object(object)]
            case .plainTar: [.tar([TarEntry(name: "prog.o", contents: object)], gzip: false)]
            case .bareObject: [.bare(object)]
            case .gzipBareObject: [.bare(object, gzip: true)]
            case .objectNamedDotO:
                [
                    .tar([
                        TarEntry(name: "tool", contents: otherELF),
                        TarEntry(name: "prog.o", contents: object),
                    ])
                ]
            case .objectInASubdirectory:
                [
                    .tar([
                        TarEntry(name: "usr/", kind: .directory),
                        TarEntry(name: "usr/lib/", kind: .directory),
                        TarEntry(name: "bytecode.o", kind: .symlink(target: "/etc/passwd")),
                        TarEntry(name: "usr/lib/README", contents: Array("not an object\n".utf8)),
                        TarEntry(name: "usr/lib/prog.bpf.o", contents: object),
                    ])
                ]
            case .objectInTheSecondLayer:
                [.tar([TarEntry(name: "README", contents: Array("hello\n".utf8))]), .object(object)]
            }
        }
    }

    @Test(arguments: AcceptedLayers.allCases)
    func layerWithAnObjectResolves(_ kind: AcceptedLayers) async throws {
        try await withWorkspace { workspace in
            let object = try Objects.tracepoint().bytes
            let layers = kind.layers(object: object, otherELF: try readBytes("/bin/true"))
            let layout = try workspace.layout(with: TestImage(layers: layers))
            let image = try await workspace.store().resolve(url: "oci:\(layout.directory):v1", policy: .always)
            try expectEntry(image, holds: object, in: workspace)
            #expect(image.programs == nil)
            #expect(image.maps == nil)
        }
    }

    /// Layers that must be refused with INVALID_ARGUMENT, each with what the message says.
    enum RefusedLayers: String, CaseIterable, CustomStringConvertible {
        case dotDotEntry = "a tar with a ../x entry"
        case nestedDotDotEntry = "a tar with an a/../../x.o entry"
        case absoluteEntry = "a tar with an absolute /x.o entry"
        case noELF = "a tar without an ELF file"
        case notAnArchive = "a layer of plain text"
        case notBPF = "an x86-64 executable (/bin/true)"
        case bigEndian = "the object with EI_DATA flipped to big-endian"
        case truncatedHeader = "an ELF magic and nothing else"

        var description: String { rawValue }

        func layers(object: [UInt8]) throws -> [TestLayer] {
            switch self {
            case .dotDotEntry: [.tar([TarEntry(name: "../x", contents: object)])]
            case .nestedDotDotEntry: [.tar([TarEntry(name: "a/../../x.o", contents: object)])]
            case .absoluteEntry: [.tar([TarEntry(name: "/x.o", contents: object)])]
            case .noELF: [.tar([TarEntry(name: "bytecode.txt", contents: Array("no object here\n".utf8))])]
            case .notAnArchive: [.bare(Array("just some text, no tar and no ELF\n".utf8))]
            case .notBPF: [.object(try readBytes("/bin/true"))]
            case .bigEndian:
                [.object(object.enumerated().map { $0.offset == 5 ? 2 : $0.element })]
            case .truncatedHeader: [.object([0x7f, 0x45, 0x4c, 0x46])]
            }
        }

        var message: String {
            switch self {
            case .dotDotEntry, .nestedDotDotEntry, .absoluteEntry: "has a layer entry with an unsafe path"
            case .noELF, .notAnArchive: "does not hold a BPF object for this machine: no layer holds an ELF file"
            case .notBPF: "does not hold a BPF object for this machine: e_machine is 62"
            case .bigEndian: "does not hold a BPF object for this machine: not little-endian"
            case .truncatedHeader: "does not hold a BPF object for this machine: not an ELF file"
            }
        }
    }

    @Test(arguments: RefusedLayers.allCases)
    func layerWithoutAUsableObjectIsRefused(_ kind: RefusedLayers) async throws {
        try await withWorkspace { workspace in
            let layout = try workspace.layout(
                with: TestImage(layers: try kind.layers(object: Objects.tracepoint().bytes))
            )
            let store = try workspace.store()
            let url = "oci:\(layout.directory):v1"
            let error = await expectImageError(.invalidArgument, kind.message) {
                try await store.resolve(url: url, policy: .always)
            }
            #expect(error?.message.hasPrefix("image \(url) ") == true, "\(error?.message ?? "")")
            expectEmptyCache(workspace)
        }
    }

    /// A layer that is small compressed but expands past `limits.expanded` (a gzip bomb of zeros in front of
    /// the object) is refused before the bomb is inflated, whatever its compressed size.
    @Test func expandedCapRefusesAGzipBomb() async throws {
        try await withWorkspace { workspace in
            let object = try Objects.tracepoint().bytes
            let bomb = TestLayer.tar([
                TarEntry(name: "padding", contents: [UInt8](repeating: 0, count: 4 << 20)),
                TarEntry(name: "prog.o", contents: object),
            ])
            let layout = try workspace.layout(with: TestImage(layers: [bomb]))
            let layer = try #require(
                try FileManager.default.contentsOfDirectory(atPath: layout.directory + "/blobs/sha256").map {
                    try readBytes(layout.directory + "/blobs/sha256/" + $0).count
                }.max()
            )
            #expect(layer < 64 << 10, "the bomb should compress well: \(layer) bytes")
            var limits = ImageLimits()
            limits.expanded = 1 << 20
            let url = "oci:\(layout.directory):v1"
            await expectImageError(.invalidArgument, "has a layer that expands to more than 1048576 bytes") {
                try await workspace.store(limits: limits).resolve(url: url, policy: .always)
            }
            expectEmptyCache(workspace)
            let image = try await workspace.store().resolve(url: url, policy: .always)
            try expectEntry(image, holds: object, in: workspace)
        }
    }

    /// The entry cap holds for a bare object too, which has no size in a header.
    @Test(arguments: [false, true])
    func entryCapHoldsForABareObject(_ gzip: Bool) async throws {
        try await withWorkspace { workspace in
            let object = try Objects.tracepoint().bytes
            let layout = try workspace.layout(with: TestImage(layers: [.bare(object, gzip: gzip)]))
            var limits = ImageLimits()
            limits.entry = object.count - 1
            await expectImageError(.invalidArgument, "over the cap of \(object.count - 1) bytes") {
                try await workspace.store(limits: limits).resolve(url: "oci:\(layout.directory):v1", policy: .always)
            }
            expectEmptyCache(workspace)
            limits.entry = object.count
            let image = try await workspace.store(limits: limits).resolve(
                url: "oci:\(layout.directory):v1",
                policy: .always
            )
            try expectEntry(image, holds: object, in: workspace)
        }
    }

    /// An `oci-archive:` is unpacked as a layout and nothing else: an entry that climbs out (`../x`) or is
    /// absolute is skipped, not written.
    @Test func ociArchiveEntriesOutsideTheLayoutAreNotWritten() async throws {
        try await withWorkspace { workspace in
            let layout = try workspace.layout(with: try Objects.tracepointImage())
            let blobs = try FileManager.default.contentsOfDirectory(atPath: layout.directory + "/blobs/sha256").sorted()
            var entries = [
                TarEntry(name: "../escaped", contents: Array("outside\n".utf8)),
                TarEntry(name: "/tmp/bpfman-images-test-absolute-\(getpid())", contents: Array("absolute\n".utf8)),
                TarEntry(name: "./oci-layout", contents: try readBytes(layout.directory + "/oci-layout")),
                TarEntry(name: "./index.json", contents: try readBytes(layout.directory + "/index.json")),
                TarEntry(name: "blobs/sha256/link", kind: .symlink(target: "/etc/passwd")),
            ]
            for blob in blobs {
                entries.append(
                    TarEntry(
                        name: "./blobs/sha256/" + blob,
                        contents: try readBytes("\(layout.directory)/blobs/sha256/\(blob)")
                    )
                )
            }
            let archive = workspace.root + "/archives/image.tar"
            try FileManager.default.createDirectory(
                atPath: workspace.root + "/archives",
                withIntermediateDirectories: true
            )
            try writeBytes(tarArchive(entries), to: archive)
            let image = try await workspace.store().resolve(url: "oci-archive:\(archive):v1", policy: .always)
            try expectEntry(image, holds: try Objects.tracepoint().bytes, in: workspace)
            #expect(!FileManager.default.fileExists(atPath: workspace.root + "/escaped"))
            #expect(!FileManager.default.fileExists(atPath: "/tmp/bpfman-images-test-absolute-\(getpid())"))
            #expect(workspace.cacheContents().count == 1)
        }
    }

    /// Leftovers of an interrupted pull (`.pull-*` staging, `.new-*` entries) are removed when a store starts;
    /// whole entries stay.
    @Test func startRemovesLeftoversOfInterruptedPulls() async throws {
        try await withWorkspace { workspace in
            let layout = try workspace.layout(with: try Objects.tracepointImage())
            let image = try await workspace.store().resolve(url: "oci:\(layout.directory):v1", policy: .always)
            let entry = URL(fileURLWithPath: image.objectPath).deletingLastPathComponent().lastPathComponent
            for leftover in [".pull-AbC123/layer-0", ".new-XyZ789/bytecode.o"] {
                let path = workspace.cache + "/" + leftover
                try FileManager.default.createDirectory(
                    atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path,
                    withIntermediateDirectories: true
                )
                try writeBytes([1, 2, 3], to: path)
            }
            #expect(workspace.cacheContents() == [".new-XyZ789", ".pull-AbC123", entry])
            let restarted = try workspace.store()
            #expect(workspace.cacheContents() == [entry])
            #expect(try await restarted.resolve(url: "oci:\(layout.directory):v1", policy: .never) == image)
        }
    }

    /// An entry directory without its metadata.json is not an entry: Never does not use it, IfNotPresent
    /// pulls and replaces it.
    @Test func entryWithoutMetadataIsNotUsed() async throws {
        try await withWorkspace { workspace in
            let layout = try workspace.layout(with: try Objects.tracepointImage())
            let url = "oci:\(layout.directory):v1"
            let store = try workspace.store()
            let image = try await store.resolve(url: url, policy: .always)
            let entry = URL(fileURLWithPath: image.objectPath).deletingLastPathComponent().path
            try FileManager.default.removeItem(atPath: entry + "/metadata.json")
            try writeBytes(Array("not the object".utf8), to: image.objectPath)
            await expectImageError(.failedPrecondition, "not in cache and pull policy is Never") {
                try await store.resolve(url: url, policy: .never)
            }
            #expect(try await store.resolve(url: url, policy: .ifNotPresent) == image)
            try expectEntry(image, holds: try Objects.tracepoint().bytes, in: workspace)
            #expect(workspace.cacheContents().count == 1)
        }
    }

    @Test func legacyLabelsGiveThePrograms() async throws {
        try await withWorkspace { workspace in
            let labels = [
                "io.ebpf.program_name": "kill-counter",
                "io.ebpf.bpf_function_name": "count_kill",
                "io.ebpf.program_type": "tracepoint",
                "io.ebpf.filename": "tracepoint_counter.bpf.o",
            ]
            let image = TestImage(labels: labels, layers: [.object(try Objects.tracepoint().bytes)])
            let layout = try workspace.layout(with: image)
            let cached = try await workspace.store().resolve(url: "oci:\(layout.directory):v1", policy: .always)
            #expect(cached.programs == ["count_kill": "tracepoint"])
            #expect(cached.maps == nil)
        }
    }

    @Test(arguments: [
        ("io.ebpf.programs", "count_kill"),
        ("io.ebpf.programs", #"["count_kill"]"#),
        ("io.ebpf.programs", #"{"count_kill": 1}"#),
        ("io.ebpf.maps", "{"),
    ])
    func labelThatIsNotAJSONObjectOfStringsIsRefused(_ label: String, _ value: String) async throws {
        try await withWorkspace { workspace in
            var image = try Objects.tracepointImage()
            image.labels[label] = value
            let layout = try workspace.layout(with: image)
            let store = try workspace.store()
            let url = "oci:\(layout.directory):v1"
            let error = await expectImageError(.invalidArgument, "has an invalid \(label) label") {
                try await store.resolve(url: url, policy: .always)
            }
            #expect(error?.message.hasPrefix("image \(url) has an invalid \(label) label: ") == true)
            expectEmptyCache(workspace)
        }
    }
}
