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
    /// The completion script for `shell`; for bash, one that also completes `attach <program-id> <kind> …`: the
    /// program ids after `attach`, the kinds after the id, and the kind's options after that (ArgumentParser's
    /// script knows the tree as `attach <kind> <program-id>`, so the two words are swapped before it looks).
    static func completionScript(shell: String) -> String? {
        guard let kind = CompletionShell(rawValue: shell) else { return nil }
        let script = completionScript(for: kind)
        guard kind == .bash else { return script }
        let anchor = "    local -a unparsed_words=(\"${COMP_WORDS[@]:1:${COMP_CWORD}}\")"
        var lines = script.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        // The first one is the root's, in `_bpfman()`.
        guard let index = lines.firstIndex(of: anchor) else { return script }
        let kinds = Attach.kinds.joined(separator: " ")
        let reorder = """
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

            """
        lines.insert(reorder, at: index + 1)
        return lines.joined(separator: "\n")
    }
}
