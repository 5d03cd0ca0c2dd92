public import ArgumentParser
internal import FoundationEssentials
internal import Glibc

/// The `bpfman` command: `bpfman serve` is the daemon, every other subcommand is a client of it.
public struct BpfmanCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "bpfman",
        abstract: "Load, attach and manage eBPF programs.",
        version: BpfmanVersion.string,
        subcommands: [
            Load.self, Unload.self, Attach.self, Detach.self, List.self, Get.self, ImageCommand.self, Status.self,
            Serve.self, Version.self,
        ]
    )

    public init() {}

    /// The flags that, in first position, mean `serve` (SPEC §1.2).
    static let serveFlags: Set<String> = [
        "--socket-path", "--runtime-dir", "--image-cache-dir", "--csi-support", "--timeout", "--config",
    ]

    /// Rewrites the process arguments into the shape ArgumentParser expects.
    ///
    /// `bpfman-rpc ...` and `bpfman --csi-support ...` (any serve flag first) both mean `bpfman serve ...`.
    /// - Parameters:
    ///   - executableName: the last path component of argv[0].
    ///   - arguments: argv without argv[0].
    /// - Returns: the arguments to parse.
    public static func normalizedArguments(executableName: String, arguments: [String]) -> [String] {
        if executableName == "bpfman-rpc" {
            return ["serve"] + arguments
        }
        if let first = arguments.first {
            let flag = first.split(separator: "=", maxSplits: 1).first.map(String.init) ?? first
            if serveFlags.contains(flag) {
                return ["serve"] + arguments
            }
        }
        // `attach <PROGRAM_ID> <kind> ...` (SPEC §9.1): each kind's subcommand takes the id as its argument.
        if arguments.count >= 3, arguments[0] == "attach", UInt32(arguments[1]) != nil,
            Attach.kinds.contains(arguments[2])
        {
            return ["attach", arguments[2], arguments[1]] + arguments.dropFirst(3)
        }
        return arguments
    }
}

/// The version this build reports.
public enum BpfmanVersion {
    public static let string = "0.1.0-dev"
}

extension BpfmanCommand {
    /// `bpfman version`: prints the version.
    struct Version: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the bpfman version.")

        func run() {
            print("bpfman \(BpfmanVersion.string)")
        }
    }
}

extension BpfmanCommand {
    /// Runs the command for this process's arguments: the executable's whole `main`.
    public static func runMain(argv: [String]) async {
        let name = argv.first.map { String($0.split(separator: "/").last ?? "") } ?? "bpfman"
        let arguments = normalizedArguments(executableName: name, arguments: Array(argv.dropFirst()))
        do {
            var command = try parseAsRoot(arguments)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            // Usage errors exit 2 (SPEC §1.2, §9); RPC errors print `Error: <STATUS>: <message>` and exit 1.
            if exitCode(for: error) == .validationFailure {
                writeToStandardError(fullMessage(for: error) + "\n")
                Glibc.exit(2)
            }
            exit(withError: error)
        }
    }
}

/// Writes text to standard error unbuffered (usage and start-up errors, before or instead of the logger).
func writeToStandardError(_ text: String) {
    var text = text
    text.withUTF8 { bytes in
        var offset = 0
        while offset < bytes.count {
            let written = Glibc.write(2, bytes.baseAddress! + offset, bytes.count - offset)
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { return }
            offset += written
        }
    }
}
