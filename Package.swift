// swift-tools-version:6.0
// The bpfman daemon, its CLI and its loader engine. See README.md for the module graph.
import PackageDescription

/// One settings array for every Swift target (STYLE.md convention 1).
let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let logging: Target.Dependency = .product(name: "Logging", package: "swift-log")

/// How the `bpfman` executable is linked, for a daemon that keeps few pages resident (README, "BpfmanServer", RSS).
/// lld from the Swift toolchain, because it can pack relocations and order functions; no dynamic export of our
/// own symbols (`--static-swift-stdlib` asks for it, nothing here looks them up), which leaves the dynamic
/// symbol table with the imports only; relative relocations packed (DT_RELR, glibc 2.36) instead of 24 bytes
/// each. Release builds also place the functions the daemon runs first in .text, in the order of
/// packaging/bpfman.order (scripts/profile-order.sh); names no longer in the binary are skipped.
let daemonLinkerSettings: [LinkerSetting] = [
    .unsafeFlags([
        "-use-ld=lld", "-Xlinker", "--no-export-dynamic", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs",
    ]),
    .unsafeFlags(
        [
            "-Xlinker", "--symbol-ordering-file=\(Context.packageDirectory)/packaging/bpfman.order",
            "-Xlinker", "--no-warn-symbol-ordering",
        ],
        .when(configuration: .release)
    ),
]

