internal import ArgumentParser

// Shell completion (`bpfman --generate-completion-script bash|zsh|fish`): ArgumentParser's scripts, with values
// from the running system, and, for bash, the Rust-era `attach <program-id> <kind>` order.

extension CompletionKind {
    /// Managed program ids, asked of the daemon (or read in-process as root) with `program list -q`.
    static var programIDs: CompletionKind { .shellCommand("bpfman program list -q 2>/dev/null") }
    /// Link ids, likewise.
    static var linkIDs: CompletionKind { .shellCommand("bpfman link list -q 2>/dev/null") }
    /// This network namespace's interfaces.
    static var interfaces: CompletionKind { .shellCommand("ls /sys/class/net 2>/dev/null") }
}

extension BpfmanCommand {
    /// The completion script for `shell`, completing `attach <program-id> <kind> …` in the order users type it:
    /// the program ids after `attach`, the kinds after the id, and the kind's options after that. ArgumentParser's
    /// scripts know the tree as `attach <kind> <program-id>`, so each shell's script swaps the two words back
    /// before it looks (the Go-era `link attach <kind> <id>` keeps its order).
    static func completionScript(shell: String) -> String? {
        guard let kind = CompletionShell(rawValue: shell) else { return nil }
        let script = completionScript(for: kind)
        let kinds = Attach.kinds.joined(separator: " ")
        switch kind {
        case .bash: return bashAttachOrder(script, kinds: kinds)
        case .zsh: return zshAttachOrder(script, kinds: kinds)
        case .fish: return fishAttachOrder(script, kinds: kinds)
        default: return script
        }
    }

    /// Inserts the lines `code` after the first lines equal to `anchor` (the script unchanged when there are none).
    private static func insert(_ code: String, after anchor: String, in script: String) -> String {
        guard let range = script.firstRange(of: anchor + "\n") else { return script }
        var patched = script
        patched.insert(contentsOf: code + "\n", at: range.upperBound)
        return patched
    }

    private static func bashAttachOrder(_ script: String, kinds: String) -> String {
        // The first such line is the root's, in `_bpfman()`.
        insert(
            """
                if [[ "${unparsed_words[0]}" == attach ]]; then
                    if (( ${#unparsed_words[@]} == 2 )) && [[ "${cur}" != -* ]]; then
                        COMPREPLY+=($(compgen -W "$(bpfman program list -q 2>/dev/null) \(kinds)" -- "${cur}"))
                        return
                    fi
                    if [[ "${unparsed_words[1]}" =~ ^[0-9]+$ ]]; then
                        if (( ${#unparsed_words[@]} == 3 )); then
                            COMPREPLY+=($(compgen -W '\(kinds)' -- "${cur}"))
                            return
                        fi
                        unparsed_words=(attach "${unparsed_words[2]}" "${unparsed_words[1]}" "${unparsed_words[@]:3}")
                    fi
                fi

            """,
            after: "    local -a unparsed_words=(\"${COMP_WORDS[@]:1:${COMP_CWORD}}\")",
            in: script
        )
    }

    /// In `_bpfman_attach`, `words[1]` is the word after `attach` and `CURRENT` the index being completed.
    private static func zshAttachOrder(_ script: String, kinds: String) -> String {
        guard let start = script.firstRange(of: "\n_bpfman_attach() {\n"),
            let end = script[start.upperBound...].firstRange(of: "\n}\n")
        else { return script }
        var function = String(script[start.upperBound..<end.lowerBound]) + "\n"
        function = insert(
            """
                    local -a program_ids
                    program_ids=(${(f)"$(bpfman program list -q 2>/dev/null)"})
                    _describe -V program-id program_ids && ret=0
            """,
            after: "        _describe -V subcommand subcommands && ret=0",
            in: function
        )
        function = insert(
            """
                    if [[ "${words[1]}" == <-> ]]; then
                        if (( CURRENT == 2 )); then
                            local -a kinds=(\(kinds))
                            _describe -V kind kinds
                            return
                        fi
                        words=("${words[2]}" "${words[1]}" "${(@)words[3,-1]}")
                    fi
            """,
            after: "    arg)",
            in: function
        )
        return String(script[..<start.upperBound]) + function + String(script[script.index(after: end.lowerBound)...])
    }

    /// `__bpfman_parse_tokens` reads the words after `attach` (the root's, not `link attach`'s) in order.
    private static func fishAttachOrder(_ script: String, kinds: String) -> String {
        insert(
            """
                        if string match -qr '^[0-9]+$' -- "$unparsed_tokens[1]"; and set -q unparsed_tokens[2]
                            set unparsed_tokens $unparsed_tokens[2] $unparsed_tokens[1] $unparsed_tokens[3..]
                        end
            """,
            after: "        case 'attach'\n            __bpfman_parse_subcommand 0 'version' 'h/help'",
            in: script
        )
            + """

            # swift-bpfman: program ids after `attach`, before the kind.
            function __bpfman_attach_wants_program_id
                set -l tokens (__bpfman_tokens -pc)
                test (count $tokens) -eq 2 -a "$tokens[2]" = attach
            end
            complete -c 'bpfman' -n '__bpfman_attach_wants_program_id' -fka '(bpfman program list -q 2>/dev/null)'

            """
    }
}
