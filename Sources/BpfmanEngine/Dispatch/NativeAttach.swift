internal import CBPF
internal import Glibc
internal import SystemCalls

/// XDP link mode from `[interfaces.<if>] xdp_mode` (SPEC §1.8).
package enum XDPMode: String, Sendable, CaseIterable {
    case skb
    case drv
    case hw

    /// `XDP_FLAGS_SKB_MODE` 2, `XDP_FLAGS_DRV_MODE` 4, `XDP_FLAGS_HW_MODE` 8.
    package var flags: UInt32 {
        switch self {
        case .skb: 2
        case .drv: 4
        case .hw: 8
        }
    }
}

/// TC direction of a hook.
package enum TCDirection: String, Sendable, CaseIterable {
    case ingress
    case egress

    /// Parses a request's direction after trimming and lower-casing (SPEC §3.3).
    /// - Throws: `.invalidArgument` `invalid TC direction "<d>": must be 'ingress' or 'egress'`.
    package init(parsing text: String) throws(DispatchError) {
        let trimmed = String(text.filter { !$0.isWhitespace }).lowercased()
        guard let direction = TCDirection(rawValue: trimmed) else {
            throw DispatchError(.invalidArgument, "invalid TC direction \"\(text)\": must be 'ingress' or 'egress'")
        }
        self = direction
    }

    /// clsact parent: `ffff:fff2` / `ffff:fff3`.
    package var parent: UInt32 { self == .ingress ? TCNetlink.clsactIngress : TCNetlink.clsactEgress }
    package var hookKind: DispatcherHook.Kind { self == .ingress ? .tcIngress : .tcEgress }
    var attachPoint: bpf_tc_attach_point { self == .ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS }
}

/// XDP links on an interface: native-mode attachments and the dispatcher's interface link share this.
///
/// `create` runs in the calling thread's namespace: call it inside `NetworkNamespace.run`.
enum XDPLink {
    /// Creates an XDP bpf_link for `programFD` on `ifindex` (`BPF_LINK_CREATE`, attach type 37).
    ///
    /// `drv`/`hw` failures are retried once in `skb` mode; EBUSY is retried 5 times, 50 ms apart, doubling.
    /// - Returns: the link fd; `usedMode` receives the mode actually used.
    /// - Throws: `.failedPrecondition` when a program bpfman does not manage is attached (EEXIST, or EBUSY
    ///   after the retries); `.internal` with the errno otherwise.
    ///   The corresponding C function is `bpf_link_create`.
    static func create(
        programFD: Int32,
        ifindex: UInt32,
        iface: String,
        mode: XDPMode,
        usedMode: inout XDPMode
    ) throws(DispatchError) -> OwnedFD {
        var modes = [mode]
        if mode != .skb { modes.append(.skb) }
        var lastError: Int32 = 0
        for candidate in modes {
            var delayMicroseconds: UInt32 = 50_000
            for attempt in 0..<6 {
                var opts = bpf_link_create_opts()
                withUnsafeMutableBytes(of: &opts) { _ = $0.initializeMemory(as: UInt8.self, repeating: 0) }
                opts.sz = MemoryLayout<bpf_link_create_opts>.size
                opts.flags = candidate.flags
                let result = bpf_link_create(programFD, Int32(ifindex), BPF_XDP, &opts)
                if result >= 0 {
                    usedMode = candidate
                    return OwnedFD(taking: result)
                }
                lastError = BPFError.errno(of: result, "attach xdp \(iface)")?.rawValue ?? 0
                if lastError == EEXIST { throw foreignProgram(iface) }
                guard lastError == EBUSY, attempt < 5 else { break }
                usleep(delayMicroseconds)
                delayMicroseconds *= 2
            }
            if lastError == EBUSY { throw foreignProgram(iface) }
        }
        throw DispatchError(
            .internal,
            "attach xdp \(iface): \(Errno(rawValue: lastError))",
            errno: Errno(rawValue: lastError)
        )
    }