let package = Package(
    name: "swift-bpfman",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "bpfman", targets: ["bpfman"]),
        .executable(name: "protocat", targets: ["protocat"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        // C system libraries: each is a module map over one shim header.
        .systemLibrary(name: "CNghttp2", pkgConfig: "libnghttp2", providers: [.apt(["libnghttp2-dev"])]),
        .systemLibrary(
            name: "CBPF",
            pkgConfig: "libbpf",
            providers: [.apt(["libbpf-dev", "libxdp-dev", "libelf-dev"])]
        ),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        // libcurl's header only: the fetcher opens libcurl.so.4 with dlopen (the daemon, the same executable,
        // never maps it).
        .systemLibrary(name: "CCurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        // libarchive linked statically (its module map names libarchive.a): the fetcher reads tar, gzip and zstd
        // only, and those parts need zlib and libzstd; the shared library would also load libxml2, ICU's 31 MB
        // data library and five compression and ACL libraries for formats it never reads (README, "Kubernetes").
        .systemLibrary(name: "CArchive", providers: [.apt(["libarchive-dev", "libzstd-dev"])]),
        // Linux calls that the Glibc module leaves out (they need _GNU_SOURCE); header only.
        .systemLibrary(name: "CLinux"),
        // libcrypto's SHA-256, dlopen'ed on first use (a daemon that pulls no image never maps libcrypto).
        .systemLibrary(name: "CLazyCrypto"),
        // libcrypto's headers only (X.509, EVP signatures): the signature verifier opens libcrypto.so.3 with dlopen
        // when it first needs it, so the daemon, the same executable, never maps it for that.
        .systemLibrary(name: "COpenSSL", providers: [.apt(["libssl-dev"])]),

        // The wire contract: generated messages plus a hand-written codec. No dependencies at all.
        .target(name: "Proto", swiftSettings: swiftSettings),
        // Turns proto/*.proto into Sources/Proto/Generated. A leaf nothing imports.
        .executableTarget(name: "ProtoGen", swiftSettings: swiftSettings),
        // Binary protobuf <-> canonical JSON on stdin/stdout, for people and tests.
        .executableTarget(name: "protocat", dependencies: ["Proto"], swiftSettings: swiftSettings),

        // The one system-call layer every module uses: errno as `Errno`, EINTR-retrying calls, the owned fd, the
        // lookup of the bpfman executable. Glibc only.
        .target(name: "SystemCalls", swiftSettings: swiftSettings),

        // gRPC over HTTP/2 on libnghttp2. Knows nothing of bpfman.
        .target(name: "H2Transport", dependencies: ["SystemCalls", "CNghttp2", logging], swiftSettings: swiftSettings),
        // A one-method echo server on H2Transport for Interop/bench.
        .executableTarget(
            name: "h2-echo-server",
            dependencies: ["H2Transport", logging],
            swiftSettings: swiftSettings
        ),

        // The loader engine on libbpf, libxdp and SQLite. Knows nothing of gRPC.
        .target(
            name: "BpfmanEngine",
            dependencies: ["SystemCalls", "CBPF", "CSQLite", logging],
            swiftSettings: swiftSettings
        ),

        // OCI bytecode images, the daemon's side: references, the cache, pull policies, credentials, one download
        // per reference, and the bpfman-image fetcher process it starts. Knows nothing of gRPC, the codec or the engine.
        .target(
            name: "BpfmanImages",
            dependencies: ["SystemCalls", "CLinux", "CLazyCrypto", logging],
            swiftSettings: swiftSettings
        ),
        // Cosign keyless verification (Sigstore bundles, legacy signatures, Rekor entries, the trust root) on
        // libcrypto, which COpenSSL opens with dlopen: only a fetcher that finds a signature maps it.
        .target(
            name: "BpfmanSigstore",
            dependencies: ["BpfmanImages", "COpenSSL"],
            swiftSettings: swiftSettings
        ),
        // The fetcher's side: the registry client on libcurl, OCI layouts, layers read with libarchive, signatures,
        // and the fetcher process itself (`bpfman` run as `bpfman-image`, FetcherProcess.swift), which the daemon
        // starts for each pull. libcurl is opened with dlopen there, so the daemon never maps it.
        .target(
            name: "BpfmanImageFetch",
            dependencies: ["BpfmanImages", "BpfmanSigstore", "SystemCalls", "CCurl", "CArchive", "CLinux"],
            swiftSettings: swiftSettings
        ),

        // The daemon and the CLI: joins Proto, H2Transport, BpfmanEngine and BpfmanImages.
        .target(
            name: "BpfmanServer",
            dependencies: [
                "Proto", "H2Transport", "BpfmanEngine", "BpfmanImages", "SystemCalls", logging,
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        // The one installed executable: the daemon and the CLI, and, under the names the daemon gives them in
        // argv[0], the image fetcher (`bpfman-image`) and the container_pid helper (`bpfman-ns`).
        .executableTarget(
            name: "bpfman",
            dependencies: ["BpfmanServer", "BpfmanImageFetch", "BpfmanEngine"],
            swiftSettings: swiftSettings,
            linkerSettings: daemonLinkerSettings
        ),
        // Engine benchmark (load+pin vs plain libbpf, List, TCX attach+detach); not a test.
        .executableTarget(
            name: "bpfman-engine-bench",
            dependencies: ["BpfmanEngine", "CBPF"],
            swiftSettings: swiftSettings
        ),

        // Tests. TestSupport holds helpers and the eBPF fixture sources shared by every suite.
        .target(name: "TestSupport", dependencies: [logging], path: "Tests/TestSupport", swiftSettings: swiftSettings),
        .testTarget(
            name: "ProtoTests",
            dependencies: ["Proto", "TestSupport"],
            exclude: ["FailCases"],  // hostile inputs, read by path from FailCasesTests
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SystemCallsTests",
            dependencies: ["SystemCalls", "TestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "H2TransportTests",
            dependencies: ["H2Transport", "SystemCalls", "CNghttp2", "TestSupport", logging],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "BpfmanEngineTests",
            dependencies: ["BpfmanEngine", "SystemCalls", "CBPF", "TestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "BpfmanImagesTests",
            dependencies: ["BpfmanImages", "BpfmanImageFetch", "BpfmanSigstore", "TestSupport", logging],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "BpfmanServerTests",
            dependencies: [
                "BpfmanServer", "Proto", "BpfmanEngine", "BpfmanImages", "H2Transport", "TestSupport", logging,
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "ArchitectureTests", dependencies: ["TestSupport"], swiftSettings: swiftSettings),
    ]
)

// libFuzzer targets, one per entry point of untrusted bytes (Fuzz/README.md). Declared only when BPFMAN_FUZZ is set,
// by scripts/fuzz.sh, which builds them into .build-fuzz with -sanitize=fuzzer,address: a plain `swift build` never
// sees them, and a fuzz build never touches .build.
if Context.environment["BPFMAN_FUZZ"] != nil {
    let fuzzTargets: [(name: String, dependencies: [Target.Dependency])] = [
        ("h2", ["H2Transport", "Proto", logging]),
        ("proto", ["Proto"]),
        ("json", ["Proto"]),
        ("config", ["BpfmanServer"]),
        ("csi", ["BpfmanServer", "Proto", "H2Transport"]),
        ("manifest", ["BpfmanImageFetch", "BpfmanImages"]),
        ("layer", ["BpfmanImageFetch", "BpfmanImages"]),
        ("auth", ["BpfmanImageFetch"]),
        ("reference", ["BpfmanImages"]),
        ("elf", ["BpfmanEngine", "SystemCalls"]),
        ("signature", ["BpfmanImageFetch", "BpfmanImages", "BpfmanSigstore"]),
    ]
    package.targets.append(.target(name: "FuzzSupport", path: "Fuzz/Support", swiftSettings: swiftSettings))
    for target in fuzzTargets {
        package.targets.append(
            .executableTarget(
                name: "fuzz-\(target.name)",
                dependencies: target.dependencies + ["FuzzSupport"],
                path: "Fuzz/Targets/\(target.name)",
                swiftSettings: swiftSettings
            )
        )
    }
}
