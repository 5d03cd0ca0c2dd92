import Foundation
import Glibc
import TestSupport
import Testing

/// What the container end-to-end test needs besides the daemon tests' own tools.
enum ContainerTools {
    static let podmanPath = RegistryTools.executable("podman")
    static let runc = RegistryTools.executable("runc")
    /// The image `make image` writes, or `$BPFMAN_IMAGE_ARCHIVE`.
    static let archive =
        ProcessInfo.processInfo.environment["BPFMAN_IMAGE_ARCHIVE"] ?? Repository.path(".build/bpfman-image.tar")

    /// Why the test cannot run here, or nil.
    static let missing: String? = {
        var missing: [String] = []
        if podmanPath == nil || runc == nil { missing.append("podman and runc (scripts/setup.sh)") }
        if !FileManager.default.fileExists(atPath: archive) { missing.append("the image at \(archive) (make image)") }
        if KubernetesManifests.python == nil { missing.append("PyYAML in .venv (scripts/setup.sh)") }
        if !InteropTools.goToolchain { missing.append("the Go toolchain for the agent (scripts/setup.sh)") }
        if InteropTools.python == nil || InteropTools.bpftool == nil { missing.append("grpcio in .venv and bpftool") }
        if !RegistryTools.canRunRegistry { missing.append(RegistryTools.cannotRunRegistry) }
        return missing.isEmpty ? nil : "needs " + missing.joined(separator: ", ")
    }()

    /// `podman --runtime runc ARGS` (crun refuses this machine's hybrid cgroups, INTEROP.md); standard output
    /// then standard error. Through `runTool`, not Foundation's `Process`: `podman run -d` leaves conmon behind
    /// holding what Process watches for the exit, and Process would wait for it forever.
    static func podman(_ arguments: [String], timeout: Double = 120) async throws -> SpawnResult {
        let result = try await runTool(podmanPath!, ["--runtime", "runc"] + arguments, timeout: timeout)
        return SpawnResult(
            status: result.status,
            output: String(decoding: result.stdout, as: UTF8.self) + result.errorOutput
        )
    }
}

/// A node for the DaemonSet of packaging/kubernetes, under one temporary directory: the host paths that hold
/// node state (/run/bpfman, /run/bpfman-sock, the kubelet's plugin and pods trees, /var/lib/bpfman,
/// /sys/fs/bpf) are directories under `root/node`, the others (/proc, /tmp, debugfs, /run/netns) are this
/// machine's own. `root` is a shared mount, as / is on a systemd host, so that mounts made in the container
/// on Bidirectional volumes come back to it.
final class PodNode: @unchecked Sendable {  // used by the test that owns it only
    let root: String
    let nodeName = "node-e2e"
    /// podman run's arguments after `run`, from the DaemonSet's bpfman container: flags, then the image and args.
    private(set) var runArguments: [String] = []
    /// The pod's termination grace.
    private(set) var grace = 30

    init() throws {
        // Not under /tmp: the DaemonSet also mounts the host's /tmp (privately), and a pod volume's mount point
        // seen there as well would stay busy in the container after the daemon unmounts it at the pod's path.
        var template = Array("/var/tmp/bpfman-pod-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw FixtureError("mkdtemp failed")
        }
        root = String(cString: made)
        for step in [["--bind", root, root], ["--make-rshared", root]] {
            let result = try run("mount", step)
            guard result.status == 0 else { throw FixtureError("mount \(step): \(result.output)") }
        }
    }

    /// The host side of `path` on this node (`/run/bpfman/fs` -> `<root>/node/run/bpfman/fs`).
    func host(_ path: String) -> String {
        ["/proc", "/tmp", "/sys/kernel/debug", "/run/netns", "/var/run/netns"].contains {
            path == $0 || path.hasPrefix($0 + "/")
        }
            ? path : root + "/node" + path
    }

