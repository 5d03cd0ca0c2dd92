internal import FoundationEssentials
internal import Glibc
internal import SystemCalls

/// What was published for one CSI volume, kept so a restarted daemon knows the volumes published before it.
///
/// Stored as one JSON file per volume, `<rd>/csi/volumes/<volume_id>.json`, written atomically (temporary
/// file + rename) after a publish succeeded and removed when the volume is unpublished. The mounts themselves
/// live in the kernel and survive a daemon restart; NodeUnpublishVolume needs only its request to undo them, so a
/// missing or unreadable record never blocks an unpublish.
package struct CSIVolumeRecord: Codable, Sendable, Hashable {
    package var volumeID: String
    package var targetPath: String
    /// `csi.bpfman.io/program`.
    package var programName: String
    /// The kernel id of the program the maps came from.
    package var programID: UInt32
    /// The map names, sorted.
    package var maps: [String]
    package var readOnly: Bool
    /// The mount group applied, if any.
    package var group: UInt32?
}

/// The directory of `CSIVolumeRecord` files.
package struct CSIVolumeRecords: Sendable {
    package let directory: String

    package init(directory: String) {
        self.directory = directory
    }

    private func path(_ volumeID: String) -> String { directory + "/" + volumeID + ".json" }

    /// Writes (or replaces) the record of `record.volumeID`.
    /// - Throws: `SystemCallError` when the file cannot be written.
    func save(_ record: CSIVolumeRecord) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let bytes = Array(try encoder.encode(record))
        try Syscalls.writeFileAtomically(path(record.volumeID), bytes).get()
    }

    /// The record of `volumeID`, or nil when there is none (or it cannot be decoded).
    package func record(_ volumeID: String) -> CSIVolumeRecord? {
        guard let bytes = Syscalls.readFile(path(volumeID)) else { return nil }
        return try? JSONDecoder().decode(CSIVolumeRecord.self, from: Data(bytes))
    }

    /// Every readable record, by volume id.
    package func all() -> [CSIVolumeRecord] {
        Syscalls.listDirectory(directory).filter { $0.hasSuffix(".json") }.sorted()
            .compactMap { record(String($0.dropLast(5))) }
    }

    /// Deletes the record of `volumeID`; a missing record is fine.
    func remove(_ volumeID: String) {
        _ = Syscalls.unlink(path(volumeID))
    }
}
