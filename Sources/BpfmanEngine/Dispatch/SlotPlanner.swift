/// One member of a dispatcher as the planner sees it: enough to order it and fill its slot.
package struct DispatcherMember: Sendable, Equatable, Hashable {
    /// The daemon's link id (unique per member).
    package var linkID: UInt32
    /// Kernel id of the member's (EXT or native) program.
    package var programID: UInt32
    /// The requested function name, used as the second tie-breaker.
    package var programName: String
    /// bpfman priority, stored verbatim; 0 is legal and sorts first.
    package var priority: Int32
    package var proceedOn: ProceedOn

    package init(linkID: UInt32, programID: UInt32, programName: String, priority: Int32, proceedOn: ProceedOn) {
        self.linkID = linkID
        self.programID = programID
        self.programName = programName
        self.priority = priority
        self.proceedOn = proceedOn
    }
}

/// The member list of one dispatcher, in slot order, and the rules that change it (SPEC §4.6-4.7).
///
/// A value type that does no I/O: `attach` and `detach` return what the caller has to build. Because it
/// is a value, the caller plans on a copy and keeps the copy only after the kernel side succeeded:
///
///     var next = planner
///     switch next.attach(member) {
///     case .rebuild(let members): try build(members); planner = next
///     case .rejected(let error): throw error          // planner unchanged
///     }
package struct SlotPlanner: Sendable, Equatable {
    /// Slots per dispatcher (`prog0` ... `prog9`).
    package static let slotCount = 10

    /// Members in slot order: `members[i]` runs in `prog<i>`.
    package private(set) var members: [DispatcherMember]

    /// A planner over members already in slot order (e.g. read back from the records).
    package init(members: [DispatcherMember] = []) {
        self.members = members
    }

    /// What `attach` asks the caller to do.
    package enum OnAttach: Sendable, Equatable {
        /// Build a new revision with these members in slot order (index = position).
        case rebuild([DispatcherMember])
        /// Refuse; nothing changed.
        case rejected(DispatchError)
    }

    /// What `detach` asks the caller to do.
    package enum OnDetach: Sendable, Equatable {
        /// Build a new revision with the survivors in slot order.
        case rebuild([DispatcherMember])
        /// The last member left: remove the dispatcher.
        case teardown
        /// The link is not a member; nothing changed.
        case notAMember
    }

    /// The position of `linkID`, if it is a member.
    package func position(of linkID: UInt32) -> Int? {
        members.firstIndex { $0.linkID == linkID }
    }

    /// Adds `member`, placing it by (priority, new before existing, program name).
    ///
    /// - Parameter hookDescription: names the hook in the "full" message, e.g. `veth0 xdp` or `veth0 tc ingress`.
    /// - Returns: `.rejected` with `.invalidArgument` for a negative priority, `.failedPrecondition` when
    ///   all 10 slots are taken; otherwise `.rebuild` with the new slot order, which is also the new state.
    package mutating func attach(_ member: DispatcherMember, hookDescription: String) -> OnAttach {
        guard member.priority >= 0 else {
            return .rejected(
                DispatchError(.invalidArgument, "priority must be non-negative, got \(member.priority)")
            )
        }
        guard members.count < Self.slotCount else {
            return .rejected(
                DispatchError(
                    .failedPrecondition,
                    "no free dispatcher slots on \(hookDescription) (all \(Self.slotCount) occupied)"
                )
            )
        }
        members = Self.order(new: member, existing: members)
        return .rebuild(members)
    }

    /// Removes the member with `linkID`; the survivors are re-sorted as existing members.
    package mutating func detach(linkID: UInt32) -> OnDetach {
        guard let index = position(of: linkID) else { return .notAMember }
        var rest = members
        rest.remove(at: index)
        members = Self.order(new: nil, existing: rest)
        return members.isEmpty ? .teardown : .rebuild(members)
    }

    /// Removes every member whose program is `programID` (an Unload), re-sorting the survivors.
    package mutating func removeProgram(_ programID: UInt32) -> OnDetach {
        let rest = members.filter { $0.programID != programID }
        guard rest.count != members.count else { return .notAMember }
        members = Self.order(new: nil, existing: rest)
        return members.isEmpty ? .teardown : .rebuild(members)
    }

    /// The sort of SPEC §4.7: stable on (priority, new first, program name); exact ties keep the
    /// previous relative order of `existing`.
    static func order(new: DispatcherMember?, existing: [DispatcherMember]) -> [DispatcherMember] {
        var keyed: [(member: DispatcherMember, isNew: Bool, previous: Int)] = existing.enumerated().map {
            ($0.element, false, $0.offset)
        }
        if let new { keyed.append((new, true, -1)) }
        keyed.sort { a, b in
            if a.member.priority != b.member.priority { return a.member.priority < b.member.priority }
            if a.isNew != b.isNew { return a.isNew }
            if a.member.programName != b.member.programName { return a.member.programName < b.member.programName }
            return a.previous < b.previous
        }
        return keyed.map(\.member)
    }
}
