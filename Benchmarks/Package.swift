// swift-tools-version:6.0
// Codec benchmark: our Proto module against swift-protobuf 1.39 on the same bpfman messages.
// A separate package so the main build never resolves swift-protobuf (STYLE.md section 1).
//
// Our generated API is `package`-scoped, which another package cannot see, so instead of
// `.package(path: "../")` this package compiles the Proto sources itself through the symlink
// Sources/Proto -> ../../Sources/Proto (the same files, built in release mode here).
//
//   cd Benchmarks && swift run -c release CodecBenchmark
import PackageDescription

let package = Package(
    name: "CodecBenchmark",
    dependencies: [
        .package(url: "https://github.com/apple/swift-protobuf.git", exact: "1.39.0")
    ],
    targets: [
        .target(name: "Proto", path: "Sources/Proto", swiftSettings: [.swiftLanguageMode(.v6)]),
        // protoc --swift_out (protoc-gen-swift 1.39.0, --swift_opt=Visibility=Public) of proto/bpfman.proto.
        .target(
            name: "SwiftProtobufMessages",
            dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")]
        ),
        .executableTarget(
            name: "CodecBenchmark",
            dependencies: ["Proto", "SwiftProtobufMessages", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)
