import Foundation
import TestSupport
import Testing

@testable import Proto

/// The embedded descriptors match what protoc builds from the same files, and the lookups
/// reflection needs find files by name and by symbol.
@Suite struct DescriptorTests {
    static let protoFiles = [
        "bpfman.proto", "bpfman_ext.proto", "csi.proto", "grpc/health/v1/health.proto",
        "grpc/reflection/v1/reflection.proto", "grpc/reflection/v1alpha/reflection.proto",
    ]
    static let hasProtoc = FileManager.default.isExecutableFile(atPath: "/usr/bin/protoc")

    @Test(.enabled(if: hasProtoc, "needs protoc (apt protobuf-compiler)"))
    func sameAsProtocDescriptorSet() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("proto-desc-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("set.pb").path
        let r = try run(
            "protoc",
            ["-I", Repository.path("proto"), "-I", "/usr/include", "--include_imports", "--descriptor_set_out=\(out)"]
                + Self.protoFiles
        )
        try #require(r.status == 0, "\(r.output)")
        let set = try Google_Protobuf_FileDescriptorSet(
            serializedBytes: Array(try Data(contentsOf: URL(fileURLWithPath: out)))
        )
        #expect(set.file.count == ProtoDescriptors.files.count)
        for theirs in set.file {
            let ours = try #require(
                ProtoDescriptors.file(named: theirs.name),
                "no embedded descriptor for \(theirs.name)"
            )
            let decoded = try Google_Protobuf_FileDescriptorProto(serializedBytes: ours.serializedDescriptor)
            // Message by message, field by field: names, numbers, types, labels.
            #expect(decoded.package == theirs.package)
            #expect(decoded.dependency == theirs.dependency)
            #expect(decoded.messageType.map(\.name) == theirs.messageType.map(\.name), "\(theirs.name)")
            for (a, b) in zip(decoded.messageType, theirs.messageType) {
                #expect(
                    a.field.map { [$0.name, "\($0.number)", "\($0.type)", "\($0.label)", $0.typeName] }
                        == b.field.map { [$0.name, "\($0.number)", "\($0.type)", "\($0.label)", $0.typeName] }
                )
            }
            #expect(decoded.service == theirs.service)
            // And the whole thing, byte for byte (protoc writes fields in number order, as we do).
            #expect(ours.serializedDescriptor == theirs.serializedBytes(), "\(theirs.name) differs from protoc")
        }
    }

    @Test func lookupsForReflection() throws {
        let load = try #require(ProtoDescriptors.file(containingSymbol: "bpfman.v1.Bpfman.Load"))
        #expect(load.name == "bpfman.proto")
        #expect(ProtoDescriptors.file(containingSymbol: "bpfman.v1.ListResponse.ListResult")?.name == "bpfman.proto")
        #expect(ProtoDescriptors.file(containingSymbol: "bpfman.v1.XDP")?.name == "bpfman.proto")
        #expect(ProtoDescriptors.file(containingSymbol: "bpfman.v1.LoadRequest.bytecode")?.name == "bpfman.proto")
        #expect(ProtoDescriptors.file(containingSymbol: "csi.v1.csi_secret")?.name == "csi.proto")
        #expect(ProtoDescriptors.file(containingSymbol: "bpfman.ext.v1.Inspect")?.name == "bpfman_ext.proto")
        #expect(
            ProtoDescriptors.file(containingSymbol: "grpc.health.v1.Health.Watch")?.name
                == "grpc/health/v1/health.proto"
        )
        #expect(
            ProtoDescriptors.file(containingSymbol: "google.protobuf.Timestamp")?.name
                == "google/protobuf/timestamp.proto"
        )
        #expect(ProtoDescriptors.file(containingSymbol: "bpfman.v1.NoSuchThing") == nil)
        #expect(ProtoDescriptors.file(named: "nope.proto") == nil)

        let csi = try #require(ProtoDescriptors.file(named: "csi.proto"))
        #expect(
            ProtoDescriptors.withTransitiveDependencies(csi).map(\.name) == [
                "csi.proto", "google/protobuf/descriptor.proto", "google/protobuf/timestamp.proto",
                "google/protobuf/wrappers.proto",
            ]
        )
        let ext = try #require(ProtoDescriptors.file(named: "bpfman_ext.proto"))
        #expect(ProtoDescriptors.withTransitiveDependencies(ext).map(\.name) == ["bpfman_ext.proto", "bpfman.proto"])
        #expect(
            ProtoDescriptors.allServices == [
                "bpfman.ext.v1.Inspect", "bpfman.v1.Bpfman", "csi.v1.Controller", "csi.v1.GroupController",
                "csi.v1.Identity", "csi.v1.Node", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
                "grpc.reflection.v1alpha.ServerReflection",
            ]
        )
        #expect(ProtoDescriptors.extensionNumbers["google.protobuf.FieldOptions"] == [1059, 1060])
        #expect(ProtoDescriptors.isMessage("bpfman.v1.LoadRequest"))
    }

    @Test func registryNamesEveryMessage() {
        #expect(ProtoRegistry.messageTypes["bpfman.v1.LoadRequest"] == Bpfman_V1_LoadRequest.self)
        #expect(ProtoRegistry.messageTypes["csi.v1.PluginCapability.Service"] == Csi_V1_PluginCapability.Service.self)
        for (name, type) in ProtoRegistry.messageTypes {
            #expect(type.protoMessageName == name)
        }
    }
}
