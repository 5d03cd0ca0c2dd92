import BpfmanImages
import Foundation
import Logging
import Synchronization
import TestSupport
import Testing

/// The object check the tests give the store: what the engine checks of an ELF header (SPEC §8.1), written
/// here so these tests do not depend on the engine. Returns why `bytes` are not a BPF object for this machine.
let bpfObjectCheck: @Sendable ([UInt8]) -> String? = { bytes in
    guard bytes.count >= 64, bytes.starts(with: [0x7f, 0x45, 0x4c, 0x46]) else { return "not an ELF file" }
    guard bytes[4] == 2 else { return "not a 64-bit ELF file" }
    guard bytes[5] == 1 else { return "not little-endian (EI_DATA \(bytes[5]))" }
    let type = UInt16(bytes[16]) | UInt16(bytes[17]) << 8
    let machine = UInt16(bytes[18]) | UInt16(bytes[19]) << 8
    guard machine == 247 else { return "e_machine is \(machine), not EM_BPF (247)" }
    guard type == 1 else { return "e_type is \(type), not ET_REL" }
    return nil
}

/// The fixture objects the images carry.
enum Objects {
    /// `count_kill` (tracepoint) and its `counter` map.
    static func tracepoint() throws -> (path: String, bytes: [UInt8]) {
        let path = try BPFFixtures.object("tracepoint_counter")
        return (path, try readBytes(path))
    }

    /// `xdp_count_pass`/`xdp_count_drop` and `xdp_hits`: a second object, different from the first.
    static func xdp() throws -> (path: String, bytes: [UInt8]) {
        let path = try BPFFixtures.object("xdp_counter")
        return (path, try readBytes(path))
    }

    static let tracepointPrograms = ["count_kill": "tracepoint"]
    static let tracepointMaps = ["counter": "array"]

    /// The usual test image: the tracepoint object with its `io.ebpf.programs` and `io.ebpf.maps` labels.
    static func tracepointImage() throws -> TestImage {
        try TestImage.bytecode(
            objectAt: tracepoint().path,
            programs: tracepointPrograms,
            maps: tracepointMaps
        )
    }
}

/// A temporary directory for one test: the image cache, layouts and archives live under it.
struct Workspace {
    let root: String
    let log = LogRecorder()

    /// The image cache directory the stores use.
    var cache: String { root + "/cache" }

    /// A fresh layout directory `name` under the workspace.
    func layout(_ name: String = "layout") throws -> OCILayout {
        try OCILayout(directory: root + "/" + name)
    }

    /// A layout holding `image` tagged `tag`.
    func layout(with image: TestImage, tag: String = "v1", name: String = "layout") throws -> OCILayout {
        let layout = try layout(name)
        try layout.add(image, tag: tag)
        return layout
    }

    /// A store on the workspace's cache (a second call is a restart: a new store on the same directory).
    func store(
        signing: SigningPolicy = SigningPolicy(),
        environment: [String: String] = [:],
        limits: ImageLimits = ImageLimits(),
        runtimeDirectory: String = "/run/bpfman"
    ) throws -> ImageStore {
        try ImageStore(
            directory: cache,
            signing: signing,
            environment: environment,
            runtimeDirectory: runtimeDirectory,
            limits: limits,
            userAgent: "bpfman-images-tests",
            logger: log.makeLogger(label: "bpfman.images.test"),
            objectCheck: bpfObjectCheck
        )
    }

    /// Everything in the cache directory, dot-names included (leftovers of a pull would be `.pull-*`, `.new-*`).
    func cacheContents() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: cache)) ?? []).sorted()
    }

    /// `metadata.json` of the entry holding `image`.
    func metadata(of image: CachedImage) throws -> [String: Any] {
        let path = URL(fileURLWithPath: image.objectPath).deletingLastPathComponent().path + "/metadata.json"
        let object = try JSONSerialization.jsonObject(with: Data(try readBytes(path)))
        return try #require(object as? [String: Any])
    }

    /// Every byte of every file under the cache, with its path.
    func cacheFiles() -> [(path: String, bytes: [UInt8])] {
        guard let walker = FileManager.default.enumerator(atPath: cache) else { return [] }
        var files: [(String, [UInt8])] = []
        for case let relative as String in walker {
            let path = cache + "/" + relative
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue {
                files.append((path, (try? readBytes(path)) ?? []))
            }
        }
        return files
    }
}

/// Runs `body` with a fresh workspace, removed afterwards.
func withWorkspace<T>(_ body: (Workspace) async throws -> T) async throws -> T {
    let workspace = Workspace(root: try makeTemporaryDirectory(prefix: "images-test"))
    defer { try? FileManager.default.removeItem(atPath: workspace.root) }
    return try await body(workspace)
}

/// Expects `body` to fail with `code` and a message containing `fragment`; returns the error.
@discardableResult
func expectImageError(
    _ code: ImageError.Code,
    _ fragment: String,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () async throws -> CachedImage
) async -> ImageError? {
    do {
        let image = try await body()
        Issue.record(
            "expected \(code) \"\(fragment)\", got an image at \(image.objectPath)",
            sourceLocation: sourceLocation
        )
        return nil
    } catch let error as ImageError {
        #expect(error.code == code, "\(error.code): \(error.message)", sourceLocation: sourceLocation)
        #expect(
            error.message.contains(fragment),
            "\"\(error.message)\" does not contain \"\(fragment)\"",
            sourceLocation: sourceLocation
        )
        return error
    } catch {
        Issue.record("expected an ImageError, got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// Expects the cache to hold no entry and no leftover of a pull.
func expectEmptyCache(_ workspace: Workspace, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(
        workspace.cacheContents() == [],
        "the cache holds \(workspace.cacheContents())",
        sourceLocation: sourceLocation
    )
}

/// Expects `image` to be a whole cache entry holding `object`.
func expectEntry(
    _ image: CachedImage,
    holds object: [UInt8],
    in workspace: Workspace,
    sourceLocation: SourceLocation = #_sourceLocation
) throws {
    #expect(image.objectPath.hasPrefix(workspace.cache + "/sha256_"), sourceLocation: sourceLocation)
    #expect(
        try readBytes(image.objectPath) == object,
        "bytecode.o differs from the fixture",
        sourceLocation: sourceLocation
    )
}

/// The `auths` file of SPEC §8.4 holding `login` for `registry`.
func authFile(at path: String, registry: String, login: RegistryLogin) throws {
    let auth = Data("\(login.username):\(login.password)".utf8).base64EncodedString()
    try writeBytes(Array(#"{"auths":{"\#(registry)":{"auth":"\#(auth)"}}}"#.utf8), to: path)
}
