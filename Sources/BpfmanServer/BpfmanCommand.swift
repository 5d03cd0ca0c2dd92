public import ArgumentParser
internal import FoundationEssentials
internal import Glibc
internal import H2Transport

/// The `bpfman` command: `bpfman serve` is the daemon, every other subcommand is a client of it.
public struct BpfmanCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "bpfman",
        abstract: "Load, attach and manage eBPF programs.",
        version: BpfmanVersion.string,
        subcommands: [
            // Rust-era tree (SPEC §9.1).
            Load.self, Unload.self, Attach.self, Detach.self, List.self, Get.self, ImageCommand.self, Status.self,
            Serve.self, Version.self,
            // Go-era tree (SPEC §9.4); `image` and `version` are shared.
            ProgramCommand.self, LinkCommand.self, DispatcherCommand.self,
        ]
    )

    public init() {}

    /// The flags that, in first position, mean `serve` (SPEC §1.2).
    static let serveFlags: Set<String> = [
        "--socket-path", "--runtime-dir", "--image-cache-dir", "--csi-support", "--timeout", "--config",
    ]

    /// Options that may come before the command: the serve flags and the Go-era tree's globals.
    static let globalFlags: Set<String> = serveFlags.union(["--log", "--lock-timeout"])

    /// `--flag` of `--flag=value`.
    static func flagName(_ argument: String) -> String {
        argument.split(separator: "=", maxSplits: 1).first.map(String.init) ?? argument
    }

    /// Whether the command line belongs to upstream's Go-era tree (SPEC §9.4), which prints errors as
    /// `bpfman: error: <message>` and exits 80 on usage errors.
    static func isGoEra(_ arguments: [String]) -> Bool {
        guard let first = arguments.first else { return false }
        if ["program", "link", "dispatcher"].contains(first) { return true }
        return first == "image" && arguments.count > 1
            && ["inspect", "verify", "build", "generate-build-args"].contains(arguments[1])
    }

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
        if let first = arguments.first, globalFlags.contains(flagName(first)) {
            // Global options before a command (`bpfman --runtime-dir /x program list`, as the Go-era tree allows)
            // move behind it; with no command after them they are serve flags.
            var index = 0
            while index < arguments.count, globalFlags.contains(flagName(arguments[index])) {
                let takesValue = flagName(arguments[index]) != "--csi-support" && !arguments[index].contains("=")
                index += takesValue ? 2 : 1
            }
            let commands = configuration.subcommands.map { $0._commandName }.filter { $0 != "serve" }
            if index < arguments.count, commands.contains(arguments[index]) {
                return normalizedArguments(
                    executableName: executableName,
                    arguments: Array(arguments[index...]) + arguments[..<index]
                )
            }
            if serveFlags.contains(flagName(first)) {
                return ["serve"] + arguments
            }
        }
        // `attach <PROGRAM_ID> <kind> ...` (SPEC §9.1): each kind's subcommand takes the id as its argument.
        if arguments.count >= 3, arguments[0] == "attach", UInt32(arguments[1]) != nil,
            Attach.kinds.contains(arguments[2])
        {
            return ["attach", arguments[2], arguments[1]] + arguments.dropFirst(3)
        }
        // `attach <PROGRAM_ID> --help`: the kinds' overview.
        if arguments.count == 3, arguments[0] == "attach", UInt32(arguments[1]) != nil,
            ["-h", "--help"].contains(arguments[2])
        {
            return ["attach", "--help"]
        }
        return arguments
    }

    /// A command line ArgumentParser accepts or misreports that is a usage error (SPEC §9: exit 2).
    struct UsageProblem: Equatable {
        /// What is wrong, for `Error: <message>`.
        var message: String
        /// The command whose usage line and `--help` to point at, as typed (`bpfman attach`).
        var command: String
        /// That command's usage line.
        var usage: String
    }

    /// `attach <PROGRAM_ID>` not followed by a known kind, which ArgumentParser would report as an unexpected
    /// argument (the id); nil for any other command line (already normalized).
    static func attachKindProblem(_ arguments: [String]) -> UsageProblem? {
        guard arguments.count >= 2, arguments[0] == "attach", UInt32(arguments[1]) != nil else { return nil }
        let kinds = Attach.kinds.joined(separator: ", ")
        let message =
            arguments.count > 2 && !arguments[2].hasPrefix("-")
            ? "unknown attach kind '\(arguments[2])': expected one of: \(kinds)"
            : "'bpfman attach \(arguments[1])' needs the kind of attachment next, one of: \(kinds)"
        return UsageProblem(message: message, command: "bpfman attach", usage: usageString(for: Attach.self))
    }

    /// The words that name `parsed` on a command line (`bpfman attach xdp`), found by walking the command tree
    /// from the root along `arguments` (already normalized).
    static func commandPath(of parsed: any ParsableCommand.Type, arguments: [String]) -> String {
        var path = [BpfmanCommand._commandName]
        var current: any ParsableCommand.Type = BpfmanCommand.self
        for word in arguments {
            guard current != parsed,
                let next = current.configuration.subcommands.first(where: { $0._commandName == word })
            else { break }
            path.append(word)
            current = next
        }
        return path.joined(separator: " ")
    }

    /// A command group named without one of its subcommands (`bpfman`, `bpfman list`): an incomplete command,
    /// so a usage error (SPEC §9: exit 2), where ArgumentParser would print the group's help and exit 0. nil when
    /// `parsed` is not a group.
    static func missingSubcommand(_ parsed: any ParsableCommand.Type, arguments: [String]) -> UsageProblem? {
        let subcommands = parsed.configuration.subcommands
        guard !subcommands.isEmpty else { return nil }
        let command = commandPath(of: parsed, arguments: arguments)
        let names = subcommands.map { $0._commandName }.joined(separator: ", ")
        return UsageProblem(
            message: "'\(command)' requires a subcommand: \(names)",
            command: command,
            usage: usageString(for: parsed)
        )
    }
}

