import CBPF
import Foundation
import SystemCalls
import TestSupport

@testable import BpfmanEngine

/// Helpers for the dispatcher and native-mode kernel tests. Every kernel resource they make carries the
/// `disp` prefix and is removed by the scoped helper that made it.
enum DispatchTestSupport {
    /// Mounts a private bpffs under a fresh temp dir, runs `body` with its path, unmounts and removes it.
    static func withBPFFS<R>(_ body: (String) throws -> R) throws -> R {
        var template = Array("/tmp/disp-bpffs-XXXXXX".utf8CString)
        guard let dir = mkdtemp(&template) else { throw FixtureError("mkdtemp failed") }
        let root = String(cString: dir)
        guard mount("bpf", root, "bpf", 0, nil) == 0 else {
            rmdir(root)
            throw FixtureError("mount bpffs at \(root): \(String(cString: strerror(errno)))")
        }
        defer {
            umount2(root, Int32(MNT_DETACH))
            rmdir(root)
        }
        return try body(root)
    }

    /// Two namespaces joined by a veth pair: frames sent on `a` arrive at `b`.
    struct VethPair {
        var namespaceA: String
        var namespaceB: String
        var a: String
        var b: String
        var netnsA: String { "/var/run/netns/\(namespaceA)" }
        var netnsB: String { "/var/run/netns/\(namespaceB)" }
    }

    /// Creates `disp-a-<tag>`/`disp-b-<tag>` with a veth pair between them, both ends up; deletes both
    /// namespaces afterwards (which removes the veths, their qdiscs and filters).
    static func withVethPair<R>(_ body: (VethPair) throws -> R) throws -> R {
        let pair = try makeVethPair()
        defer { removeVethPair(pair) }
        return try body(pair)
    }

    /// The set-up half of `withVethPair`, for async callers; pair it with `removeVethPair`.
    static func makeVethPair() throws -> VethPair {
        let tag = String(UInt32.random(in: 0..<0xFF_FFFF), radix: 16)
        let pair = VethPair(
            namespaceA: "disp-a-\(tag)",
            namespaceB: "disp-b-\(tag)",
            a: "dispa\(tag)",
            b: "dispb\(tag)"
        )
        do {
            try sh("ip", "netns", "add", pair.namespaceA)
            try sh("ip", "netns", "add", pair.namespaceB)
            // No IPv6 on the test links: router solicitations and MLD reports would add frames to the counts.
            for ns in [pair.namespaceA, pair.namespaceB] {
                for key in ["all", "default"] {
                    try sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.\(key).disable_ipv6=1")
                }
            }
            try sh(
                "ip",
                "link",
                "add",
                pair.a,
                "netns",
                pair.namespaceA,
                "type",
                "veth",
                "peer",
                "name",
                pair.b,
                "netns",
                pair.namespaceB
            )
            try sh("ip", "-n", pair.namespaceA, "link", "set", pair.a, "up")
            try sh("ip", "-n", pair.namespaceB, "link", "set", pair.b, "up")
        } catch {
            removeVethPair(pair)
            throw error
        }
        return pair
    }

    static func removeVethPair(_ pair: VethPair) {
        _ = try? run("ip", ["netns", "del", pair.namespaceA])
        _ = try? run("ip", ["netns", "del", pair.namespaceB])
    }

    /// Runs a command and throws with its output when it fails.
    @discardableResult
    static func sh(_ command: String, _ arguments: String...) throws -> String {
        let result = try run(command, arguments)
        guard result.status == 0 else {
            throw FixtureError("\(command) \(arguments.joined(separator: " ")) failed: \(result.output)")
        }
        return result.output
    }

    /// Sends `count` broadcast Ethernet frames (ethertype 0x88b5, local experimental) out of `iface` in the
    /// namespace at `netns`, through an AF_PACKET socket (so they pass the interface's TC egress hook).
    static func sendFrames(netns: String, iface: String, count: Int) throws {
        let ns = try NetworkNamespace.resolve(netns)
        try ns.run { () throws(DispatchError) in
            let ifindex = try NetworkInterface.index(of: iface, netnsLabel: netns)
            let fd = socket(AF_PACKET, Int32(SOCK_RAW.rawValue), 0)
            guard fd >= 0 else { throw DispatchError(.internal, "AF_PACKET socket failed", errno: .current) }
            defer { close(fd) }
            // struct sockaddr_ll (20 bytes; Glibc's module does not export it): family, protocol, ifindex,
            // hatype, pkttype, halen, addr[8].
            var address = [UInt8](repeating: 0, count: 20)
            withUnsafeBytes(of: UInt16(AF_PACKET)) { address.replaceSubrange(0..<2, with: $0) }
            withUnsafeBytes(of: Int32(ifindex)) { address.replaceSubrange(4..<8, with: $0) }
            address[11] = 6
            for i in 12..<18 { address[i] = 0xFF }
            var frame = [UInt8](repeating: 0, count: 60)
            for i in 0..<6 { frame[i] = 0xFF }
            frame[6...11] = [0x02, 0xD1, 0x5B, 0, 0, 1]
            frame[12] = 0x88
            frame[13] = 0xB5
            for _ in 0..<count {
                let sent = frame.withUnsafeBytes { bytes in
                    address.withUnsafeBytes {
                        sendto(
                            fd,
                            bytes.baseAddress,
                            bytes.count,
                            0,
                            $0.baseAddress!.assumingMemoryBound(to: sockaddr.self),
                            socklen_t($0.count)
                        )
                    }
                }
                guard sent == frame.count else { throw DispatchError(.internal, "sendto failed", errno: .current) }
            }
        }
        usleep(50_000)  // let generic XDP / TC run on the receiving side
    }