    private static func foreignProgram(_ iface: String) -> DispatchError {
        DispatchError(.failedPrecondition, "interface \(iface) already has an XDP program that bpfman does not manage")
    }
}

/// What a native XDP attach produced.
package struct NativeXDPAttachment: Sendable, Equatable {
    package var ifindex: UInt32
    /// Kernel id of the new XDP link (pinned by the caller's path).
    package var kernelLinkID: UInt32
    /// The mode actually used (after a drv -> skb fallback).
    package var mode: XDPMode
}

/// Native-mode XDP (SPEC §4.9): one program per interface, attached directly with an XDP bpf_link.
package enum NativeXDP {
    /// Attaches the program pinned at `programPin` to `iface` in `netns` and pins the link at `linkPin`
    /// (normally `<rd>/fs/links/<link_id>`). No fd outlives the call; on failure nothing is left behind.
    ///
    /// The caller checks its records first and refuses a second bpfman program with `secondProgramError`.
    /// - Throws: `.invalidArgument` for an unknown interface; `.failedPrecondition` when a foreign XDP
    ///   program is attached; `.internal` when the kernel refuses.
    package static func attach(
        netns: NetworkNamespace,
        iface: String,
        programPin: String,
        mode: XDPMode,
        linkPin: String
    ) throws(DispatchError) -> NativeXDPAttachment {
        try NetworkInterface.validate(name: iface)
        let program = try DispatchBPF.open(pin: programPin)
        return try netns.run { () throws(DispatchError) -> NativeXDPAttachment in
            let ifindex = try NetworkInterface.index(of: iface, netnsLabel: netns.label)
            var used = mode
            let link = try XDPLink.create(
                programFD: program.rawValue,
                ifindex: ifindex,
                iface: iface,
                mode: mode,
                usedMode: &used
            )
            let info = try DispatchBPF.linkInfo(link.rawValue)
            try DispatchBPF.pin(link.rawValue, at: linkPin)  // on failure `link` closes and the kernel drops the link
            return NativeXDPAttachment(ifindex: ifindex, kernelLinkID: info.id, mode: used)
        }
    }

    /// Detaches the XDP link pinned at `linkPin` (`BPF_LINK_DETACH`) and removes the pin. A pin already gone
    /// is not an error. Works whether or not the link's namespace still exists.
    package static func detach(linkPin: String) throws(DispatchError) {
        let link: OwnedFD
        do {
            link = try DispatchBPF.open(pin: linkPin)
        } catch  where error.errno == .noSuchFileOrDirectory {
            return
        }
        _ = try DispatchBPF.check(bpf_link_detach(link.rawValue), "detach xdp link \(linkPin)")
        DispatchBPF.remove(linkPin)
    }

    /// The message for a second native XDP attach on one interface (SPEC §3.3).
    package static func secondProgramError(iface: String, programID: UInt32, linkID: UInt32) -> DispatchError {
        DispatchError(
            .failedPrecondition,
            "interface \(iface) already has XDP program \(programID) attached as link \(linkID); more than one XDP "
                + "program per interface needs freplace support, which this kernel does not allow"
        )
    }
}

/// One cls_bpf filter bpfman created: exactly what Detach needs to delete it and nothing else.
package struct TCFilterHandle: Sendable, Equatable, Hashable {
    package var ifindex: UInt32
    package var direction: TCDirection
    /// Netlink priority (not the bpfman priority).
    package var priority: UInt16
    package var handle: UInt32

    package init(ifindex: UInt32, direction: TCDirection, priority: UInt16, handle: UInt32) {
        self.ifindex = ifindex
        self.direction = direction
        self.priority = priority
        self.handle = handle
    }
}

/// clsact qdiscs and cls_bpf direct-action filters (SPEC §4.5, §4.9), in the calling thread's namespace.
enum TCFilters {
    /// The highest bpfman priority a native TC attachment can have (netlink priority = bpfman + 1 ≤ 65535).
    static let maxNativePriority: Int32 = 65534

