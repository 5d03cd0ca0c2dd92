/// One row of the `dispatchers` table (SPEC §6.1): the recorded state of one XDP or TC dispatcher.
/// Its members are the `links` rows whose `dispatcher_id` is `id`.
package struct DispatcherRecord: Sendable, Hashable {
    /// Row id (0 before the first insert).
    package var id: Int64
    /// `xdp` or `tc`.
    package var kind: String
    package var nsid: UInt64
    package var ifindex: UInt32
    package var iface: String
    /// The netns path as the attach request gave it (nil: the daemon's own).
    package var netns: String?
    /// `ingress` / `egress` for TC, empty for XDP.
    package var direction: String
    package var revision: UInt32
    package var kernelProgramID: UInt32?
    package var tcHandle: UInt32?
    package var xdpFlags: UInt32?

    package init(
        id: Int64 = 0,
        kind: String,
        nsid: UInt64,
        ifindex: UInt32,
        iface: String,
        netns: String?,
        direction: String,
        revision: UInt32,
        kernelProgramID: UInt32?,
        tcHandle: UInt32?,
        xdpFlags: UInt32?
    ) {
        self.id = id
        self.kind = kind
        self.nsid = nsid
        self.ifindex = ifindex
        self.iface = iface
        self.netns = netns
        self.direction = direction
        self.revision = revision
        self.kernelProgramID = kernelProgramID
        self.tcHandle = tcHandle
        self.xdpFlags = xdpFlags
    }
}

/// The `dispatchers` table. Kept beside ProgramStore.swift (same store, same connection) by the dispatcher
/// code's author; statements are prepared per call since dispatcher changes are rare.
extension ProgramStore {
    private static let dispatcherColumns =
        "id, kind, nsid, ifindex, iface, netns, direction, revision, kernel_prog_id, tc_handle, xdp_flags"

    private func readDispatchers(_ statement: Statement) throws(SQLiteError) -> [DispatcherRecord] {
        var rows: [DispatcherRecord] = []
        while try statement.step() {
            rows.append(
                DispatcherRecord(
                    id: statement.int64(0),
                    kind: statement.text(1),
                    nsid: UInt64(bitPattern: statement.int64(2)),
                    ifindex: statement.uint32(3),
                    iface: statement.text(4),
                    netns: statement.optionalText(5),
                    direction: statement.text(6),
                    revision: statement.uint32(7),
                    kernelProgramID: statement.optionalUInt32(8),
                    tcHandle: statement.optionalUInt32(9),
                    xdpFlags: statement.optionalUInt32(10)
                )
            )
        }
        return rows
    }

    /// The dispatcher of one hook, if recorded.
    package func dispatcher(
        kind: String,
        nsid: UInt64,
        ifindex: UInt32,
        direction: String
    ) throws(SQLiteError)
        -> DispatcherRecord?
    {
        let statement = try database.prepare(
            "SELECT \(Self.dispatcherColumns) FROM dispatchers WHERE kind = ? AND nsid = ? AND ifindex = ? AND direction = ?"
        ).bind(kind, nsid, ifindex, direction)
        return try readDispatchers(statement).first
    }

    /// The dispatcher with row id `id`, if recorded.
    package func dispatcher(id: Int64) throws(SQLiteError) -> DispatcherRecord? {
        let statement = try database.prepare("SELECT \(Self.dispatcherColumns) FROM dispatchers WHERE id = ?").bind(id)
        return try readDispatchers(statement).first
    }

    /// Every recorded dispatcher, ascending row id.
    package func allDispatchers() throws(SQLiteError) -> [DispatcherRecord] {
        try readDispatchers(try database.prepare("SELECT \(Self.dispatcherColumns) FROM dispatchers ORDER BY id"))
    }

    /// Inserts `record` (id 0) or updates the row with its id; returns the row id.
    package func saveDispatcher(_ record: DispatcherRecord) throws(SQLiteError) -> Int64 {
        if record.id == 0 {
            try database.prepare(
                """
                INSERT INTO dispatchers(kind, nsid, ifindex, iface, netns, direction, revision, kernel_prog_id,
                    tc_handle, xdp_flags) VALUES(?,?,?,?,?,?,?,?,?,?)
                """
            ).bind(
                record.kind,
                record.nsid,
                record.ifindex,
                record.iface,
                record.netns,
                record.direction,
                record.revision,
                record.kernelProgramID,
                record.tcHandle,
                record.xdpFlags
            ).run()
            return database.lastInsertRowID
        }
        try database.prepare(
            "UPDATE dispatchers SET revision = ?, kernel_prog_id = ?, tc_handle = ?, xdp_flags = ? WHERE id = ?"
        ).bind(record.revision, record.kernelProgramID, record.tcHandle, record.xdpFlags, record.id).run()
        return record.id
    }

    /// Deletes the dispatcher row `id` (its member links must be gone or re-pointed first).
    package func deleteDispatcher(_ id: Int64) throws(SQLiteError) {
        try database.prepare("DELETE FROM dispatchers WHERE id = ?").bind(id).run()
    }

    /// Records a member's new slot after a rebuild: position, freplace link pin and kernel link id.
    package func updateMember(
        link id: UInt32,
        position: Int32,
        pinPath: String,
        kernelLinkID: UInt32
    )
        throws(SQLiteError)
    {
        try database.prepare("UPDATE links SET position = ?, pin_path = ?, kernel_link_id = ? WHERE id = ?")
            .bind(position, pinPath, kernelLinkID, id).run()
    }
}
