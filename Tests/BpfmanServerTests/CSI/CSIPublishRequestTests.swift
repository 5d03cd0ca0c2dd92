import Proto
import Testing

@testable import BpfmanServer
@testable import H2Transport

/// NodePublishVolume validation (SPEC §7.3 step 1) and the mount-table parser, without root.
@Suite struct CSIPublishRequestTests {
    static func request(
        volume: String = "vol",
        target: String = "/var/lib/kubelet/pods/u/volumes/kubernetes.io~csi/vol/mount",
        maps: String? = "a, b,,a ",
        program: String? = "prog",
        mode: Csi_V1_VolumeCapability.AccessMode.Mode = .singleNodeWriter,
        group: String = "",
        fsType: String = "",
        flags: [String] = [],
        block: Bool = false,
        capability: Bool = true
    ) -> Csi_V1_NodePublishVolumeRequest {
        var request = Csi_V1_NodePublishVolumeRequest()
        request.volumeID = volume
        request.targetPath = target
        if capability {
            var cap = Csi_V1_VolumeCapability()
            if block {
                cap.block = Csi_V1_VolumeCapability.BlockVolume()
            } else {
                var mount = Csi_V1_VolumeCapability.MountVolume()
                mount.fsType = fsType
                mount.mountFlags = flags
                mount.volumeMountGroup = group
                cap.mount = mount
            }
            var access = Csi_V1_VolumeCapability.AccessMode()
            access.mode = mode
            cap.accessMode = access
            request.volumeCapability = cap
        }
        if let program { request.volumeContext["csi.bpfman.io/program"] = program }
        if let maps { request.volumeContext["csi.bpfman.io/maps"] = maps }
        request.volumeContext["csi.storage.k8s.io/pod.name"] = "ignored"
        return request
    }

    static func failure(_ request: Csi_V1_NodePublishVolumeRequest, podsRoot: String? = nil) -> GRPCStatus? {
        do {
            _ = try CSIPublishRequest(validating: request, podsRoot: podsRoot)
            return nil
        } catch {
            return error.grpcStatus
        }
    }

    @Test func aGoodRequestIsNormalised() throws {
        let plan = try CSIPublishRequest(
            validating: Self.request(target: "/pods/x/mount/", group: "12345"),
            podsRoot: nil
        )
        #expect(plan.maps == ["a", "b"])
        #expect(plan.programName == "prog")
        #expect(plan.targetPath == "/pods/x/mount")
        #expect(plan.group == 12345)
        #expect(!plan.readOnly)
        let single = try CSIPublishRequest(validating: Self.request(mode: .singleNodeSingleWriter), podsRoot: nil)
        #expect(single.group == nil)
    }

    @Test(arguments: [
        (request(volume: ""), "volume_id is required"),
        (request(volume: "a/b"), "volume_id \"a/b\" must be a single path element"),
        (request(volume: ".."), "volume_id \"..\" must be a single path element"),
        (request(target: ""), "target_path is required"),
        (request(target: "relative/path"), "must be an absolute path other than /"),
        (request(target: "/"), "must be an absolute path other than /"),
        (request(target: "/a/../etc"), "must not contain . or .. components"),
        (request(capability: false), "volume_capability is required"),
        (request(block: true), "block volumes are not supported"),
        (request(fsType: "ext4"), "fs_type must be empty"),
        (request(flags: ["ro"]), "mount_flags are not supported"),
        (request(mode: .unknown), "access_mode must be SINGLE_NODE_WRITER or SINGLE_NODE_SINGLE_WRITER, got UNKNOWN"),
        (request(mode: .multiNodeMultiWriter), "got MULTI_NODE_MULTI_WRITER"),
        (request(mode: .singleNodeReaderOnly), "got SINGLE_NODE_READER_ONLY"),
        (request(group: "wheel"), "volume_mount_group \"wheel\" is not a decimal group id"),
        (request(group: "-1"), "is not a decimal group id"),
        (request(group: "99999999999"), "is not a decimal group id"),
        (request(program: nil), "csi.bpfman.io/program and at least one csi.bpfman.io/maps are required"),
        (request(maps: nil), "csi.bpfman.io/program and at least one csi.bpfman.io/maps are required"),
        (request(maps: " , ,"), "csi.bpfman.io/program and at least one csi.bpfman.io/maps are required"),
        (request(program: "  "), "csi.bpfman.io/program and at least one csi.bpfman.io/maps are required"),
        (request(maps: "ok,../x"), "map name \"../x\" in csi.bpfman.io/maps must be a single path element"),
    ])
    func invalidRequestsNameTheField(_ request: Csi_V1_NodePublishVolumeRequest, _ message: String) {
        let status = Self.failure(request)
        #expect(status?.code == .invalidArgument)
        #expect(status?.message.contains(message) == true, "\(String(describing: status))")
    }

    @Test func podsRootConfinesTargets() {
        let root = "/var/lib/kubelet/pods"
        #expect(Self.failure(Self.request(), podsRoot: root) == nil)
        #expect(
            Self.failure(Self.request(target: "/var/lib/kubelet/podsX/a"), podsRoot: root)?.code == .invalidArgument
        )
        #expect(Self.failure(Self.request(target: "/etc/passwd"), podsRoot: root + "/")?.code == .invalidArgument)
    }

    @Test func mountInfoLinesParse() {
        let table = """
            22 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
            95 22 0:45 / /tmp/a\\040b/mount ro,nosuid,nodev,noexec,relatime shared:50 master:3 - bpf bpf rw,mode=700
            96 22 0:46 / /tmp/x rw,relatime - tmpfs tmpfs rw
            97 96 0:47 / /tmp/x rw,relatime - bpf bpf rw
            garbage line
            """
        let entries = MountEntry.parse(table)
        #expect(entries.count == 4)
        #expect(entries[1].mountPoint == "/tmp/a b/mount")
        #expect(entries[1].filesystemType == "bpf")
        #expect(entries[1].isReadOnly)
        #expect(!entries[0].isReadOnly)
        let stacked = MountEntry.mounts(at: "/tmp/x", in: entries)
        #expect(stacked.map(\.filesystemType) == ["tmpfs", "bpf"])
        #expect(MountEntry.unescape("a\\134b\\011c") == "a\\b\tc")
    }
}