    /// Makes sure a clsact qdisc owns the ingress slot of `ifindex`, creating it if the slot is empty.
    /// The daemon never deletes a qdisc, not even one it created.
    ///
    /// - Throws: `.failedPrecondition` when another qdisc (e.g. classic `ingress`) is there; `.internal` when
    ///   netlink fails. The corresponding C function is `bpf_tc_hook_create`.
    static func ensureClsact(ifindex: UInt32, iface: String) throws(DispatchError) {
        if let existing = try TCNetlink.ingressQdisc(ifindex: ifindex) {
            guard existing.kind == "clsact" else {
                throw DispatchError(
                    .failedPrecondition,
                    "interface \(iface) has a \"\(existing.kind)\" qdisc where clsact is needed; bpfman does not "
                        + "replace qdiscs it did not create"
                )
            }
            return
        }
        var hook = bpf_tc_hook()
        fill(&hook, ifindex: ifindex, direction: .ingress)
        let result = bpf_tc_hook_create(&hook)
        if result != -EEXIST { _ = try DispatchBPF.check(result, "create clsact qdisc on \(iface)") }
    }

    /// Adds a cls_bpf direct-action filter for `programFD` at netlink `priority`, protocol ETH_P_ALL, with a
    /// kernel-assigned handle. Call `ensureClsact` first.
    ///
    /// - Throws: `.failedPrecondition` when a non-bpf filter holds that priority; `.internal` otherwise.
    ///   The corresponding C function is `bpf_tc_attach`.
    static func add(
        programFD: Int32,
        ifindex: UInt32,
        iface: String,
        direction: TCDirection,
        priority: UInt16
    ) throws(DispatchError) -> TCFilterHandle {
        let foreign = try TCNetlink.filters(ifindex: ifindex, parent: direction.parent).contains {
            $0.priority == priority && ($0.kind != "bpf" || $0.protocolNumber != TCNetlink.ethPAll)
        }
        if foreign {
            throw DispatchError(
                .failedPrecondition,
                "a non-bpf filter occupies priority \(priority) on \(iface) tc \(direction.rawValue)"
            )
        }
        var hook = bpf_tc_hook()
        fill(&hook, ifindex: ifindex, direction: direction)
        var opts = bpf_tc_opts()
        zero(&opts)
        opts.sz = MemoryLayout<bpf_tc_opts>.size
        opts.prog_fd = programFD
        opts.priority = UInt32(priority)
        _ = try DispatchBPF.check(bpf_tc_attach(&hook, &opts), "attach tc \(iface) \(direction.rawValue)")
        return TCFilterHandle(ifindex: ifindex, direction: direction, priority: priority, handle: opts.handle)
    }

    /// Deletes exactly the filter `filter` (parent, priority, handle, ETH_P_ALL). A filter already gone is
    /// not an error. The corresponding C function is `bpf_tc_detach`.
    static func delete(_ filter: TCFilterHandle) throws(DispatchError) {
        var hook = bpf_tc_hook()
        fill(&hook, ifindex: filter.ifindex, direction: filter.direction)
        var opts = bpf_tc_opts()
        zero(&opts)
        opts.sz = MemoryLayout<bpf_tc_opts>.size
        opts.priority = UInt32(filter.priority)
        opts.handle = filter.handle
        let result = bpf_tc_detach(&hook, &opts)
        if result != -ENOENT, result != -ENODEV {
            _ = try DispatchBPF.check(result, "delete tc filter \(filter.priority):\(filter.handle)")
        }
    }

    /// Positions of `ours` among themselves, in the kernel's dump (= execution) order; filters missing from
    /// the kernel get no position.
    static func positions(
        of ours: [TCFilterHandle],
        ifindex: UInt32,
        direction: TCDirection
    )
        throws(DispatchError) -> [TCFilterHandle: Int]
    {
        let wanted = Set(ours.map { PriorityHandle(priority: $0.priority, handle: $0.handle) })
        var result: [TCFilterHandle: Int] = [:]
        var next = 0
        for object in try TCNetlink.filters(ifindex: ifindex, parent: direction.parent)
        where object.kind == "bpf" && wanted.contains(PriorityHandle(priority: object.priority, handle: object.handle))
        {
            result[
                TCFilterHandle(ifindex: ifindex, direction: direction, priority: object.priority, handle: object.handle)
            ] =
                next
            next += 1
        }
        return result
    }

