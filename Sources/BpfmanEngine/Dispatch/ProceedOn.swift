/// Which chain a proceed_on list belongs to: the two families use different codes and bit layouts.
package enum ProceedOnFamily: String, Sendable, Equatable {
    case xdp
    case tc

    /// The name used in error messages: `XDP` or `TC`.
    var label: String { self == .xdp ? "XDP" : "TC" }
}

/// XDP actions a member may continue on (SPEC §4.8). Bit = `1 << code`.
package enum XDPAction: Int32, Sendable, CaseIterable {
    case aborted = 0
    case drop = 1
    case pass = 2
    case tx = 3
    case redirect = 4
    case dispatcherReturn = 31

    /// The name used by the CLI and upstream bpfman.
    package var name: String {
        switch self {
        case .aborted: "aborted"
        case .drop: "drop"
        case .pass: "pass"
        case .tx: "tx"
        case .redirect: "redirect"
        case .dispatcherReturn: "dispatcher_return"
        }
    }
}

/// TC actions a member may continue on (SPEC §4.8). Bit = `1 << (code + 1)`, so `unspec` (-1) is bit 0.
package enum TCAction: Int32, Sendable, CaseIterable {
    case unspec = -1
    case ok = 0
    case reclassify = 1
    case shot = 2
    case pipe = 3
    case stolen = 4
    case queued = 5
    case `repeat` = 6
    case redirect = 7
    case trap = 8
    case dispatcherReturn = 30

    /// The name used by the CLI and upstream bpfman.
    package var name: String {
        switch self {
        case .unspec: "unspec"
        case .ok: "ok"
        case .reclassify: "reclassify"
        case .shot: "shot"
        case .pipe: "pipe"
        case .stolen: "stolen"
        case .queued: "queued"
        case .repeat: "repeat"
        case .redirect: "redirect"
        case .trap: "trap"
        case .dispatcherReturn: "dispatcher_return"
        }
    }
}

/// The effective proceed_on of one dispatcher member: the code list as reported and its bit mask.
///
/// Build one with `ProceedOn(family:codes:)`; an empty request gives the family's default
/// (XDP `[2, 31]` = 2147483652, TC `[3, 30]` = 2147483664). Duplicates are dropped, request order kept.
package struct ProceedOn: Sendable, Equatable, Hashable {
    package let family: ProceedOnFamily
    /// Effective codes, duplicates removed, request order kept.
    package let codes: [Int32]

    /// The XDP default, `[pass, dispatcher_return]`.
    package static let xdpDefaultCodes: [Int32] = [XDPAction.pass.rawValue, XDPAction.dispatcherReturn.rawValue]
    /// The TC default, `[pipe, dispatcher_return]` (`ok` is deliberately absent).
    package static let tcDefaultCodes: [Int32] = [TCAction.pipe.rawValue, TCAction.dispatcherReturn.rawValue]

    /// Validates `codes` as a proceed_on list of `family`.
    /// - Throws: `DispatchError` `.invalidArgument`, `invalid XDP proceed_on: unknown XDP action code <c>`
    ///   (or the TC equivalent) for the first unknown code.
    package init(family: ProceedOnFamily, codes requested: [Int32]) throws(DispatchError) {
        var effective: [Int32] = []
        for code in requested {
            guard Self.isKnown(code, in: family) else {
                throw DispatchError(
                    .invalidArgument,
                    "invalid \(family.label) proceed_on: unknown \(family.label) action code \(code)"
                )
            }
            if !effective.contains(code) { effective.append(code) }
        }
        if effective.isEmpty {
            effective = family == .xdp ? Self.xdpDefaultCodes : Self.tcDefaultCodes
        }
        self.family = family
        self.codes = effective
    }

    /// Parses action names (`pass`, `dispatcher_return`, ...) as the CLI accepts them.
    /// - Throws: `DispatchError` `.invalidArgument` naming the first unknown name.
    package init(family: ProceedOnFamily, names: [String]) throws(DispatchError) {
        var codes: [Int32] = []
        for name in names {
            guard let code = Self.code(named: name, in: family) else {
                throw DispatchError(.invalidArgument, "invalid \(family.label) proceed_on: unknown action \"\(name)\"")
            }
            codes.append(code)
        }
        try self.init(family: family, codes: codes)
    }

    /// The mask written into the dispatcher's `chain_call_actions[i]`.
    package var mask: UInt32 {
        codes.reduce(0) { $0 | Self.bit(for: $1, in: family) }
    }

    /// The action names of `codes`, in order.
    package var names: [String] {
        codes.map { Self.name(of: $0, in: family) ?? String($0) }
    }

    /// The bit that `code` sets in the mask of `family`.
    package static func bit(for code: Int32, in family: ProceedOnFamily) -> UInt32 {
        switch family {
        case .xdp: UInt32(1) << UInt32(code)
        case .tc: UInt32(1) << UInt32(code + 1)
        }
    }

    package static func isKnown(_ code: Int32, in family: ProceedOnFamily) -> Bool {
        switch family {
        case .xdp: XDPAction(rawValue: code) != nil
        case .tc: TCAction(rawValue: code) != nil
        }
    }

    package static func name(of code: Int32, in family: ProceedOnFamily) -> String? {
        switch family {
        case .xdp: XDPAction(rawValue: code)?.name
        case .tc: TCAction(rawValue: code)?.name
        }
    }

    package static func code(named name: String, in family: ProceedOnFamily) -> Int32? {
        let wanted = name.lowercased()
        switch family {
        case .xdp: return XDPAction.allCases.first { $0.name == wanted }?.rawValue
        case .tc: return TCAction.allCases.first { $0.name == wanted }?.rawValue
        }
    }

    /// Whether a member with this mask lets the chain continue after returning `ret` (SPEC §4.4/4.5 runtime
    /// rule, mirrored here so tests can state what the dispatcher will do).
    package func continues(after ret: Int32) -> Bool {
        let shift = family == .xdp ? Int64(ret) : Int64(ret) + 1
        guard shift >= 0, shift <= 31 else { return false }
        return (mask & (UInt32(1) << UInt32(shift))) != 0
    }
}
