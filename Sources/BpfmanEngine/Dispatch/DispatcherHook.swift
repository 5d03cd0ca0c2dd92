/// Where a dispatcher sits: SPEC's hook, (nsid, ifindex) for XDP and (nsid, ifindex, direction) for TC.
package struct DispatcherHook: Sendable, Hashable, CustomStringConvertible {
    package enum Kind: String, Sendable, Hashable, CaseIterable {
        case xdp
        case tcIngress = "tc-ingress"
        case tcEgress = "tc-egress"

        /// The bpffs directory under `<rd>/fs` holding this kind's dispatchers.
        package var directoryName: String { rawValue }
        /// `xdp`, `tc ingress` or `tc egress`, as in SPEC's messages.
        package var label: String {
            switch self {
            case .xdp: "xdp"
            case .tcIngress: "tc ingress"
            case .tcEgress: "tc egress"
            }
        }
        package var family: ProceedOnFamily { self == .xdp ? .xdp : .tc }
    }

    package var kind: Kind
    /// Inode number of the netns file.
    package var nsid: UInt64
    package var ifindex: UInt32

    package init(kind: Kind, nsid: UInt64, ifindex: UInt32) {
        self.kind = kind
        self.nsid = nsid
        self.ifindex = ifindex
    }

    /// `dispatcher_<nsid>_<ifindex>`, the stem of every pin of this hook.
    package var stem: String { "dispatcher_\(nsid)_\(ifindex)" }

    package var description: String { "\(kind.label) \(nsid)/\(ifindex)" }
}

/// The dispatcher part of SPEC §2's pin layout, relative to a bpffs root (`<rd>/fs`).
///
/// Pure string building; nothing here touches the filesystem.
package struct DispatcherPaths: Sendable, Equatable {
    /// The bpffs mount, normally `/run/bpfman/fs`.
    package var fsRoot: String

    package init(fsRoot: String) {
        self.fsRoot = fsRoot
    }

    /// `<fs>/xdp`, `<fs>/tc-ingress` or `<fs>/tc-egress`.
    package func kindDirectory(_ kind: DispatcherHook.Kind) -> String {
        "\(fsRoot)/\(kind.directoryName)"
    }

    /// `<fs>/xdp/dispatcher_<nsid>_<ifindex>_link`: the interface's XDP link (XDP only).
    package func xdpLink(_ hook: DispatcherHook) -> String {
        "\(kindDirectory(.xdp))/\(hook.stem)_link"
    }

    /// `<fs>/<kind>/dispatcher_<nsid>_<ifindex>_<rev>`: one revision's directory.
    package func revisionDirectory(_ hook: DispatcherHook, revision: UInt32) -> String {
        "\(kindDirectory(hook.kind))/\(hook.stem)_\(revision)"
    }

    /// `<revdir>/dispatcher`: the dispatcher program of a revision.
    package func dispatcherProgram(_ hook: DispatcherHook, revision: UInt32) -> String {
        "\(revisionDirectory(hook, revision: revision))/dispatcher"
    }

    /// `<revdir>/link_<pos>`: the freplace link of the member in slot `prog<pos>`.
    package func memberLink(_ hook: DispatcherHook, revision: UInt32, position: Int) -> String {
        "\(revisionDirectory(hook, revision: revision))/link_\(position)"
    }

    /// `<fs>/dispatcher-test`.
    package var testDispatcherDirectory: String { "\(fsRoot)/dispatcher-test" }

    /// `<fs>/dispatcher-test/xdp` or `/tc`: the load-time target of EXT programs.
    package func testDispatcher(_ family: ProceedOnFamily) -> String {
        "\(testDispatcherDirectory)/\(family.rawValue)"
    }

    /// Parses a name found in a kind directory: `dispatcher_<nsid>_<ifindex>_<rev>` gives the hook and
    /// revision, `dispatcher_<nsid>_<ifindex>_link` gives the hook and `nil`. Used by reconciliation to
    /// find stale revisions and orphans.
    package static func parse(entry: String, kind: DispatcherHook.Kind) -> (hook: DispatcherHook, revision: UInt32?)? {
        let parts = entry.split(separator: "_", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "dispatcher",
            let nsid = UInt64(parts[1]), let ifindex = UInt32(parts[2])
        else { return nil }
        let hook = DispatcherHook(kind: kind, nsid: nsid, ifindex: ifindex)
        if parts[3] == "link" { return kind == .xdp ? (hook, nil) : nil }
        guard let revision = UInt32(parts[3]) else { return nil }
        return (hook, revision)
    }
}

/// Revision arithmetic: the first revision is 1, each rebuild adds one, wrapping at 2^32.
package enum DispatcherRevision {
    package static let first: UInt32 = 1
    package static func next(after revision: UInt32) -> UInt32 { revision &+ 1 }
}
