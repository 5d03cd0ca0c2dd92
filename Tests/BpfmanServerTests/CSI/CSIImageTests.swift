import Foundation
import Glibc
import TestSupport
import Testing

extension CSIKernelTests {
    /// A program loaded from a bytecode image, as the operator's agent loads every program (SPEC §7, §8): the
    /// kubelet publishes its maps into a pod exactly as for a program loaded from a file.
    @Suite(
        .enabled(
            if: InteropTools.csiAvailable && CSIDaemonProcess.executable != nil && RegistryTools.canRunRegistry,
            "\(InteropTools.csiMissing); \(CSIDaemonProcess.missing); \(RegistryTools.cannotRunRegistry)"
        )
    )
    struct CSIImageTests {
        /// `bpfman serve --csi-support`; the csi_counter fixture pushed to Debian's docker-registry on 127.0.0.1,
        /// loaded through the main socket from the image with `bpfman.io/ProgramName` and attached; the kubelet's
        /// NodePublishVolume mounts its two maps at the pod's target path, they are the program's own maps, and
        /// bpftool reads the counter move through the pod's mount; NodeUnpublishVolume removes it all.
        @Test func mapsOfAProgramLoadedFromAnImageArePublishedIntoAPod() async throws {
            let layout = try OCILayout(directory: try makeTemporaryDirectory(prefix: "csi-img-layout"))
            defer { try? FileManager.default.removeItem(atPath: layout.directory) }
            try layout.add(
                try TestImage.bytecode(
                    objectAt: try BPFFixtures.object("csi_counter"),
                    programs: ["csi_count": "tracepoint"],
                    maps: ["csi_counts": "array", "csi_last_pid": "hash"]
                ),
                tag: "csi"
            )
            try await withTestRegistry { registry in
                try await registry.push(layout: layout.directory, tag: "csi", repository: "bytecode/csi", as: "v1")
                let url = "\(registry.host)/bytecode/csi:v1"

                var template = Array("/tmp/csi-img-XXXXXX".utf8CString)
                let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
                let directory = String(cString: try #require(made))
                let daemon = try CSIDaemonProcess(directory: directory)
                defer {
                    if daemon.process.isRunning { kill(daemon.process.processIdentifier, SIGKILL) }
                    for mountPoint in csiMounts(under: directory).reversed() {
                        umount2(mountPoint.path, Int32(MNT_DETACH))
                    }
                    try? FileManager.default.removeItem(atPath: directory)
                }
                try await daemon.waitUntilServing()
                func kubelet(_ arguments: [String]) async throws -> [String: Any] {
                    let result = try await spawn(
                        InteropTools.python!,
                        [Repository.path("Interop/csi/kubelet.py"), "--stubs", InteropTools.csiStubs] + arguments
                    )
                    let log = (try? String(contentsOfFile: directory + "/daemon.log", encoding: .utf8)) ?? ""
                    try #require(result.status == 0, "kubelet.py \(arguments) failed:\n\(result.output)\n\(log)")
                    let line = try #require(result.output.split(separator: "\n").last.map(String.init))
                    return try #require(
                        try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                        "\(line)"
                    )
                }

                // The operator's agent loads the program from the image and attaches it.
                let loaded = try await kubelet([
                    daemon.socketPath, "operator-load", "image:\(url)", "csi_count", "csi-image",
                    "syscalls/sys_enter_getppid",
                ])
                let programID = try #require(loaded["id"] as? Int, "\(loaded)")
                let mapPinPath = try #require(loaded["map_pin_path"] as? String, "\(loaded)")
                let image = try #require(loaded["image"] as? [String: Any], "Load reports the image: \(loaded)")
                #expect(image["url"] as? String == url && image["image_pull_policy"] as? Int == 1, "\(image)")
                #expect(mapPinPath == daemon.runtimeDirectory + "/fs/maps/\(programID)")

                // The kubelet publishes a volume asking for both maps into a pod directory.
                let parent = directory + "/pods/p1/volumes/kubernetes.io~csi/vol-img"
                try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
                let target = parent + "/mount"
                let request = CSIHarness.publishRequest("vol-img", target: target, program: "csi-image", group: "2345")
                let json = String(decoding: try JSONSerialization.data(withJSONObject: request), as: UTF8.self)
                let published = try await kubelet([daemon.csiSocket, "call", "Node/NodePublishVolume", json])
                #expect(published["code"] as? String == "OK", "\(published)")
                #expect(csiMounts(at: target).map(\.type) == ["bpf"], "\(csiMounts(at: target))")
                let entries = try FileManager.default.contentsOfDirectory(atPath: target)
                    .filter { $0 != "maps.debug" && $0 != "progs.debug" }
                #expect(entries.sorted() == ["csi_counts", "csi_last_pid"])

                // What the pod sees are the program's own maps (same kernel ids), in the fsGroup, mode 0660.
                for map in ["csi_counts", "csi_last_pid"] {
                    let ours = try #require(
                        try await bpftoolJSON(["map", "show", "pinned", "\(target)/\(map)"]) as? [String: Any]
                    )
                    let program = try #require(
                        try await bpftoolJSON(["map", "show", "pinned", "\(mapPinPath)/\(map)"]) as? [String: Any]
                    )
                    #expect(ours["id"] as? Int != nil && ours["id"] as? Int == program["id"] as? Int, "\(map)")
                    let info = try FileManager.default.attributesOfItem(atPath: "\(target)/\(map)")
                    #expect((info[.groupOwnerAccountID] as? NSNumber)?.intValue == 2345, "\(map) group")
                    #expect((info[.posixPermissions] as? NSNumber)?.intValue == 0o660, "\(map) mode")
                }

                // The counter the image's program writes moves, read by bpftool through the pod's mount.
                let before = try await counterValue(at: target + "/csi_counts")
                for _ in 0..<6 { _ = getppid() }
                let after = try await counterValue(at: target + "/csi_counts")
                #expect(after >= before + 6, "counter \(before) -> \(after)")

                let unpublish = String(
                    decoding: try JSONSerialization.data(
                        withJSONObject: ["volume_id": "vol-img", "target_path": target]
                    ),
                    as: UTF8.self
                )
                let reply = try await kubelet([daemon.csiSocket, "call", "Node/NodeUnpublishVolume", unpublish])
                #expect(reply["code"] as? String == "OK", "\(reply)")
                #expect(csiMounts(at: target).isEmpty && !FileManager.default.fileExists(atPath: target))
                #expect(csiMounts(under: daemon.runtimeDirectory + "/csi").isEmpty)
                _ = try await kubelet([daemon.socketPath, "operator-unload", "\(programID)"])
                #expect(try await daemon.stop(SIGTERM) == 0, "clean exit on SIGTERM")
            }
        }
    }
}