    /// Makes the volumes and the podman arguments of the DaemonSet's `bpfman` container, running `image`.
    func prepare(_ manifests: KubernetesManifests, image: String) throws {
        let spec = try manifests.podSpec
        let container = try manifests.container("bpfman")
        let configData = try manifests.configData
        var arguments = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]  // INTEROP.md
        if spec["hostNetwork"] as? Bool == true { arguments += ["--network", "host"] }
        if (container["securityContext"] as? [String: Any])?["privileged"] as? Bool == true {
            arguments.append("--privileged")
        }
        for variable in container["env"] as? [[String: Any]] ?? [] {
            let name = try #require(variable["name"] as? String)
            var value = variable["value"] as? String
            if let from = variable["valueFrom"] as? [String: Any] {
                if let key = (from["configMapKeyRef"] as? [String: Any])?["key"] as? String { value = configData[key] }
                if (from["fieldRef"] as? [String: Any])?["fieldPath"] as? String == "spec.nodeName" { value = nodeName }
            }
            arguments += ["-e", "\(name)=\(try #require(value, "no value for \(name)"))"]
        }
        for mount in try #require(container["volumeMounts"] as? [[String: Any]]) {
            let name = try #require(mount["name"] as? String)
            let mountPath = try #require(mount["mountPath"] as? String)
            let volume = try manifests.volume(name)
            let source: String
            if let hostPath = volume["hostPath"] as? [String: Any] {
                source = host(try #require(hostPath["path"] as? String))
                if source.hasPrefix(root) || hostPath["type"] as? String == "DirectoryOrCreate" {
                    try FileManager.default.createDirectory(atPath: source, withIntermediateDirectories: true)
                }
            } else if volume["emptyDir"] != nil {
                source = root + "/emptydir/" + name
                try FileManager.default.createDirectory(atPath: source, withIntermediateDirectories: true)
            } else if volume["configMap"] != nil {
                let key = try #require(mount["subPath"] as? String, "a configMap volume mounted whole")
                let directory = root + "/configmap/" + name
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                source = directory + "/" + key
                try writeBytes(Array(try #require(configData[key]).utf8), to: source)
            } else {
                throw FixtureError("volume \(name): a kind this test does not stand in for")
            }
            var options: [String] = []
            switch mount["mountPropagation"] as? String {
            case "Bidirectional": options.append("rshared")
            case "HostToContainer": options.append("rslave")
            default: break
            }
            if mount["readOnly"] as? Bool == true { options.append("ro") }
            arguments += [
                "-v", "\(source):\(mountPath)" + (options.isEmpty ? "" : ":" + options.joined(separator: ",")),
            ]
        }
        grace = spec["terminationGracePeriodSeconds"] as? Int ?? 30
        runArguments = arguments + [image] + (container["args"] as? [String] ?? [])
    }

    /// Mounts a bpffs at the node's /sys/fs/bpf, as the operator's mount-bpffs init container leaves it.
    func mountDefaultBPFFS() throws {
        let path = host("/sys/fs/bpf")
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let result = try run("mount", ["-t", "bpf", "bpffs", path])
        guard result.status == 0 else { throw FixtureError("mount bpffs: \(result.output)") }
    }

    /// Unmounts everything under `root` (the daemon's bpffs with it, freeing whatever is still pinned there)
    /// and removes it.
    func destroy() {
        for mountPoint in csiMounts(under: root).reversed() { umount2(mountPoint.path, Int32(MNT_DETACH)) }
        try? FileManager.default.removeItem(atPath: root)
    }
}

extension DaemonKernelTests {
    /// The image `make image` builds, run under podman (runc) as the DaemonSet of packaging/kubernetes runs it
    /// (SPEC §1.10): its flags, environment, args and host mounts are read from the manifests, on host
    /// directories standing in for the node's. Driven from the host through the mounted sockets, as the
    /// operator's agent and the kubelet drive it.
    @Suite(.enabled(if: ContainerTools.missing == nil, "\(ContainerTools.missing ?? "")"))
    struct Container {
        /// Waits until `path` accepts a connection (20 s at most), printing the container's log if it does not.
        func waitForSocket(_ path: String, container: String) async throws {
            for _ in 0..<400 {
                if TestDaemon.canConnect(path) { return }
                try await Task.sleep(for: .milliseconds(50))
            }
            let logs = try await ContainerTools.podman(["logs", container])
            throw FixtureError("\(path) never accepted a connection; \(container) logged:\n\(logs.output)")
        }

        /// Mode bits of `path`.
        func mode(_ path: String) throws -> Int {
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            return try #require((attributes[.posixPermissions] as? NSNumber)?.intValue)
        }

