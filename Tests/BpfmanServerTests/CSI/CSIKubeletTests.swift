import Foundation
import Glibc
import TestSupport
import Testing

@testable import BpfmanEngine
@testable import BpfmanServer

extension CSIKernelTests {
    /// A kubelet stand-in (grpcio in a separate process) against the CSI plugin over its Unix socket, with a real
    /// engine, a real program writing its maps, and real mounts (SPEC §7, acceptance scenarios 39-42).
    @Suite(.enabled(if: InteropTools.csiAvailable, "\(InteropTools.csiMissing)"))
    struct CSIKubeletTests {
        @Test func publishedMapsAreTheProgramsAndCountFromAnotherProcess() async throws {
            try await withCSIPlugin("rt") { h in
                let id = try await h.loadCounter(named: "csi-test")
                let target = try h.podTarget("vol-rt")
                let volume = h.csiPaths.volumeFilesystem("vol-rt")

                let reply = try await h.publish("vol-rt", target: target, group: "12345")
                #expect(reply.code == "OK", "\(reply)")

                // One bpffs mount at the target and one at the per-volume directory, both nosuid,nodev,noexec.
                let atTarget = csiMounts(at: target)
                let atVolume = csiMounts(at: volume)
                #expect(atTarget.count == 1 && atTarget.first?.type == "bpf", "\(atTarget)")
                #expect(atVolume.count == 1 && atVolume.first?.type == "bpf", "\(atVolume)")
                for option in ["nosuid", "nodev", "noexec", "rw"] {
                    #expect(atVolume.first?.options.contains(option) == true, "\(option) on \(volume)")
                }
                #expect(atTarget.first?.options.contains("rw") == true)

                // The pins at the target are the program's maps (same kernel ids), seen from another process.
                for map in ["csi_counts", "csi_last_pid"] {
                    let ours = try #require(
                        try await bpftoolJSON(["map", "show", "pinned", "\(target)/\(map)"]) as? [String: Any]
                    )
                    let program = try #require(
                        try await bpftoolJSON(["map", "show", "pinned", h.paths.mapPin(owner: id, map: map)])
                            as? [String: Any]
                    )
                    #expect(ours["id"] as? Int == program["id"] as? Int, "\(map): \(ours) vs \(program)")
                    #expect(ours["name"] as? String == String(map.prefix(15)))
                    // fsGroup: group 12345, mode 0660.
                    let info = try FileManager.default.attributesOfItem(atPath: "\(target)/\(map)")
                    #expect((info[.groupOwnerAccountID] as? NSNumber)?.intValue == 12345, "\(map) group")
                    #expect((info[.posixPermissions] as? NSNumber)?.intValue == 0o660, "\(map) mode")
                }
                let directory = try FileManager.default.attributesOfItem(atPath: target)
                #expect((directory[.groupOwnerAccountID] as? NSNumber)?.intValue == 12345, "volume root group")
                #expect((directory[.posixPermissions] as? NSNumber)?.intValue == 0o750, "volume root mode")
                let entries = try FileManager.default.contentsOfDirectory(atPath: target)
                    .filter { $0 != "maps.debug" && $0 != "progs.debug" }
                #expect(entries.sorted() == ["csi_counts", "csi_last_pid"])

                // The counter the program writes moves, read through the pod's mount by bpftool.
                let before = try await counterValue(at: "\(target)/csi_counts")
                for _ in 0..<7 { _ = getppid() }
                let after = try await counterValue(at: "\(target)/csi_counts")
                #expect(after >= before + 7, "counter \(before) -> \(after)")

                // The volume record is on disk.
                #expect(FileManager.default.fileExists(atPath: h.csiPaths.volumeRecords + "/vol-rt.json"))
                let record = try #require(CSIVolumeRecords(directory: h.csiPaths.volumeRecords).record("vol-rt"))
                #expect(
                    record.programID == id && record.maps == ["csi_counts", "csi_last_pid"] && record.group == 12345
                )