extension BpfmanCommand {
    /// A word where a group expects one of its subcommands but that names none of them (`bpfman lst`): a usage
    /// error that suggests the closest name, as upstream's CLI does. nil when the words name a command.
    static func unknownSubcommand(_ arguments: [String]) -> UsageProblem? {
        var current: any ParsableCommand.Type = BpfmanCommand.self
        var path = [BpfmanCommand._commandName]
        for word in arguments {
            let subcommands = current.configuration.subcommands
            guard !subcommands.isEmpty, !word.hasPrefix("-") else { return nil }
            if let next = subcommands.first(where: {
                $0._commandName == word || $0.configuration.aliases.contains(word)
            }) {
                current = next
                path.append(word)
                continue
            }
            let names = subcommands.map { $0._commandName }
            // A group with a default subcommand takes the word as that subcommand's argument, unless it is a
            // near miss of a subcommand's name (`bpfman program lst`).
            if current.configuration.defaultSubcommand != nil, closestName(to: word, among: names) == nil {
                return nil
            }
            var message = "unrecognized subcommand '\(word)'"
            if let closest = closestName(to: word, among: names) {
                message += "; a similar subcommand exists: '\(closest)'"
            } else {
                message += "; expected one of: \(names.joined(separator: ", "))"
            }
            let command = path.joined(separator: " ")
            return UsageProblem(message: message, command: command, usage: usageString(for: current))
        }
        return nil
    }

    /// The name at the smallest edit distance from `word` when it is close enough to be a typo (at most a third of
    /// the letters, at least one), or a name `word` is a prefix of.
    static func closestName(to word: String, among names: [String]) -> String? {
        let scored = names.map { (name: $0, distance: editDistance(word, $0)) }
        if let best = scored.min(by: { $0.distance < $1.distance }),
            best.distance <= max(1, best.name.count / 3)
        {
            return best.name
        }
        return names.first { $0.hasPrefix(word) && !word.isEmpty }
    }

    /// Levenshtein distance over characters.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a)
        let b = Array(b)
        var previous = Array(0...b.count)
        for i in 1...max(1, a.count) where !a.isEmpty {
            var row = [i] + [Int](repeating: 0, count: b.count)
            for j in 1...max(1, b.count) where !b.isEmpty {
                row[j] = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = row
        }
        return a.isEmpty ? b.count : previous[b.count]
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
        /// The global options are accepted anywhere (SPEC §9.4), here too; they change nothing.
        @OptionGroup(visibility: .hidden) var connection: ConnectionOptions

        func run() {
            emit("bpfman \(BpfmanVersion.string)")
        }
    }
}

