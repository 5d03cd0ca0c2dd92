/// The read-only configuration baked into a dispatcher's `.rodata` before load (SPEC §4.4, §4.5).
///
/// `bytes` is exactly the layout of the C `struct` in `bpf/xdp_dispatcher.bpf.c` /
/// `bpf/tc_dispatcher.bpf.c`, little-endian, and is written with `bpf_map__set_initial_value`.
package struct DispatcherConfig: Sendable, Equatable {
    /// libxdp's dispatcher magic, so `xdp-loader status` recognises our XDP dispatcher.
    package static let xdpMagic: UInt8 = 236
    /// libxdp's dispatcher layout version 2.
    package static let xdpVersion: UInt8 = 2
    /// `run_prios[i]`, unused for ordering (positions are the order).
    package static let runPriority: UInt32 = 50
    /// Size of the XDP config: 4 header bytes + three arrays of 10 u32.
    package static let xdpSize = 4 + 3 * 4 * SlotPlanner.slotCount
    /// Size of the TC config: u8 + 3 padding bytes + two arrays of 10 u32.
    package static let tcSize = 4 + 2 * 4 * SlotPlanner.slotCount

    package var family: ProceedOnFamily
    /// `chain_call_actions[i]` for each enabled slot, in slot order (count = `num_progs_enabled`).
    package var chainCallActions: [UInt32]

    /// The configuration for `members` in slot order.
    package init(family: ProceedOnFamily, members: [DispatcherMember]) {
        precondition(members.count <= SlotPlanner.slotCount, "a dispatcher has \(SlotPlanner.slotCount) slots")
        self.family = family
        self.chainCallActions = members.map(\.proceedOn.mask)
    }

    /// The `.rodata` image.
    package var bytes: [UInt8] {
        var out: [UInt8] = []
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        let actions = chainCallActions + Array(repeating: 0, count: SlotPlanner.slotCount - chainCallActions.count)
        switch family {
        case .xdp:
            out += [Self.xdpMagic, Self.xdpVersion, UInt8(chainCallActions.count), 0]
            actions.forEach(u32)
            for _ in 0..<SlotPlanner.slotCount { u32(Self.runPriority) }
            for _ in 0..<SlotPlanner.slotCount { u32(0) }  // program_flags
        case .tc:
            out += [UInt8(chainCallActions.count), 0, 0, 0]
            actions.forEach(u32)
            for _ in 0..<SlotPlanner.slotCount { u32(Self.runPriority) }
        }
        return out
    }
}
