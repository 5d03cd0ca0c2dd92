import Foundation
import TestSupport
import Testing

extension DaemonKernelTests.CLIWithoutDaemon {
    /// zsh and fish completion in the order users type `attach <program-id> <kind>`, run by the real shells'
    /// completion systems (zsh's compsys in a pseudo-terminal, fish's `complete -C`): program ids after
    /// `attach`, the kinds after the id, the kind's option values after that; the Go-era `link attach <kind>
    /// <id>` keeps its order.
    @Test(
        .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/zsh"), "needs zsh (scripts/setup.sh)"),
        .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/fish"), "needs fish (scripts/setup.sh)")
    )
    func zshAndFishCompleteAttachInTheOrderUsersTypeIt() async throws {
        let object = try DaemonKernelTests.tracepointObject
        try await withDaemon { daemon in
            let load = try await Self.bpfman(
                daemon,
                ["load", "file", "-p", object, "--programs", "tracepoint:count_kill"]
            )
            let id = try #require(
                DaemonKernelTests.CLI.row("Program ID", in: load.stdout),
                "\(load.stdout)\(load.stderr)"
            )
            let bin = URL(fileURLWithPath: DaemonTools.bpfman!).deletingLastPathComponent().path
            let environment = [
                "PATH": bin + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"),
                "BPFMAN_SOCKET_PATH": daemon.socketPath,
            ]
            let typed = [
                "bpfman attach ", "bpfman attach \(id) ", "bpfman attach \(id) tc -d ",
                "bpfman attach \(id) xdp --proceed-on d", "bpfman attach \(id) xdp -i ",
                "bpfman link attach tcx \(id) ",
            ]
            let kinds: Set = ["xdp", "tc", "tcx", "tracepoint", "kprobe", "uprobe", "fentry", "fexit", "lsm"]
            func check(_ shell: String, _ offered: [Set<String>]) {
                #expect(offered.count == typed.count, "\(shell): \(offered)")
                guard offered.count == typed.count else { return }
                #expect(offered[0] == kinds.union([id]), "\(shell): \(offered[0])")
                #expect(offered[1] == kinds, "\(shell): \(offered[1])")
                #expect(offered[2] == ["ingress", "egress"], "\(shell): \(offered[2])")
                #expect(offered[3] == ["drop", "dispatcher_return"], "\(shell): \(offered[3])")
                #expect(offered[4].contains("lo") && !offered[4].contains(id), "\(shell): \(offered[4])")
                #expect(offered[5].contains("lo"), "\(shell): \(offered[5])")
            }

            // zsh: the script as a completion function on fpath, each line typed into an interactive zsh in a
            // pseudo-terminal (zsh/zpty) and completed with Tab; compadd is wrapped to print what it is given.
            let functions = daemon.directory + "/zsh"
            try FileManager.default.createDirectory(atPath: functions, withIntermediateDirectories: true)
            let zsh = try TestSupport.run(DaemonTools.bpfman!, ["--generate-completion-script", "zsh"])
            try zsh.output.write(toFile: functions + "/_bpfman", atomically: true, encoding: .utf8)
            let capture = daemon.directory + "/capture.zsh"
            try Self.zshCapture.write(toFile: capture, atomically: true, encoding: .utf8)
            var zshOffered: [Set<String>] = []
            for line in typed {
                // `timeout`: a completion that never finishes would leave zpty reading forever.
                let run = try TestSupport.run(
                    "timeout",
                    ["30", "zsh", "-f", capture, functions, line],
                    environment: environment
                )
                #expect(run.status == 0, "\(run.output)")
                zshOffered.append(Set(run.output.split(whereSeparator: \.isNewline).map(String.init)))
            }
            check("zsh", zshOffered)

            // fish: `complete -C` prints the completions of a command line, one per line, tab, description.
            let fishScript = daemon.directory + "/bpfman.fish"
            let fish = try TestSupport.run(DaemonTools.bpfman!, ["--generate-completion-script", "fish"])
            try fish.output.write(toFile: fishScript, atomically: true, encoding: .utf8)
            var fishOffered: [Set<String>] = []
            for line in typed {
                let run = try TestSupport.run(
                    "fish",
                    ["--no-config", "-c", "source \(fishScript); complete -C'\(line)'"],
                    environment: environment
                )
                #expect(run.status == 0, "\(run.output)")
                fishOffered.append(
                    Set(run.output.split(separator: "\n").map { String($0.split(separator: "\t").first ?? "") })
                )
            }
            check("fish", fishOffered)
        }
    }

    /// Types `$2` and a Tab into an interactive zsh whose fpath starts with `$1`; prints each match offered.
    static let zshCapture = #"""
        zmodload zsh/zpty
        zpty z zsh -f -i
        zpty -w z "PROMPT='' RPROMPT=''"
        zpty -w z "fpath=($1 \$fpath); autoload -U compinit; compinit -u -D"
        # The markers are split in what is typed, so the terminal's echo of these lines never matches them.
        zpty -w z 'compadd () { builtin compadd -O __hits "$@"; builtin compadd "$@"; (( $#__hits )) && print -rl -- "<""m>"${^__hits} }'
        zpty -w z 'comppostfuncs=(__done); __done () { print -r -- "<""end>"; exit }'
        zpty -w z "setopt nobeep; bindkey '^I' complete-word"
        zpty -w z "$2"$'\t'
        local line
        while zpty -r z line; do
          [[ $line == *'<end>'* ]] && break
          [[ $line == *'<m>'* ]] && print -r -- "${${line##*<m>}%%$'\r'}"
        done
        zpty -d z
        """#
}