        /// The `bpfman` CLI of this build against the daemon's socket; its output as JSON (`-o json`) when `json`.
        @discardableResult
        func cli(_ socket: String, _ arguments: [String], json: Bool = true) async throws -> Any? {
            let result = try await spawn(
                DaemonTools.bpfman!,
                arguments + (json ? ["-o", "json"] : []),
                environment: ["BPFMAN_SOCKET_PATH": socket],
                timeout: 60
            )
            try #require(result.status == 0, "bpfman \(arguments): \(result.output)")
            return json ? try JSONSerialization.jsonObject(with: Data(result.output.utf8)) : nil
        }

        /// One CSI call through the kubelet stand-in; its reply as JSON.
        func kubelet(_ socket: String, _ method: String, _ request: [String: Any]) async throws -> [String: Any] {
            let json = String(decoding: try JSONSerialization.data(withJSONObject: request), as: UTF8.self)
            let result = try await spawn(
                InteropTools.python!,
                [
                    Repository.path("Interop/csi/kubelet.py"), "--stubs", InteropTools.csiStubs, socket, "call", method,
                    json,
                ]
            )
            try #require(result.status == 0, "kubelet.py \(method) failed:\n\(result.output)")
            let line = try #require(result.output.split(separator: "\n").last.map(String.init))
            return try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "\(line)")
        }

        /// The Go agent with AGENT_KEEP=1: Load, Attach and their checks; the program stays. Returns (program, link).
        func agentLoad(_ socket: String, _ object: String) async throws -> (program: Int, link: Int) {
            let result = try await spawn(
                try DaemonTools.goAgent.get(),
                [socket, object, "tracepoint", DaemonKernelTests.tracepointFunction, DaemonKernelTests.tracepoint],
                environment: ["AGENT_KEEP": "1"]
            )
            try #require(result.status == 0 && result.output.contains("PASS"), "agent \(object):\n\(result.output)")
            let words = try #require(
                result.output.split(separator: "\n").first { $0.hasPrefix("program ") }?.split(separator: " "),
                "\(result.output)"
            )
            return (try #require(Int(words[1])), try #require(Int(words[3])))
        }

        /// Sends `count` kill(2) calls of this process to itself (each one counts on sys_enter_kill).
        func kills(_ count: Int = 5) {
            for _ in 0..<count { kill(getpid(), 0) }
        }

