internal import CBPF
internal import Glibc
internal import SystemCalls

/// The program a CSI volume takes its maps from (SPEC §7.3 step 4).
package struct CSIMapSource: Sendable, Hashable {
    /// Kernel id of the managed program that matched.
    package var programID: UInt32
    /// `<rd>/fs/maps/<map set id>`: where that program's maps are pinned (the owner's directory for dependants).
    package var mapPinDirectory: String
}

extension Engine {
    /// The program metadata key a CSI volume's `csi.bpfman.io/program` attribute is matched against.
    package static let csiProgramNameKey = "bpfman.io/ProgramName"

    /// Finds the managed, alive program whose metadata `bpfman.io/ProgramName` is `programName`; the lowest kernel
    /// id wins when several match. A read: nothing is changed, stale records are skipped (not dropped).
    ///
    /// - Parameter programName: the volume's `csi.bpfman.io/program` attribute.
    /// - Returns: the program id and its map pin directory.
    /// - Throws: NOT_FOUND `program "<name>" not found`; INTERNAL when the store cannot be read.
    package func csiMapSource(programName: String) throws(EngineError) -> CSIMapSource {
        let records = try db { () throws(SQLiteError) in try store.allPrograms() }
        let candidates = records.filter { $0.metadata[Engine.csiProgramNameKey] == programName }
            .sorted { $0.id < $1.id }
        guard let match = candidates.first(where: { isAlive($0) }) else {
            throw .notFound("program \"\(programName)\" not found")
        }
        return CSIMapSource(programID: match.id, mapPinDirectory: paths.mapSetDirectory(match.mapSetID))
    }

    /// Pins the kernel map pinned at `<source.mapPinDirectory>/<map>` a second time at `destination` (same map,
    /// same id), then closes the fd it opened. Runs outside the actor: it touches no record.
    ///
    /// - Parameters:
    ///   - map: the map's name; a single path element (the caller validates it).
    ///   - source: where the program's maps are pinned.
    ///   - destination: the new pin's path, inside a bpffs.
    ///   - programName: used only in the NOT_FOUND message.
    /// - Throws: NOT_FOUND `map "<m>" is not published by program "<p>"` when the program has no such map pin
    ///   (the engine pins only maps in a map-set directory); INTERNAL naming the path and errno when the new pin cannot be made.
    package nonisolated static func csiRepinMap(
        _ map: String,
        from source: CSIMapSource,
        to destination: String,
        programName: String
    ) throws(EngineError) {
        let path = source.mapPinDirectory + "/" + map
        let notPublished = EngineError.notFound("map \"\(map)\" is not published by program \"\(programName)\"")
        // bpffs refuses names with a dot (EPERM), so such a map (e.g. `.bss`, internal) is never published.
        guard !map.contains(".") else { throw notPublished }
        let fd: OwnedFD
        do {
            fd = try BPF.objectGet(path)
        } catch {
            if error.errno == .noSuchFileOrDirectory { throw notPublished }
            throw .internal("cannot open map pin \(path): \(error.errno)", errno: error.errno)
        }
        if case .failure(let error) = BPF.pin(fd, at: destination) {
            throw .internal("cannot pin map \(map) at \(destination): \(error.errno)", errno: error.errno)
        }
    }

    /// True when `path` is the root of (or inside) a bpffs: statfs magic `0xcafe4a11` (SPEC §7.3 step 5).
    package nonisolated static func csiIsBPFFS(_ path: String) -> Bool {
        cbpf_is_bpffs(path) == 1
    }
}
