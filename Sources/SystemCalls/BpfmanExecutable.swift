internal import Glibc

/// The `bpfman` executable that the daemon starts as its helpers (`bpfman-ns`, `bpfman-image`): `override` (the
/// value of `$BPFMAN_NS_PATH` or `$BPFMAN_IMAGE_PATH`) when set and not empty, else this process's own executable
/// when it is `bpfman` (the daemon or the CLI), else `bpfman` beside it (a test runner in the build directory);
/// `/usr/sbin/bpfman` when `/proc/self/exe` cannot be read.
package func bpfmanExecutable(override: String?) -> String {
    if let override, !override.isEmpty { return override }
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    guard length > 0 else { return "/usr/sbin/bpfman" }
    let executable = String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    let parts = executable.split(separator: "/", omittingEmptySubsequences: false)
    if parts.last == "bpfman" { return executable }
    return parts.dropLast().joined(separator: "/") + "/bpfman"
}

/// Upstream's runtime directory, `bpfman serve --runtime-dir`'s default: the one definition, here because the
/// engine (`BpfmanPaths`) and the image modules, which cannot see each other, both need it.
package let defaultBpfmanRuntimeDirectory = "/run/bpfman"