        @Test func runsAsTheDaemonSetRunsIt() async throws {
            let manifests = try KubernetesManifests.load()
            let description = try ImageDescription.load()
            let node = try PodNode()
            let suffix = String(node.root.suffix(6)).lowercased()
            let image = "localhost/bpfman-test:\(suffix)"
            let names = ["bpfman-pod-\(suffix)-1", "bpfman-pod-\(suffix)-2"]
            var registry: TestRegistry?
            var tlsRegistry: TestRegistry?
            defer {
                registry?.stop()
                tlsRegistry?.stop()
                for name in names {
                    _ = try? TestSupport.run(
                        ContainerTools.podmanPath!,
                        ["--runtime", "runc", "rm", "-f", "-t", "0", name]
                    )
                }
                _ = try? TestSupport.run(ContainerTools.podmanPath!, ["rmi", "-f", image])
                node.destroy()
            }

            // The archive names the image as the DaemonSet does; skopeo copies it into podman's storage under a
            // name of this test's own.
            let index = try run("tar", ["-xOf", ContainerTools.archive, "index.json"])
            let indexObject = try #require(
                try JSONSerialization.jsonObject(with: Data(index.output.utf8)) as? [String: Any],
                "\(index.output)"
            )
            let annotations = try #require(
                (indexObject["manifests"] as? [[String: Any]])?.first?["annotations"] as? [String: String]
            )
            let daemonSetImage = try #require(try manifests.container("bpfman")["image"] as? String)
            let version = try #require(annotations["org.opencontainers.image.ref.name"])
            #expect(annotations["io.containerd.image.name"] == daemonSetImage, "\(annotations)")
            #expect(daemonSetImage == "\(description.raw["name"] as? String ?? ""):\(version)")
            let copy = try await spawn(
                try #require(RegistryTools.skopeo),
                [
                    "--insecure-policy", "copy", "--quiet", "oci-archive:\(ContainerTools.archive)",
                    "containers-storage:\(image)",
                ]
            )
            try #require(copy.status == 0, "skopeo copy: \(copy.output)")
            let inspected = try await ContainerTools.podman(["image", "inspect", "--format", "{{json .Config}}", image])
            let config = try #require(
                try JSONSerialization.jsonObject(with: Data(inspected.output.utf8)) as? [String: Any],
                "\(inspected.output)"
            )
            #expect(config["Entrypoint"] as? [String] == description.entrypoint)
            #expect(config["Cmd"] as? [String] == description.cmd)

            // The node: the DaemonSet's volumes, the operator's bpffs, the object under the host's /tmp.
            try node.prepare(manifests, image: image)
            try node.mountDefaultBPFFS()
            // The host's /tmp is the container's /tmp: an object there loads by the same path.
            let objectDirectory = try makeTemporaryDirectory(prefix: "pod-object")
            defer { try? FileManager.default.removeItem(atPath: objectDirectory) }
            try #require(objectDirectory.hasPrefix("/tmp/"), "\(objectDirectory) is not under /tmp")
            let object = objectDirectory + "/tracepoint_counter.bpf.o"
            try writeBytes(try readBytes(try DaemonKernelTests.tracepointObject), to: object)
            registry = try await TestRegistry.start()
            let layout = try DaemonKernelTests.Images.tracepointLayout()
            defer { try? FileManager.default.removeItem(atPath: layout.directory) }
            try await registry!.push(layout: layout.directory, tag: "tp", repository: "bytecode/tracepoint")
            // And over HTTPS, through the image's own libcurl and OpenSSL (scripts/build-libcurl.sh), trusting the
            // registry's CA through SSL_CERT_FILE, a file under the shared /tmp.
            tlsRegistry = try await TestRegistry.start(.init(tls: true))
            try await tlsRegistry!.push(layout: layout.directory, tag: "tp", repository: "bytecode/tracepoint")
            let caFile = objectDirectory + "/registry-ca.pem"
            try writeBytes(try readBytes(try #require(tlsRegistry!.caFile)), to: caFile)

            let socket = node.host("/run/bpfman-sock/bpfman.sock")
            let registrar = try #require(try manifests.container("node-driver-registrar")["args"] as? [String])
            let registration = try #require(registrar.first { $0.hasPrefix("--kubelet-registration-path=") })
            let csiSocket = node.host(String(registration.split(separator: "=", maxSplits: 1)[1]))
            let pins = node.host("/run/bpfman/fs")
            func count(_ program: Int) async throws -> UInt64 {
                try await counterValue(at: "\(pins)/maps/\(program)/counter")
            }

            // The first pod.
            let started = try await ContainerTools.podman(
                ["run", "-d", "--name", names[0], "-e", "SSL_CERT_FILE=\(caFile)"] + node.runArguments
            )
            try #require(started.status == 0, "podman run: \(started.output)")
            try await waitForSocket(socket, container: names[0])
            try await waitForSocket(csiSocket, container: names[0])
            #expect(try mode(socket) == 0o660)
            #expect(try mode(csiSocket) == 0o660)
            let info = try await kubelet(csiSocket, "Node/NodeGetInfo", [:])
            #expect((info["response"] as? [String: Any])?["node_id"] as? String == node.nodeName, "\(info)")

            // The agent: a file under the host's /tmp, and an image from the registry on the host's loopback.
            let fromFile = try await agentLoad(socket, object)
            let fromImage = try await agentLoad(socket, "image:\(registry!.host)/bytecode/tracepoint")
            let fromTLSImage = try await agentLoad(socket, "image:\(tlsRegistry!.host)/bytecode/tracepoint")
            for program in [fromFile.program, fromImage.program, fromTLSImage.program] {
                let before = try await count(program)
                kills()
                #expect(try await count(program) >= before + 5, "program \(program) counts the host's kill(2)s")
            }
            // The pulled image is cached in /var/lib/bpfman on the host, through the image's link.
            let cached = try FileManager.default.contentsOfDirectory(atPath: node.host("/var/lib/bpfman"))
            #expect(cached.contains { $0.hasPrefix("sha256_") }, "\(cached)")

            // The kubelet publishes the program's map into a pod; the mount reaches the host.
            let volumeParent = "/var/lib/kubelet/pods/pod-e2e/volumes/kubernetes.io~csi/maps"
            try FileManager.default.createDirectory(atPath: node.host(volumeParent), withIntermediateDirectories: true)
            let target = volumeParent + "/mount"
            let publish = CSIHarness.publishRequest(
                "vol-e2e",
                target: target,
                program: "go-agent-tracepoint",
                maps: "counter"
            )
            let published = try await kubelet(csiSocket, "Node/NodePublishVolume", publish)
            #expect(published["code"] as? String == "OK", "\(published)")
            #expect(csiMounts(at: node.host(target)).count == 1, "the pod's mount on the host")
            let podPin = node.host(target) + "/counter"
            let podBefore = try await counterValue(at: podPin)
            kills()
            #expect(try await counterValue(at: podPin) >= podBefore + 5, "the pod reads the counting map")

            // podman stop: SIGTERM, a clean exit well within the grace.
            let stopStart = Date()
            let stopped = try await ContainerTools.podman(["stop", "-t", "\(node.grace)", names[0]])
            let stopSeconds = Date().timeIntervalSince(stopStart)
            #expect(stopped.status == 0, "\(stopped.output)")
            #expect(stopSeconds < 5, "podman stop took \(stopSeconds) s of a \(node.grace) s grace")
            let exit = try await ContainerTools.podman(["inspect", "--format", "{{.State.ExitCode}}", names[0]])
            #expect(exit.output.trimmingCharacters(in: .whitespacesAndNewlines) == "0", "\(exit.output)")
            let logs = try await ContainerTools.podman(["logs", names[0]])
            #expect(logs.output.contains("shutting down reason=SIGTERM"), "\(logs.output)")
            #expect(!FileManager.default.fileExists(atPath: socket), "the daemon unlinks its socket")
            print("container: podman stop took \(String(format: "%.2f", stopSeconds)) s")
            _ = try await ContainerTools.podman(["rm", names[0]])
            // Without the daemon, its programs still count and the pod's mount stays.
            kills()
            #expect(try await counterValue(at: podPin) >= podBefore + 10)

            // A new pod on the same node state finds the same programs and links, still counting.
            let restarted = try await ContainerTools.podman(["run", "-d", "--name", names[1]] + node.runArguments)
            try #require(restarted.status == 0, "podman run: \(restarted.output)")
            try await waitForSocket(socket, container: names[1])
            try await waitForSocket(csiSocket, container: names[1])
            let programs = try #require(try await cli(socket, ["list", "programs"]) as? [[String: Any]])
            let programIDs = Set(programs.compactMap { ($0["kernel_info"] as? [String: Any])?["id"] as? Int })
            #expect(programIDs == [fromFile.program, fromImage.program, fromTLSImage.program], "\(programs)")
            let links = try #require(try await cli(socket, ["list", "links"]) as? [[String: Any]])
            #expect(
                Set(links.compactMap { $0["link_id"] as? Int }) == [fromFile.link, fromImage.link, fromTLSImage.link],
                "\(links)"
            )
            for program in [fromFile.program, fromImage.program, fromTLSImage.program] {
                let before = try await count(program)
                kills()
                #expect(try await count(program) >= before + 5)
            }
            // The kubelet repeats the publish (idempotent after the restart), then unpublishes.
            let again = try await kubelet(csiSocket, "Node/NodePublishVolume", publish)
            #expect(again["code"] as? String == "OK", "\(again)")
            let unpublished = try await kubelet(
                csiSocket,
                "Node/NodeUnpublishVolume",
                ["volume_id": "vol-e2e", "target_path": target]
            )
            #expect(unpublished["code"] as? String == "OK", "\(unpublished)")
            #expect(csiMounts(at: node.host(target)).isEmpty)

            // Detach and unload through the CLI; nothing is left.
            for link in [fromFile.link, fromImage.link, fromTLSImage.link] {
                try await cli(socket, ["detach", "\(link)"], json: false)
            }
            for program in [fromFile.program, fromImage.program, fromTLSImage.program] {
                try await cli(socket, ["unload", "\(program)"], json: false)
            }
            #expect((try await cli(socket, ["list", "programs"]) as? [Any])?.isEmpty == true)
            let last = try await ContainerTools.podman(["stop", "-t", "\(node.grace)", names[1]])
            #expect(last.status == 0, "\(last.output)")
        }
    }
}
