import Foundation
import TestSupport
import Testing

/// packaging/kubernetes as the API server would read it: parsed by PyYAML (Interop/kubernetes/manifests.py),
/// with accessors for what the tests compare against the daemon and the image.
struct KubernetesManifests {
    /// Every document of every file, by file name.
    let files: [String: [[String: Any]]]

    /// A Python with PyYAML: the checkout's .venv (scripts/setup.sh), else none.
    static let python: String? = InteropTools.python(importing: ["yaml"])
    static let pythonMissing = "needs PyYAML in .venv (scripts/setup.sh)"

    static func load() throws -> KubernetesManifests {
        let python = try #require(python, "\(pythonMissing)")
        let result = try TestSupport.run(python, [Repository.path("Interop/kubernetes/manifests.py")])
        try #require(result.status == 0, "manifests.py failed:\n\(result.output)")
        let object = try JSONSerialization.jsonObject(with: Data(result.output.utf8))
        let files = try #require(object as? [String: [[String: Any]]], "\(result.output)")
        return KubernetesManifests(files: files)
    }

    /// The one object of `kind` across all files.
    func object(_ kind: String) throws -> [String: Any] {
        let matches = files.values.flatMap { $0 }.filter { $0["kind"] as? String == kind }
        try #require(matches.count == 1, "expected one \(kind), found \(matches.count)")
        return matches[0]
    }

    var daemonSet: [String: Any] { get throws { try object("DaemonSet") } }
    var podSpec: [String: Any] {
        get throws {
            let spec = try #require(try daemonSet["spec"] as? [String: Any])
            let template = try #require(spec["template"] as? [String: Any])
            return try #require(template["spec"] as? [String: Any])
        }
    }

    func container(_ name: String) throws -> [String: Any] {
        let containers = try #require(try podSpec["containers"] as? [[String: Any]])
        return try #require(containers.first { $0["name"] as? String == name }, "no container \(name)")
    }

    func volume(_ name: String) throws -> [String: Any] {
        let volumes = try #require(try podSpec["volumes"] as? [[String: Any]])
        return try #require(volumes.first { $0["name"] as? String == name }, "no volume \(name)")
    }

    /// The `volumeMounts` entry of `container` at `mountPath`.
    func mount(_ container: String, at mountPath: String) throws -> [String: Any] {
        let mounts = try #require(try self.container(container)["volumeMounts"] as? [[String: Any]])
        return try #require(
            mounts.first { $0["mountPath"] as? String == mountPath },
            "\(container) mounts nothing at \(mountPath)"
        )
    }

    /// The host path behind `mount` (nil for a volume that is not a hostPath).
    func hostPath(of mount: [String: Any]) throws -> String? {
        let volume = try self.volume(try #require(mount["name"] as? String))
        return (volume["hostPath"] as? [String: Any])?["path"] as? String
    }

    /// The ConfigMap's data.
    var configData: [String: String] {
        get throws { try #require(try object("ConfigMap")["data"] as? [String: String]) }
    }
}

/// The image's process and layout as scripts/oci-image.py writes them (`oci-image.py describe`).
struct ImageDescription {
    var entrypoint: [String]
    var cmd: [String]
    var environment: [String]
    var raw: [String: Any]

    static func load() throws -> ImageDescription {
        let result = try TestSupport.run("python3", [Repository.path("scripts/oci-image.py"), "describe"])
        try #require(result.status == 0, "oci-image.py describe failed:\n\(result.output)")
        let object = try #require(
            try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any],
            "\(result.output)"
        )
        return ImageDescription(
            entrypoint: try #require(object["Entrypoint"] as? [String]),
            cmd: try #require(object["Cmd"] as? [String]),
            environment: try #require(object["Env"] as? [String]),
            raw: object
        )
    }
}
