/// Everything the daemon records about one live dispatcher (SPEC §6.1 `dispatchers` row plus its members),
/// and what Inspect's `ListDispatchers` reports.
package struct DispatcherState: Sendable, Equatable {
    package var hook: DispatcherHook
    package var iface: String
    /// The netns the hook lives in (path as given, or the daemon's own).
    package var netns: NetworkNamespace
    /// Generation counter: 1 for a new dispatcher, +1 per rebuild.
    package var revision: UInt32
    /// Kernel program id of the current dispatcher program.
    package var programID: UInt32
    /// TC only: the kernel-assigned handle of the dispatcher's filter (priority 50).
    package var tcHandle: UInt32?
    /// XDP only: the mode the interface link was created with.
    package var xdpMode: XDPMode?
    /// Members in slot order: `members[i]` occupies `prog<i>`.
    package var members: [DispatcherMember]
    /// Kernel ids of the members' freplace links, by position.
    package var memberKernelLinkIDs: [UInt32]

    /// TC dispatcher filter priority (SPEC §0.2).
    package static let tcFilterPriority: UInt16 = 50

    /// `tc_priority` as Inspect reports it: 50 for TC, nil for XDP.
    package var tcPriority: UInt16? { hook.kind == .xdp ? nil : Self.tcFilterPriority }

    /// The current revision directory under `paths`.
    package func pinDirectory(_ paths: DispatcherPaths) -> String {
        paths.revisionDirectory(hook, revision: revision)
    }

    /// One member as Inspect's `DispatcherMember` shows it.
    package struct MemberView: Sendable, Equatable {
        package var linkID: UInt32
        package var programID: UInt32
        package var programName: String
        package var position: Int
        package var priority: Int32
        package var proceedOnMask: UInt32
    }

    /// Members with their live positions.
    package var memberViews: [MemberView] {
        members.enumerated().map { position, m in
            MemberView(
                linkID: m.linkID,
                programID: m.programID,
                programName: m.programName,
                position: position,
                priority: m.priority,
                proceedOnMask: m.proceedOn.mask
            )
        }
    }

    /// The planner over the recorded members.
    package var planner: SlotPlanner { SlotPlanner(members: members) }
}