    /// A program loaded from a fixture with only `function` enabled, pinned at `<root>/<pinName>`, its
    /// counter map pinned at `<root>/<pinName>_hits`. No fd stays open.
    struct PinnedProgram {
        var programPin: String
        var mapPin: String
        var programID: UInt32
        var name: String

        /// Slot 0 of the program's counter map.
        func hits() throws -> UInt64 {
            let fd = bpf_obj_get(mapPin)
            guard fd >= 0 else { throw FixtureError("open \(mapPin): \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            var key: UInt32 = 0
            var value: UInt64 = 0
            guard bpf_map_lookup_elem(fd, &key, &value) == 0 else { throw FixtureError("lookup in \(mapPin)") }
            return value
        }
    }

    /// Loads `function` from fixture `fixture` (map named `mapName`) and pins it under `root`, at
    /// `<root>/<pinName>` or, without a name, at `<root>/prog_<id>` as the daemon pins programs.
    /// - Parameter extensionTarget: when set, the program is loaded as `BPF_PROG_TYPE_EXT` against the
    ///   program pinned at that path (its `prog0` function), as dispatcher members are.
    static func loadPinned(
        fixture: String,
        function: String,
        mapName: String,
        root: String,
        pinName: String? = nil,
        extensionTarget: String? = nil
    ) throws -> PinnedProgram {
        let path = try BPFFixtures.object(fixture)
        guard let object = cbpf_object_open(path) else { throw FixtureError("open \(path)") }
        defer { bpf_object__close(object) }
        var program = bpf_object__next_program(object, nil)
        var chosen: OpaquePointer?
        while let p = program {
            let name = String(cString: bpf_program__name(p))
            bpf_program__set_autoload(p, name == function)
            if name == function { chosen = p }
            program = bpf_object__next_program(object, p)
        }
        guard let chosen else { throw FixtureError("no function \(function) in \(fixture)") }
        var targetFD: Int32 = -1
        if let extensionTarget {
            targetFD = bpf_obj_get(extensionTarget)
            guard targetFD >= 0 else { throw FixtureError("open \(extensionTarget)") }
            try DispatcherMemberLoading.prepareExtension(program: chosen, targetFD: targetFD)
        }
        defer { if targetFD >= 0 { close(targetFD) } }
        let loaded = bpf_object__load(object)
        guard loaded == 0 else { throw FixtureError("load \(function): \(String(cString: strerror(-loaded)))") }
        var info = bpf_prog_info()
        var length = UInt32(MemoryLayout<bpf_prog_info>.size)
        guard bpf_obj_get_info_by_fd(bpf_program__fd(chosen), &info, &length) == 0 else {
            throw FixtureError("prog info")
        }
        let name = pinName ?? "prog_\(info.id)"
        let programPin = "\(root)/\(name)"
        let mapPin = "\(root)/\(name)_hits"
        guard bpf_program__pin(chosen, programPin) == 0 else { throw FixtureError("pin \(programPin)") }
        guard let map = bpf_object__find_map_by_name(object, mapName), bpf_map__pin(map, mapPin) == 0 else {
            throw FixtureError("pin \(mapPin)")
        }
        return PinnedProgram(programPin: programPin, mapPin: mapPin, programID: info.id, name: function)
    }

    /// Whether a kernel link with `id` still exists.
    static func linkExists(_ id: UInt32) -> Bool {
        let fd = bpf_link_get_fd_by_id(id)
        if fd >= 0 { close(fd) }
        return fd >= 0
    }

    /// The TC filters under `parent` of `iface` in `netns`, as the kernel dumps them.
    static func filters(netns: String, iface: String, direction: TCDirection) throws -> [TCObject] {
        let ns = try NetworkNamespace.resolve(netns)
        return try ns.run { () throws(DispatchError) -> [TCObject] in
            let ifindex = try NetworkInterface.index(of: iface, netnsLabel: netns)
            return try TCNetlink.filters(ifindex: ifindex, parent: direction.parent)
        }
    }
}
