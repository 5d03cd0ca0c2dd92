internal import Glibc
internal import SystemCalls

/// A qdisc or filter as an rtnetlink dump reports it.
package struct TCObject: Sendable, Equatable {
    /// `TCA_KIND`: `clsact`, `ingress`, `bpf`, `u32`, ...
    package var kind: String
    package var ifindex: Int32
    package var parent: UInt32
    package var handle: UInt32
    /// Filters: netlink priority (upper half of `tcm_info`). 0 for qdiscs.
    package var priority: UInt16
    /// Filters: protocol in host order (lower half of `tcm_info`, which is network order). 0 for qdiscs.
    package var protocolNumber: UInt16
}

/// Read-only rtnetlink dumps of the TC objects on an interface, in the calling thread's namespace.
///
/// libbpf's `bpf_tc_*` functions create and delete, but cannot say which qdisc owns the ingress slot or
/// which filters sit at a priority; SPEC §3.3/§4.5 need both, so these two dumps are done here by hand.
package enum TCNetlink {
    /// `TC_H_INGRESS`: the parent of the `ingress` and `clsact` qdiscs.
    package static let ingressParent: UInt32 = 0xFFFF_FFF1
    /// clsact's ingress and egress hooks (`TC_H_MIN_INGRESS` / `TC_H_MIN_EGRESS` under `ffff:`).
    package static let clsactIngress: UInt32 = 0xFFFF_FFF2
    package static let clsactEgress: UInt32 = 0xFFFF_FFF3
    /// `ETH_P_ALL`.
    package static let ethPAll: UInt16 = 0x0003

    private static let rtmGetQdisc: UInt16 = 38
    private static let rtmGetFilter: UInt16 = 46
    private static let tcaKind: UInt16 = 1
    // <linux/netlink.h> constants; Glibc's module does not export them.
    private static let netlinkRoute: Int32 = 0
    private static let flagRequest: UInt16 = 0x1
    private static let flagDump: UInt16 = 0x300
    private static let messageError: UInt16 = 2
    private static let messageDone: UInt16 = 3

    /// The qdisc occupying the ingress/clsact slot of `ifindex`, if any.
    package static func ingressQdisc(ifindex: UInt32) throws(DispatchError) -> TCObject? {
        try dump(type: rtmGetQdisc, ifindex: ifindex, parent: 0).first {
            $0.ifindex == Int32(ifindex) && $0.parent == ingressParent
        }
    }

    /// The filters (not the per-priority chain headers) under clsact `parent` of `ifindex`, in dump order,
    /// which is the order the kernel runs them in.
    package static func filters(ifindex: UInt32, parent: UInt32) throws(DispatchError) -> [TCObject] {
        try dump(type: rtmGetFilter, ifindex: ifindex, parent: parent).filter { $0.handle != 0 }
    }

    private static func dump(type: UInt16, ifindex: UInt32, parent: UInt32) throws(DispatchError) -> [TCObject] {
        let socketFD = try checked(
            valueOrErrno("socket(AF_NETLINK)") {
                socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), netlinkRoute)
            }
        )
        let fd = OwnedFD(taking: socketFD)

        // nlmsghdr (16 bytes) + tcmsg (20 bytes).
        var request = [UInt8](repeating: 0, count: 36)
        func put32(_ v: UInt32, at offset: Int) {
            withUnsafeBytes(of: v) { request.replaceSubrange(offset..<offset + 4, with: $0) }
        }
        func put16(_ v: UInt16, at offset: Int) {
            withUnsafeBytes(of: v) { request.replaceSubrange(offset..<offset + 2, with: $0) }
        }
        put32(36, at: 0)
        put16(type, at: 4)
        put16(flagRequest | flagDump, at: 6)
        put32(1, at: 8)  // sequence
        request[16] = UInt8(AF_UNSPEC)
        put32(ifindex, at: 20)
        put32(parent, at: 28)
        let sent = try checked(
            valueOrErrno("send(RTM_GET)") { request.withUnsafeBytes { send(fd.rawValue, $0.baseAddress, $0.count, 0) } }
        )
        guard sent == request.count else { throw DispatchError(.internal, "short netlink send") }

        var objects: [TCObject] = []
        var buffer = [UInt8](repeating: 0, count: 32768)
        while true {
            // The engine's funnel retries EINTR and keeps errno.
            let received = try checked(
                valueOrErrno("recv(NETLINK_ROUTE)") {
                    buffer.withUnsafeMutableBytes { recv(fd.rawValue, $0.baseAddress, $0.count, 0) }
                }
            )
            var offset = 0
            while offset + 16 <= received {
                let length = Int(load32(buffer, offset))
                let messageType = load16(buffer, offset + 4)
                guard length >= 16, offset + length <= received else { break }
                if messageType == messageDone { return objects }
                if messageType == messageError {
                    let code = Int32(bitPattern: load32(buffer, offset + 16))
                    if code == 0 { return objects }
                    throw DispatchError(
                        .internal,
                        "netlink dump failed: \(Errno(rawValue: -code))",
                        errno: Errno(rawValue: -code)
                    )
                }
                if length >= 36 {
                    objects.append(parse(buffer, offset, length))
                }
                offset += (length + 3) & ~3
            }
        }
    }

    private static func parse(_ b: [UInt8], _ start: Int, _ length: Int) -> TCObject {
        let t = start + 16
        let info = load32(b, t + 16)
        var object = TCObject(
            kind: "",
            ifindex: Int32(bitPattern: load32(b, t + 4)),
            parent: load32(b, t + 12),
            handle: load32(b, t + 8),
            priority: UInt16(info >> 16),
            protocolNumber: UInt16(info & 0xFFFF).byteSwapped
        )
        var a = t + 20
        while a + 4 <= start + length {
            let attrLength = Int(load16(b, a))
            let attrType = load16(b, a + 2) & 0x3FFF
            guard attrLength >= 4, a + attrLength <= start + length else { break }
            if attrType == tcaKind {
                let bytes = b[(a + 4)..<(a + attrLength)].prefix { $0 != 0 }
                object.kind = String(decoding: bytes, as: UTF8.self)
            }
            a += (attrLength + 3) & ~3
        }
        return object
    }

    private static func load32(_ b: [UInt8], _ o: Int) -> UInt32 {
        UInt32(b[o]) | UInt32(b[o + 1]) << 8 | UInt32(b[o + 2]) << 16 | UInt32(b[o + 3]) << 24
    }

    private static func load16(_ b: [UInt8], _ o: Int) -> UInt16 {
        UInt16(b[o]) | UInt16(b[o + 1]) << 8
    }

    /// Unwraps a funnelled call, turning its failure into `.internal` with the errno.
    private static func checked<T>(_ result: Result<T, SystemCallError>) throws(DispatchError) -> T {
        switch result {
        case .success(let value): return value
        case .failure(let error):
            throw DispatchError(.internal, "\(error.function): \(error.errno)", errno: error.errno)
        }
    }
}
