// The lookup side of the generated descriptors (the data is in Generated/ProtoDescriptors.pb.swift).

/// Serialized `FileDescriptorProto`s of every .proto file we compile, for server reflection.
package enum ProtoDescriptors {
    /// One .proto file.
    package struct File: Sendable {
        /// The import path, e.g. "bpfman.proto" or "google/protobuf/timestamp.proto".
        package let name: String
        /// Import paths of the files it imports, in declaration order.
        package let dependencies: [String]
        /// Fully-qualified names of the services it defines.
        package let services: [String]
        /// Fully-qualified names of every message, field, oneof, enum, enum value (both the
        /// parent-scoped and the enum-scoped spelling), service, method and extension it defines.
        package let symbols: [String]
        /// The serialized `google.protobuf.FileDescriptorProto`.
        package let serializedDescriptor: [UInt8]

        init(name: String, dependencies: [String], services: [String], symbols: [String], base64Descriptor: String) {
            self.name = name
            self.dependencies = dependencies
            self.services = services
            self.symbols = symbols
            self.serializedDescriptor = ProtoBase64.decode(base64Descriptor.filter { $0 != "\n" })!
        }
    }

    private static let byName: [String: Int] = {
        var d: [String: Int] = [:]
        for (k, f) in files.enumerated() { d[f.name] = k }
        return d
    }()

    private static let bySymbol: [String: Int] = {
        var d: [String: Int] = [:]
        for (k, f) in files.enumerated() {
            for s in f.symbols { d[s] = k }
        }
        return d
    }()

    /// The file with import path `name`.
    package static func file(named name: String) -> File? {
        byName[name].map { files[$0] }
    }

    /// The file that defines the fully-qualified `symbol` (no leading dot).
    package static func file(containingSymbol symbol: String) -> File? {
        let s = symbol.hasPrefix(".") ? String(symbol.dropFirst()) : symbol
        return bySymbol[s].map { files[$0] }
    }

    /// `file` followed by everything it imports, directly or not, each once.
    package static func withTransitiveDependencies(_ file: File) -> [File] {
        var out: [File] = []
        var seen: Set<String> = []
        func visit(_ f: File) {
            guard seen.insert(f.name).inserted else { return }
            out.append(f)
            for d in f.dependencies {
                if let dep = self.file(named: d) { visit(dep) }
            }
        }
        visit(file)
        return out
    }

    /// Every service defined in these files, fully qualified, sorted.
    package static var allServices: [String] { files.flatMap(\.services).sorted() }

    /// Whether `name` is a message type defined in these files.
    package static func isMessage(_ name: String) -> Bool {
        ProtoRegistry.messageTypes[name] != nil
    }
}

/// Generated message types by name (filled in by Generated/ProtoDescriptors.pb.swift).
package enum ProtoRegistry {}
