internal import Glibc

/// The planner and the kernel side together: one call per Attach/Detach/Unload of an XDP/TC member in
/// dispatcher mode. Each returns the state the caller must record; after recording it the caller calls
/// `removeRevision(of: previous)` so the old revision's pins go (SPEC §6.2).
extension DispatcherKernel {
    /// What a detach or unload did.
    package enum OnDetach: Sendable, Equatable {
        /// A new revision runs the survivors; record it, then `removeRevision(of:)` the old one.
        case rebuilt(DispatcherState)
        /// The dispatcher is gone (last member, or the netns vanished): delete its record and, when
        /// `droppedLinks` is non-empty, those member links too.
        case tornDown(droppedLinks: [UInt32])
        /// The link is not a member of this dispatcher; nothing changed.
        case notAMember
    }

    /// Adds `member` to the dispatcher of `hook` (creating it when `previous` is nil) and rebuilds.
    ///
    /// - Throws: `.invalidArgument` for a negative priority, `.failedPrecondition`
    ///   `no free dispatcher slots on <iface> <xdp|tc ingress|tc egress> (all 10 occupied)` when full
    ///   (state intact), or whatever `build` throws (old dispatcher still running).
    package func attach(
        _ member: DispatcherMember,
        hook: DispatcherHook,
        iface: String,
        netns: NetworkNamespace,
        previous: DispatcherState?,
        xdpMode: XDPMode = .drv
    ) throws(DispatchError) -> DispatcherState {
        var planner = previous?.planner ?? SlotPlanner()
        switch planner.attach(member, hookDescription: "\(iface) \(hook.kind.label)") {
        case .rejected(let error):
            throw error
        case .rebuild(let members):
            return try build(
                hook: hook,
                iface: iface,
                netns: netns,
                previous: previous,
                members: members,
                xdpMode: xdpMode
            )
        }
    }

    /// Removes link `linkID` from the dispatcher of `state`: rebuild around the survivors, or tear down.
    /// If the hook's netns file is gone, the dispatcher is torn down without rebuilding and every member
    /// link is reported in `droppedLinks` (SPEC §3.4).
    package func detach(linkID: UInt32, from state: DispatcherState) throws(DispatchError) -> OnDetach {
        guard state.planner.position(of: linkID) != nil else { return .notAMember }
        if let path = state.netns.path, access(path, F_OK) != 0 {
            try teardown(state)
            return .tornDown(droppedLinks: state.members.map(\.linkID))
        }
        var planner = state.planner
        return try apply(planner.detach(linkID: linkID), to: state)
    }

    /// Removes every member of program `programID` (its Unload) and rebuilds around the survivors.
    package func removeProgram(_ programID: UInt32, from state: DispatcherState) throws(DispatchError) -> OnDetach {
        var planner = state.planner
        let action = planner.removeProgram(programID)
        if action != .notAMember, let path = state.netns.path, access(path, F_OK) != 0 {
            try teardown(state)
            return .tornDown(droppedLinks: state.members.map(\.linkID))
        }
        return try apply(action, to: state)
    }

    private func apply(_ action: SlotPlanner.OnDetach, to state: DispatcherState) throws(DispatchError) -> OnDetach {
        switch action {
        case .notAMember:
            return .notAMember
        case .teardown:
            try teardown(state)
            return .tornDown(droppedLinks: [])
        case .rebuild(let members):
            return .rebuilt(
                try build(
                    hook: state.hook,
                    iface: state.iface,
                    netns: state.netns,
                    previous: state,
                    members: members,
                    xdpMode: state.xdpMode ?? .drv
                )
            )
        }
    }
}