    /// The native netlink priority of a bpfman priority (`p + 1`).
    /// - Throws: `.invalidArgument` for negative priorities or priorities above 65534.
    static func nativePriority(_ priority: Int32) throws(DispatchError) -> UInt16 {
        guard priority >= 0 else {
            throw DispatchError(.invalidArgument, "priority must be non-negative, got \(priority)")
        }
        guard priority <= maxNativePriority else {
            throw DispatchError(
                .invalidArgument,
                "priority \(priority) is out of range for native TC attachment (0-65534)"
            )
        }
        return UInt16(priority + 1)
    }

    private struct PriorityHandle: Hashable {
        var priority: UInt16
        var handle: UInt32
    }

    /// libbpf rejects opts whose padding is not zero ("has non-zero extra bytes"), and Swift's
    /// memberwise zero-init does not promise zero padding: zero the bytes in place, then set fields.
    private static func zero<T>(_ value: inout T) {
        withUnsafeMutableBytes(of: &value) { _ = $0.initializeMemory(as: UInt8.self, repeating: 0) }
    }

    private static func fill(_ hook: inout bpf_tc_hook, ifindex: UInt32, direction: TCDirection) {
        zero(&hook)
        hook.sz = MemoryLayout<bpf_tc_hook>.size
        hook.ifindex = Int32(ifindex)
        hook.attach_point = direction.attachPoint
    }
}

/// Native-mode TC (SPEC §4.9): each attachment is its own cls_bpf direct-action filter at netlink
/// priority = bpfman priority + 1 on the clsact qdisc. No pin: the filter references the program.
package enum NativeTC {
    /// Adds a filter for the program pinned at `programPin` on `iface` `direction` in `netns`.
    ///
    /// - Returns: the recorded filter (ifindex, direction, netlink priority, kernel-assigned handle).
    /// - Throws: `.invalidArgument` for a bad priority or unknown interface; `.failedPrecondition` for a
    ///   non-clsact qdisc or a non-bpf filter at that priority; `.internal` when netlink refuses.
    package static func attach(
        netns: NetworkNamespace,
        iface: String,
        direction: TCDirection,
        priority: Int32,
        programPin: String
    ) throws(DispatchError) -> TCFilterHandle {
        try NetworkInterface.validate(name: iface)
        let netlinkPriority = try TCFilters.nativePriority(priority)
        let program = try DispatchBPF.open(pin: programPin)
        return try netns.run { () throws(DispatchError) -> TCFilterHandle in
            let ifindex = try NetworkInterface.index(of: iface, netnsLabel: netns.label)
            try TCFilters.ensureClsact(ifindex: ifindex, iface: iface)
            return try TCFilters.add(
                programFD: program.rawValue,
                ifindex: ifindex,
                iface: iface,
                direction: direction,
                priority: netlinkPriority
            )
        }
    }

    /// Deletes exactly `filter` in `netns`. If the namespace file is gone, so is the filter: nothing to do.
    package static func detach(netns: NetworkNamespace, filter: TCFilterHandle) throws(DispatchError) {
        if let path = netns.path, access(path, F_OK) != 0 { return }
        try netns.run { () throws(DispatchError) in try TCFilters.delete(filter) }
    }

    /// Positions of bpfman's filters on one hook: index among `ours` in the kernel's execution order.
    package static func positions(
        netns: NetworkNamespace,
        ifindex: UInt32,
        direction: TCDirection,
        ours: [TCFilterHandle]
    ) throws(DispatchError) -> [TCFilterHandle: Int] {
        try netns.run { () throws(DispatchError) -> [TCFilterHandle: Int] in
            try TCFilters.positions(of: ours, ifindex: ifindex, direction: direction)
        }
    }
}
