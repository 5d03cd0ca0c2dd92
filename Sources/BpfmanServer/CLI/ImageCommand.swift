internal import ArgumentParser
internal import BpfmanEngine
internal import BpfmanImages
internal import FoundationEssentials
internal import H2Transport
internal import Logging
internal import Proto

extension BpfmanCommand {
    /// `bpfman image …`, shared by both trees: the Rust-era `pull` and the Go-era verbs.
    ///
    /// To add a verb, write its command in a file of its own and name it in `subcommands` below.
    struct ImageCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "image",
            abstract: "Manage bytecode images.",
            subcommands: [Pull.self, Inspect.self, Verify.self, Build.self, GenerateBuildArgs.self, VerifyBundle.self]
        )

        /// `bpfman image pull -i URL` (Rust era): into the daemon's cache, or the in-process engine's.
        struct Pull: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Pull a bytecode image into the daemon's cache.")
            @Option(name: [.short, .customLong("image-url")], help: "The image reference.") var imageURL: String
            @Option(name: [.short, .customLong("registry-auth")], help: "BASE64(user:password).")
            var registryAuth: String?
            @Option(name: [.short, .customLong("pull-policy")], help: "Always, IfNotPresent or Never.")
            var pullPolicy: String = "IfNotPresent"
            @OptionGroup var client: ClientOptions

            func run() async throws {
                var request = Bpfman_V1_PullBytecodeRequest()
                request.image = try bytecodeImage(imageURL, pullPolicy, registryAuth)
                _ = try await client.connect().call(
                    Bpfman_V1_Bpfman.Method.pullBytecode.path,
                    request,
                    Bpfman_V1_PullBytecodeResponse.self
                )
                if client.output == .json { emit("{}") }
            }
        }

        /// `bpfman image inspect <image>` (Go era): what the image says about itself, as indented JSON. Works on
        /// the image cache directly (pulling when the policy says so); no daemon or runtime directory involved.
        struct Inspect: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Describe a bytecode image from its manifests and config labels, as indented JSON.",
                discussion: """
                    Prints the reference, the digest and media type of what it names, and for an image its program
                    and map labels and layers, for an index each platform's manifest with its labels and layers.
                    Only manifests and configs are read: no layer is downloaded and nothing is cached.

                    Example:
                      bpfman image inspect quay.io/bpfman-bytecode/xdp_pass:latest
                    """
            )
            @Argument(help: "The image reference (registry, oci:<dir>[:tag] or oci-archive:<file>[:tag]).")
            var image: String
            @Option(name: .customLong("registry-auth"), help: "BASE64(user:password) (default $BPFMAN_REGISTRY_AUTH).")
            var registryAuth: String?
            @OptionGroup var connection: ConnectionOptions

            func run() async throws {
                let request = try bytecodeImage(
                    image,
                    "IfNotPresent",
                    registryAuth ?? ProcessInfo.processInfo.environment["BPFMAN_REGISTRY_AUTH"]
                )
                let config = try imageConfig(connection)
                do {
                    let store = try imageStore(connection, signing: config.signingPolicy)
                    let inspection = try await store.inspect(
                        url: request.url,
                        username: request.username.isEmpty ? nil : request.username,
                        password: request.password.isEmpty ? nil : request.password
                    )
                    printJSON(inspectionJSON(inspection))
                } catch {
                    throw ClientError(status: error.grpcStatus)
                }
            }
        }
    }
}

/// Upstream's `ImageInspection` JSON: `reference`, `digest`, `media_type`, then `programs`, `maps`, `layers` of an
/// image or `manifests` of an index (each with `platform`), empty members left out as Go's `omitempty` does.
private func inspectionJSON(_ inspection: ImageInspection) -> String {
    func labels(_ map: [String: String]?) -> String? {
        guard let map, !map.isEmpty else { return nil }
        return BytecodeImagePlan.labelJSON(map)
    }
    func descriptors(_ layers: [ImageInspection.DescriptorSummary]?) -> String? {
        guard let layers, !layers.isEmpty else { return nil }
        return jsonArray(
            layers.map {
                jsonObject([
                    ("digest", jsonString($0.digest)), ("media_type", jsonString($0.mediaType)), ("size", "\($0.size)"),
                ])
            }
        )
    }
    let manifests = inspection.manifests.flatMap { list -> String? in
        list.isEmpty
            ? nil
            : jsonArray(
                list.map { m in
                    jsonObject([
                        ("digest", jsonString(m.digest)), ("media_type", jsonString(m.mediaType)),
                        ("size", "\(m.size)"),
                        ("platform", m.platform.map(jsonString)), ("programs", labels(m.programs)),
                        ("maps", labels(m.maps)), ("layers", descriptors(m.layers)),
                    ])
                }
            )
    }
    return jsonObject([
        ("reference", jsonString(inspection.reference)), ("digest", jsonString(inspection.digest)),
        ("media_type", jsonString(inspection.mediaType)), ("programs", labels(inspection.programs)),
        ("maps", labels(inspection.maps)), ("layers", descriptors(inspection.layers)), ("manifests", manifests),
    ])
}

/// The daemon's configuration (`--config`, `$BPFMAN_CONFIG`, else the default file) for image commands.
func imageConfig(_ connection: ConnectionOptions) throws(ClientError) -> DaemonConfig {
    do {
        return try BpfmanCommand.Serve.loadConfig(
            explicit: connection.config ?? ProcessInfo.processInfo.environment["BPFMAN_CONFIG"]
        )
    } catch {
        throw ClientError(plain: error.message, code: .invalidArgument)
    }
}

/// An image store as the daemon would open it, on `directory` (default: the image cache of `connection`).
func imageStore(
    _ connection: ConnectionOptions,
    signing: SigningPolicy,
    directory: String? = nil
) throws(ImageError) -> ImageStore {
    try ImageStore(
        directory: directory ?? connection.imageCacheDirectory ?? ServeDefaults.imageCacheDirectory,
        signing: signing,
        environment: ProcessInfo.processInfo.environment,
        runtimeDirectory: connection.runtimeDirectory
            ?? ProcessInfo.processInfo.environment["BPFMAN_RUNTIME_DIR"]
            ?? ServeDefaults.runtimeDirectory,
        userAgent: "bpfman/\(BpfmanVersion.string)",
        logger: Logger(label: "bpfman"),
        objectCheck: { ELFFile.bpfObjectProblem(header: Array($0.prefix(64))) }
    )
}
