import ArgumentParser
import Foundation
import TestSupport
import Testing

@testable import BpfmanEngine
@testable import BpfmanServer

/// packaging/kubernetes against what the daemon and the image expect: the args the DaemonSet gives the image's
/// entrypoint parse as `serve --csi-support` with the default paths, every path the daemon uses is mounted from
/// the host (SPEC §1.10), the registrar points the kubelet at the daemon's CSI socket, the CSIDriver is the
/// one the plugin serves (SPEC §7), and the ConfigMap's bpfman.toml is the operator's and reads cleanly.
@Suite(.enabled(if: KubernetesManifests.python != nil, "\(KubernetesManifests.pythonMissing)"))
struct KubernetesManifestTests {
    let manifests: KubernetesManifests
    let image: ImageDescription

    init() throws {
        manifests = try KubernetesManifests.load()
        image = try ImageDescription.load()
    }

    /// The image's command line for `args` (Kubernetes: args replace Cmd, the entrypoint stays), as `bpfman`
    /// parses it.
    func parsedCommand(args: [String]?) throws -> BpfmanCommand.Serve {
        let argv = image.entrypoint + (args ?? image.cmd)
        let executable = try #require(argv.first?.split(separator: "/").last.map(String.init))
        let normalized = BpfmanCommand.normalizedArguments(
            executableName: executable,
            arguments: Array(argv.dropFirst())
        )
        let parsed = try BpfmanCommand.parseAsRoot(normalized)
        return try #require(parsed as? BpfmanCommand.Serve, "\(argv) is \(type(of: parsed)), not serve")
    }

    @Test func kustomizationListsEveryObjectAndOneNamespaceHoldsThem() throws {
        let kustomization = try manifests.object("Kustomization")
        let resources = try #require(kustomization["resources"] as? [String])
        #expect(Set(resources) == Set(manifests.files.keys).subtracting(["kustomization.yaml"]))
        let namespace = try #require((try manifests.object("Namespace")["metadata"] as? [String: Any])?["name"])
        for kind in ["DaemonSet", "ConfigMap"] {
            let metadata = try #require(try manifests.object(kind)["metadata"] as? [String: Any])
            #expect(metadata["namespace"] as? String == namespace as? String, "\(kind)")
        }
    }

    @Test func theDaemonSetsArgsStartTheDaemonWithCSIAndDefaultPaths() throws {
        let bpfman = try manifests.container("bpfman")
        #expect(bpfman["command"] == nil, "the operator gives no command; the image's entrypoint runs")
        let args = try #require(bpfman["args"] as? [String])
        #expect(args == ["--csi-support"])
        let serve = try parsedCommand(args: args)
        #expect(serve.csiSupport)
        #expect(serve.timeout == nil, "no --timeout: with --csi-support the idle timer is off (SPEC §0.2)")
        #expect(serve.socketPath == ServeDefaults.socketPath)
        #expect(serve.runtimeDirectory == ServeDefaults.runtimeDirectory)
        #expect(serve.imageCacheDirectory == ServeDefaults.imageCacheDirectory)
        #expect(serve.config == nil, "the config is read from its default path, where the ConfigMap is mounted")
        // The image run with no args at all serves too.
        #expect(try parsedCommand(args: nil).csiSupport == false)
    }

    @Test func theDaemonRunsPrivilegedOnTheHostNetworkWithTheOperatorsGrace() throws {
        let spec = try manifests.podSpec
        #expect(spec["hostNetwork"] as? Bool == true)
        #expect(spec["terminationGracePeriodSeconds"] as? Int == 15)
        let security = try #require(try manifests.container("bpfman")["securityContext"] as? [String: Any])
        #expect(security["privileged"] as? Bool == true)
        let image = try #require(try manifests.container("bpfman")["image"] as? String)
        #expect(image == "localhost/bpfman:\(BpfmanVersion.string)", "the name `make image` gives the image")
    }