extension BpfmanCommand {
    /// Runs the command for this process's arguments: the executable's whole `main`.
    public static func runMain(argv: [String]) async {
        let name = argv.first.map { String($0.split(separator: "/").last ?? "") } ?? "bpfman"
        let arguments = normalizedArguments(executableName: name, arguments: Array(argv.dropFirst()))
        if arguments.count <= 2, let first = arguments.first, flagName(first) == "--generate-completion-script",
            let script = completionScript(
                shell: first.contains("=") ? String(first.split(separator: "=")[1]) : arguments.dropFirst().first ?? ""
            )
        {
            emit(script)
            finish(0)
        }
        if arguments == ["-V"] || arguments == ["--version"] {
            emit("bpfman \(BpfmanVersion.string)")
            finish(0)
        }
        if let problem = attachKindProblem(arguments) { usageError(problem) }
        if let problem = unknownSubcommand(arguments) { usageError(problem) }
        var parsed: (any ParsableCommand.Type)?
        do {
            var command = try parseAsRoot(arguments)
            let commandType = type(of: command)
            parsed = commandType
            if let problem = missingSubcommand(commandType, arguments: arguments) { usageError(problem) }
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            await Backend.closeAll()
            finish(0)
        } catch let error as ClientError {
            await Backend.closeAll()
            flushStandardOutput()
            if isGoEra(arguments) {
                writeToStandardError("bpfman: error: \(error.status.message)\n")
            } else {
                writeToStandardError("Error: \(error.description)\n")
            }
            Glibc.exit(1)
        } catch {
            await Backend.closeAll()
            flushStandardOutput()
            // Usage errors exit 2 (SPEC §1.2, §9); RPC errors print `Error: <STATUS>: <message>` and exit 1.
            if exitCode(for: error) == .validationFailure {
                // A command's own checks of its options (run() throwing ValidationError) point at that command's
                // usage; ArgumentParser's message would show the root's.
                if let parsed {
                    let command = commandPath(of: parsed, arguments: arguments)
                    usageError(
                        UsageProblem(message: message(for: error), command: command, usage: usageString(for: parsed))
                    )
                }
                if isGoEra(arguments) {
                    writeToStandardError("bpfman: error: \(message(for: error))\n")
                    Glibc.exit(80)
                }
                writeToStandardError(fullMessage(for: error) + "\n")
                Glibc.exit(2)
            }
            exit(withError: error)
        }
    }

    /// Exits with `status` once standard output is written out; a write that failed (`> /dev/full`, a full disk)
    /// makes it exit 1 with the reason on stderr (SPEC §9), where the output would otherwise be lost silently. A
    /// reader that went away (`bpfman list programs | head -1`) ends the process by SIGPIPE, quietly, as it ends
    /// other commands; the client ignores SIGPIPE while it talks to the daemon, so it is raised here.
    static func finish(_ status: Int32) -> Never {
        if let code = flushStandardOutput() {
            if code == EPIPE {
                signal(SIGPIPE, SIG_DFL)
                raise(SIGPIPE)
            }
            writeToStandardError("Error: cannot write to standard output: \(String(cString: strerror(code)))\n")
            Glibc.exit(1)
        }
        Glibc.exit(status)
    }

    /// Writes out the command's pending output; the errno when a write to stdout failed, now or earlier.
    @discardableResult
    static func flushStandardOutput() -> Int32? {
        StandardOutput.flush()
    }
}

/// Prints a usage error the way ArgumentParser prints its own (message, usage, where to look) and exits 2; in the
/// Go-era tree as upstream's does (`bpfman: error: <message>`, the usage, exit 80).
private func usageError(_ problem: BpfmanCommand.UsageProblem) -> Never {
    if BpfmanCommand.isGoEra(Array(problem.command.split(separator: " ").dropFirst().map(String.init))) {
        writeToStandardError(
            "bpfman: error: \(problem.message)\nUsage: \(problem.usage)\nRun '\(problem.command) --help' for more information.\n"
        )
        Glibc.exit(80)
    }
    writeToStandardError(
        "Error: \(problem.message)\nUsage: \(problem.usage)\n  See '\(problem.command) --help' for more information.\n"
    )
    Glibc.exit(2)
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