                // Publishing again is a no-op; still one mount each (a lost record is written again).
                try FileManager.default.removeItem(atPath: h.csiPaths.volumeRecords + "/vol-rt.json")
                #expect(try await h.publish("vol-rt", target: target, group: "12345").code == "OK")
                #expect(CSIVolumeRecords(directory: h.csiPaths.volumeRecords).record("vol-rt") == record)
                #expect(csiMounts(at: target).count == 1)
                #expect(csiMounts(at: volume).count == 1)
                // Different maps or access mode: ALREADY_EXISTS, nothing changed.
                let fewer = try await h.publish("vol-rt", target: target, maps: "csi_counts")
                #expect(fewer.code == "ALREADY_EXISTS", "\(fewer)")
                #expect(fewer.message.contains("already published with different maps or access mode"))
                #expect(try await h.publish("vol-rt", target: target, readOnly: true).code == "ALREADY_EXISTS")
                #expect(csiMounts(at: target).count == 1)

                // Unpublish removes both mounts and both directories; a second unpublish is OK too.
                #expect(try await h.unpublish("vol-rt", target: target).code == "OK")
                #expect(csiMounts(at: target).isEmpty && csiMounts(at: volume).isEmpty)
                #expect(!FileManager.default.fileExists(atPath: target))
                #expect(!FileManager.default.fileExists(atPath: volume))
                #expect(!FileManager.default.fileExists(atPath: h.csiPaths.volumeRecords + "/vol-rt.json"))
                #expect(try await h.unpublish("vol-rt", target: target).code == "OK")
            }
        }

        @Test func readOnlyPublishIsAReadOnlyMount() async throws {
            try await withCSIPlugin("ro") { h in
                _ = try await h.loadCounter(named: "csi-test")
                let target = try h.podTarget("vol-ro")
                #expect(try await h.publish("vol-ro", target: target, maps: "csi_counts", readOnly: true).code == "OK")
                let mount = try #require(csiMounts(at: target).last)
                #expect(
                    mount.options.contains("ro") && mount.options.contains("nosuid") && mount.options.contains("noexec")
                )
                // A read-only bpffs refuses new pins.
                #expect(mkdir(target + "/extra", 0o755) != 0 && errno == EROFS)
                // The repeat keeps ro and adds nothing; a read-write repeat is incompatible.
                #expect(try await h.publish("vol-ro", target: target, maps: "csi_counts", readOnly: true).code == "OK")
                #expect(csiMounts(at: target).count == 1)
                #expect(try await h.publish("vol-ro", target: target, maps: "csi_counts").code == "ALREADY_EXISTS")
                #expect(try await bpftoolJSON(["map", "dump", "pinned", target + "/csi_counts"]) is [Any])
                #expect(try await h.unpublish("vol-ro", target: target).code == "OK")
            }
        }

        @Test func unknownProgramOrMapIsNotFoundAndMountsNothing() async throws {
            try await withCSIPlugin("nf") { h in
                _ = try await h.loadCounter(named: "csi-test")
                let target = try h.podTarget("vol-nf")
                let volume = h.csiPaths.volumeFilesystem("vol-nf")

                let program = try await h.publish("vol-nf", target: target, program: "x")
                #expect(program.code == "NOT_FOUND" && program.message == "program \"x\" not found", "\(program)")
                #expect(csiMounts(under: h.root + "/pods").isEmpty && csiMounts(at: volume).isEmpty)

                let map = try await h.publish("vol-nf", target: target, maps: "csi_counts,nope")
                #expect(map.code == "NOT_FOUND", "\(map)")
                #expect(map.message.contains("map \"nope\" is not published by program \"csi-test\""), "\(map)")
                #expect(csiMounts(at: target).isEmpty, "target unmounted after the rollback")
                #expect(csiMounts(at: volume).isEmpty && !FileManager.default.fileExists(atPath: volume))
                #expect(!FileManager.default.fileExists(atPath: h.csiPaths.volumeRecords + "/vol-nf.json"))

                // Internal maps (.bss/.data/.rodata) are never published.
                let internalMap = try await h.publish("vol-nf", target: target, maps: ".bss")
                #expect(internalMap.code == "NOT_FOUND", "\(internalMap)")
            }
        }

        @Test func restartBetweenPublishAndUnpublish() async throws {
            try await withCSIPlugin("rs") { h in
                let id = try await h.loadCounter(named: "csi-test")
                let target = try h.podTarget("vol-rs")
                #expect(try await h.publish("vol-rs", target: target).code == "OK")

                try await h.restart()
                // The restarted plugin still knows the volume and still serves it.
                let record = try #require(CSIVolumeRecords(directory: h.csiPaths.volumeRecords).record("vol-rs"))
                #expect(record.programID == id && record.targetPath == target)
                #expect(try await h.publish("vol-rs", target: target).code == "OK", "repeat after restart is a no-op")
                #expect(csiMounts(at: target).count == 1)
                let before = try await counterValue(at: "\(target)/csi_counts")
                for _ in 0..<3 { _ = getppid() }
                #expect(try await counterValue(at: "\(target)/csi_counts") >= before + 3)

                #expect(try await h.unpublish("vol-rs", target: target).code == "OK")
                #expect(csiMounts(at: target).isEmpty && csiMounts(at: h.csiPaths.volumeFilesystem("vol-rs")).isEmpty)
                #expect(CSIVolumeRecords(directory: h.csiPaths.volumeRecords).all().isEmpty)
            }
        }

        @Test func restartDropsRecordsOfVolumesNoLongerMounted() async throws {
            try await withCSIPlugin("rc") { h in
                _ = try await h.loadCounter(named: "csi-test")
                let gone = try h.podTarget("vol-gone")
                let kept = try h.podTarget("vol-kept")
                #expect(try await h.publish("vol-gone", target: gone).code == "OK")
                #expect(try await h.publish("vol-kept", target: kept).code == "OK")
                // Someone unmounts one target behind the plugin's back while it is down.
                #expect(umount2(gone, 0) == 0)
                try await h.restart()
                let records = CSIVolumeRecords(directory: h.csiPaths.volumeRecords).all().map(\.volumeID)
                #expect(records == ["vol-kept"])
                #expect(csiMounts(at: h.csiPaths.volumeFilesystem("vol-gone")).isEmpty)
                #expect(!FileManager.default.fileExists(atPath: h.csiPaths.volumeFilesystem("vol-gone")))
                #expect(csiMounts(at: h.csiPaths.volumeFilesystem("vol-kept")).count == 1)
                #expect(try await h.unpublish("vol-gone", target: gone).code == "OK")
                #expect(try await h.unpublish("vol-kept", target: kept).code == "OK")
            }
        }

        @Test func concurrentIdenticalPublishesEndWithOneMountEach() async throws {
            try await withCSIPlugin("cc") { h in
                _ = try await h.loadCounter(named: "csi-test")
                let target = try h.podTarget("vol-cc")
                let codes = try await h.concurrent(
                    8,
                    "Node/NodePublishVolume",
                    CSIHarness.publishRequest("vol-cc", target: target)
                )
                #expect(codes.count == 8)
                #expect(codes.allSatisfy { $0 == "OK" || $0 == "ABORTED" }, "\(codes)")
                #expect(codes.contains("OK"))
                #expect(csiMounts(at: target).count == 1)
                #expect(csiMounts(at: h.csiPaths.volumeFilesystem("vol-cc")).count == 1)
                #expect(try await h.unpublish("vol-cc", target: target).code == "OK")
            }
        }

        @Test func operationsOnABusyVolumeAreAborted() async throws {
            try await withCSIPlugin("ab") { h in
                _ = try await h.loadCounter(named: "csi-test")
                let target = try h.podTarget("vol-ab")
                let release = h.node._testOnlyMarkBusy("vol-ab")
                let publish = try await h.publish("vol-ab", target: target)
                #expect(publish.code == "ABORTED", "\(publish)")
                #expect(publish.message == "an operation is already in progress for volume \"vol-ab\"")
                #expect(try await h.unpublish("vol-ab", target: target).code == "ABORTED")
                #expect(csiMounts(at: target).isEmpty && !FileManager.default.fileExists(atPath: target))
                // Another volume is not affected, and the volume works once the other operation is over.
                let other = try h.podTarget("vol-ab2")
                #expect(try await h.publish("vol-ab2", target: other).code == "OK")
                #expect(try await h.unpublish("vol-ab2", target: other).code == "OK")
                release()
                #expect(try await h.publish("vol-ab", target: target).code == "OK")
                #expect(try await h.unpublish("vol-ab", target: target).code == "OK")
            }
        }

        @Test func foreignFilesystemOnTargetIsFailedPrecondition() async throws {
            try await withCSIPlugin("fp") { h in
                _ = try await h.loadCounter(named: "csi-test")
                let target = try h.podTarget("vol-fp")
                try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: false)
                try #require(mount("tmpfs", target, "tmpfs", 0, nil) == 0)
                defer { umount2(target, Int32(MNT_DETACH)) }
                let reply = try await h.publish("vol-fp", target: target)
                #expect(reply.code == "FAILED_PRECONDITION", "\(reply)")
                #expect(reply.message == "target path \(target) is already mounted with filesystem tmpfs")
                #expect(csiMounts(at: target).count == 1)
                #expect(!FileManager.default.fileExists(atPath: h.csiPaths.volumeFilesystem("vol-fp")))
            }
        }

        @Test func staleVolumeMountIsReplaced() async throws {
            try await withCSIPlugin("st") { h in
                _ = try await h.loadCounter(named: "csi-test")
                let volume = h.csiPaths.volumeFilesystem("vol-st")
                try FileManager.default.createDirectory(atPath: volume, withIntermediateDirectories: true)
                try #require(mount("bpf", volume, "bpf", 0, nil) == 0, "a stale per-volume bpffs")
                let target = try h.podTarget("vol-st")
                #expect(try await h.publish("vol-st", target: target).code == "OK")
                #expect(csiMounts(at: volume).count == 1, "the stale mount was replaced, not stacked")
                #expect(csiMounts(at: target).count == 1)
                #expect(try await h.unpublish("vol-st", target: target).code == "OK")
            }
        }

        @Test func publishUnpublishCyclesLeaveNothingBehind() async throws {
            try await withCSIPlugin("cy") { h in
                _ = try await h.loadCounter(named: "csi-test")
                let target = try h.podTarget("vol-cy")
                for _ in 0..<3 {
                    #expect(try await h.publish("vol-cy", target: target, group: "4242").code == "OK")
                    #expect(try await h.unpublish("vol-cy", target: target).code == "OK")
                }
                #expect(csiMounts(under: h.root + "/csi").isEmpty && csiMounts(under: h.root + "/pods").isEmpty)
                #expect(try FileManager.default.contentsOfDirectory(atPath: h.csiPaths.filesystems).isEmpty)
                #expect(try FileManager.default.contentsOfDirectory(atPath: h.csiPaths.volumeRecords).isEmpty)
            }
        }

        @Test func lowestProgramIDWinsAndSurvivesItsSibling() async throws {
            try await withCSIPlugin("lo") { h in
                let first = try await h.loadCounter(named: "csi-dup")
                let second = try await h.loadCounter(named: "csi-dup")
                let target = try h.podTarget("vol-lo")
                #expect(
                    try await h.publish("vol-lo", target: target, program: "csi-dup", maps: "csi_counts").code == "OK"
                )
                let pinned = try #require(
                    try await bpftoolJSON(["map", "show", "pinned", target + "/csi_counts"]) as? [String: Any]
                )
                let lowest = try #require(
                    try await bpftoolJSON([
                        "map", "show", "pinned", h.paths.mapPin(owner: min(first, second), map: "csi_counts"),
                    ])
                        as? [String: Any]
                )
                #expect(pinned["id"] as? Int == lowest["id"] as? Int)
                #expect(try await h.unpublish("vol-lo", target: target).code == "OK")
            }
        }

        @Test func podsRootConfinesTargets() async throws {
            try await withCSIPlugin("pr", configuration: CSIConfiguration(podsRoot: "/var/lib/kubelet/pods")) { h in
                let reply = try await h.publish("vol-pr", target: try h.podTarget("vol-pr"))
                #expect(
                    reply.code == "INVALID_ARGUMENT" && reply.message.contains("outside the kubelet pods directory")
                )
                let unpublish = try await h.unpublish("vol-pr", target: "/etc/x")
                #expect(unpublish.code == "INVALID_ARGUMENT")
            }
        }

        @Test func nodeIDComesFromKubeNodeNameElseHostName() async throws {
            try await withCSIPlugin("id", configuration: CSIConfiguration(nodeID: "node-a")) { h in
                let info = try await h.call("Node/NodeGetInfo", [:])
                #expect(info.code == "OK" && info.response["node_id"] as? String == "node-a", "\(info)")
            }
            // Unset configuration: KUBE_NODE_NAME first, the host name otherwise.
            let previous = getenv("KUBE_NODE_NAME").map { String(cString: $0) }
            defer { if let previous { setenv("KUBE_NODE_NAME", previous, 1) } else { unsetenv("KUBE_NODE_NAME") } }
            setenv("KUBE_NODE_NAME", "kube-node-7", 1)
            try await withCSIPlugin("ik") { h in #expect(h.node.nodeID == "kube-node-7") }
            unsetenv("KUBE_NODE_NAME")
            let host = ProcessInfo.processInfo.hostName
            try await withCSIPlugin("ih") { h in
                #expect(h.node.nodeID == host || host.hasPrefix(h.node.nodeID), "\(h.node.nodeID) vs \(host)")
            }
        }

        /// Identity and Node rules in the spirit of csi-sanity, checked by the Python client itself.
        @Test func csiSanityNodeAndIdentityRules() async throws {
            try await withCSIPlugin("sa") { h in
                _ = try await h.loadCounter(named: "csi-test")
                let work = h.root + "/sanity"
                try FileManager.default.createDirectory(
                    atPath: work + "/pod/volumes",
                    withIntermediateDirectories: true
                )
                let result = try await spawn(
                    InteropTools.python!,
                    [
                        Repository.path("Interop/csi/kubelet.py"), "--stubs", InteropTools.csiStubs, h.csiPaths.socket,
                        "sanity",
                        "csi-test", "csi_counts,csi_last_pid", work,
                    ]
                )
                #expect(result.status == 0 && result.output.contains("PASS"), "\(result.output)")
            }
        }
    }
}

/// Slot 0 of a u64 array map, read by bpftool in a separate process through `pin`.
func counterValue(at pin: String) async throws -> UInt64 {
    let dump = try #require(try await bpftoolJSON(["map", "dump", "pinned", pin]) as? [[String: Any]])
    let entry = try #require(dump.first)
    if let formatted = entry["formatted"] as? [String: Any], let value = formatted["value"] as? NSNumber {
        return value.uint64Value
    }
    if let value = entry["value"] as? NSNumber { return value.uint64Value }
    // Without BTF bpftool prints the value as hex byte strings, little-endian.
    let bytes = try #require(entry["value"] as? [String], "\(entry)")
    return bytes.enumerated().reduce(0) {
        $0 | (UInt64($1.element.dropFirst(2), radix: 16) ?? 0) << (8 * UInt64($1.offset))
    }
}