    @Test func everyPathTheDaemonUsesIsMountedFromTheHost() throws {
        // The main socket's directory, the runtime directory and its bpffs.
        let socketPath = ServeDefaults.socketPath
        let socketDirectory = String(socketPath[..<(try #require(socketPath.lastIndex(of: "/")))])
        let socketMount = try manifests.mount("bpfman", at: socketDirectory)
        #expect(try manifests.hostPath(of: socketMount) == socketDirectory)
        let runtime = try manifests.mount("bpfman", at: ServeDefaults.runtimeDirectory)
        #expect(try manifests.hostPath(of: runtime) == ServeDefaults.runtimeDirectory)
        let bpffs = BpfmanPaths(root: ServeDefaults.runtimeDirectory).bpffs
        let pins = try manifests.mount("bpfman", at: bpffs)
        #expect(try manifests.hostPath(of: pins) == bpffs)
        #expect(pins["mountPropagation"] as? String == "Bidirectional", "the daemon's bpffs must reach the host")

        // SPEC §1.10's mounts.
        let hostPaths: [(container: String, host: String)] = [
            ("/sys/fs/bpf", "/sys/fs/bpf"), ("/var/lib/kubelet/pods", "/var/lib/kubelet/pods"),
            ("/host/proc", "/proc"), ("/var/run/netns", "/var/run/netns"), ("/host/netns", "/run/netns"),
            ("/tmp", "/tmp"), ("/sys/kernel/debug", "/sys/kernel/debug"),
        ]
        for (container, host) in hostPaths {
            #expect(try manifests.hostPath(of: try manifests.mount("bpfman", at: container)) == host, "\(container)")
        }
        #expect(
            try manifests.mount("bpfman", at: "/var/lib/kubelet/pods")["mountPropagation"] as? String
                == "Bidirectional",
            "a pod's volume is mounted by the daemon and seen by the kubelet"
        )
        // The image cache: the image links the daemon's default into /var/lib/bpfman, which is a host path.
        let link = try #require(image.raw["image_cache_link"] as? [String: String])
        let cacheTarget = try #require(link[ServeDefaults.imageCacheDirectory], "\(link)")
        #expect(try manifests.hostPath(of: try manifests.mount("bpfman", at: cacheTarget)) == cacheTarget)
    }

    @Test func theRegistrarRegistersTheDaemonsCSISocket() throws {
        let csi = CSIPaths(runtimeDirectory: ServeDefaults.runtimeDirectory)
        let socketName = try #require(csi.socket.split(separator: "/").last.map(String.init))
        // The daemon's <rd>/csi is the kubelet's plugin directory for csi.bpfman.io, both ways.
        let daemonMount = try manifests.mount("bpfman", at: csi.directory)
        #expect(daemonMount["mountPropagation"] as? String == "Bidirectional")
        let pluginDirectory = try #require(try manifests.hostPath(of: daemonMount))
        #expect(pluginDirectory == "/var/lib/kubelet/plugins/csi-bpfman")

        let registrar = try manifests.container("node-driver-registrar")
        let args = try #require(registrar["args"] as? [String])
        func flag(_ name: String) -> String? {
            args.first { $0.hasPrefix("--\(name)=") }.map { String($0.dropFirst(name.count + 3)) }
        }
        #expect(flag("kubelet-registration-path") == pluginDirectory + "/" + socketName)
        let registrarMounts = try #require(registrar["volumeMounts"] as? [[String: Any]])
        let shared = try #require(registrarMounts.first { $0["name"] as? String == daemonMount["name"] as? String })
        #expect(flag("csi-address") == (shared["mountPath"] as? String ?? "") + "/" + socketName)
        let registration = try #require(registrarMounts.first { $0["mountPath"] as? String == "/registration" })
        #expect(try manifests.hostPath(of: registration) == "/var/lib/kubelet/plugins_registry")
    }

    @Test func theCSIDriverIsTheOneThePluginServes() throws {
        let driver = try manifests.object("CSIDriver")
        #expect((driver["metadata"] as? [String: Any])?["name"] as? String == CSIServices.pluginName)
        let spec = try #require(driver["spec"] as? [String: Any])
        #expect(spec["attachRequired"] as? Bool == false)
        #expect(spec["podInfoOnMount"] as? Bool == true)
        #expect(spec["volumeLifecycleModes"] as? [String] == ["Ephemeral"])
        #expect(spec["fsGroupPolicy"] as? String == "ReadWriteOnceWithFSType")
        #expect(spec["requiresRepublish"] as? Bool == false)
    }

    @Test func theConfigMapIsMountedAsTheConfigFileAndReadsCleanly() throws {
        let mount = try manifests.mount("bpfman", at: ServeDefaults.configPath)
        let fileName = try #require(ServeDefaults.configPath.split(separator: "/").last.map(String.init))
        #expect(mount["subPath"] as? String == fileName)
        #expect(mount["readOnly"] as? Bool == true)
        let volume = try manifests.volume(try #require(mount["name"] as? String))
        let configMapName = try #require((volume["configMap"] as? [String: Any])?["name"] as? String)
        #expect((try manifests.object("ConfigMap")["metadata"] as? [String: Any])?["name"] as? String == configMapName)

        let text = try #require(try manifests.configData[fileName])
        // The operator's default bpfman.toml (bpfman-operator config/bpfman-deployment/config.yaml), verbatim.
        #expect(
            text
                == "[database]\nmax_retries = 30\nmillisec_delay = 10000\n[signing]\nallow_unsigned = true\n"
                + "verify_enabled = true\n"
        )
        let config = try DaemonConfig.parse(text, file: ServeDefaults.configPath)
        #expect(config.warnings.isEmpty, "\(config.warnings)")
        #expect(config.lockMaxRetries == 30 && config.lockRetryDelayMilliseconds == 10000)
        #expect(config.allowUnsigned && config.verifySignatures)
    }

    @Test func theEnvironmentComesFromTheConfigMapAndTheNode() throws {
        let environment = try #require(try manifests.container("bpfman")["env"] as? [[String: Any]])
        func valueFrom(_ name: String) throws -> [String: Any] {
            let entry = try #require(environment.first { $0["name"] as? String == name }, "no \(name)")
            return try #require(entry["valueFrom"] as? [String: Any], "\(entry)")
        }
        let rustLog = try #require(try valueFrom("RUST_LOG")["configMapKeyRef"] as? [String: Any])
        let configMapName = (try manifests.object("ConfigMap")["metadata"] as? [String: Any])?["name"] as? String
        #expect(rustLog["name"] as? String == configMapName)
        let key = try #require(rustLog["key"] as? String)
        let level = try #require(try manifests.configData[key])
        #expect(logLevel(fromRustLog: level) == .info, "RUST_LOG=\(level)")
        let node = try #require(try valueFrom("KUBE_NODE_NAME")["fieldRef"] as? [String: Any])
        #expect(node["fieldPath"] as? String == "spec.nodeName")
    }
}
