/// What `bpfman image build` asks of the image writer (`bpfman-image build-image <this, as JSON>`): the CLI reads
/// the objects and computes the labels, the fetcher's module, which owns the OCI format and libarchive, writes them.
package struct ImageBuildRequest: Codable, Sendable, Equatable {
    /// One object and the platform it is for.
    package struct Input: Codable, Sendable, Equatable {
        package var os: String
        package var architecture: String
        package var path: String

        package init(os: String, architecture: String, path: String) {
            self.os = os
            self.architecture = architecture
            self.path = path
        }
    }

    /// `oci:<dir>[:<tag>]` or `oci-archive:<file>[:<tag>]`, paths absolute.
    package var destination: String
    /// One input per platform; `multiArch` writes an image index even for one.
    package var inputs: [Input]
    package var multiArch: Bool
    /// The config labels (`io.ebpf.programs`, `io.ebpf.maps`), the same for every platform.
    package var labels: [String: String]
    /// Seconds since the epoch for every time stamp written (`SOURCE_DATE_EPOCH`, else 0).
    package var timestamp: Int64

    package init(destination: String, inputs: [Input], multiArch: Bool, labels: [String: String], timestamp: Int64) {
        self.destination = destination
        self.inputs = inputs
        self.multiArch = multiArch
        self.labels = labels
        self.timestamp = timestamp
    }
}
