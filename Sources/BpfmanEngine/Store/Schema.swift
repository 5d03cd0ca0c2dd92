/// The store's schema: forward-only migrations indexed by `PRAGMA user_version` (SPEC §6.1).
///
/// Migration `n` (1-based) moves the database from version `n-1` to `n`. Never edit a shipped migration;
/// append a new one.
package enum Schema {
    package static let migrations: [String] = [
        // 1: programs, map sets, links, dispatchers, shared maps.
        """
        CREATE TABLE programs(
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            kind TEXT NOT NULL,
            load_mode TEXT NOT NULL,
            location_kind TEXT NOT NULL,
            location TEXT NOT NULL,
            pull_policy INTEGER NOT NULL DEFAULT 0,
            map_owner_id INTEGER,
            map_set_id INTEGER NOT NULL REFERENCES map_sets(id),
            attach_target TEXT,
            created_at INTEGER NOT NULL
        );
        CREATE TABLE program_metadata(
            program_id INTEGER NOT NULL REFERENCES programs(id) ON DELETE CASCADE,
            key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY(program_id, key));
        CREATE TABLE program_global_data(
            program_id INTEGER NOT NULL REFERENCES programs(id) ON DELETE CASCADE,
            name TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY(program_id, name));
        CREATE TABLE map_sets(id INTEGER PRIMARY KEY, pin_dir TEXT NOT NULL);
        CREATE TABLE dispatchers(
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL, nsid INTEGER NOT NULL, ifindex INTEGER NOT NULL, iface TEXT NOT NULL,
            netns TEXT, direction TEXT NOT NULL DEFAULT '', revision INTEGER NOT NULL,
            kernel_prog_id INTEGER, tc_handle INTEGER, xdp_flags INTEGER,
            UNIQUE(kind, nsid, ifindex, direction));
        CREATE TABLE links(
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            program_id INTEGER NOT NULL REFERENCES programs(id) ON DELETE CASCADE,
            kind TEXT NOT NULL,
            state TEXT NOT NULL CHECK(state IN ('pending', 'active')),
            spec_json TEXT NOT NULL,
            nsid INTEGER, ifindex INTEGER, direction TEXT, priority INTEGER, position INTEGER,
            dispatcher_id INTEGER REFERENCES dispatchers(id),
            kernel_link_id INTEGER, pin_path TEXT, tc_handle INTEGER, tc_priority INTEGER, resolved_target TEXT);
        CREATE INDEX links_program ON links(program_id);
        CREATE TABLE shared_maps(name TEXT PRIMARY KEY, refcount INTEGER NOT NULL);
        CREATE TABLE program_shared_maps(
            program_id INTEGER NOT NULL REFERENCES programs(id) ON DELETE CASCADE,
            name TEXT NOT NULL, PRIMARY KEY(program_id, name));
        """,
        // 2: the program's `memlock` as fdinfo showed it at load (the kernel never changes it afterwards);
        // NULL for programs recorded before this migration, whose memlock is then read live. An index for
        // the members of a map set, which every Get and Unload asks for (a scan of all programs before).
        """
        ALTER TABLE programs ADD COLUMN bytes_memlock INTEGER;
        CREATE INDEX programs_map_set ON programs(map_set_id);
        """,
        // 3: the rest of the program's load-time kernel facts (SPEC §3.8), which Get and List answer from, and the
        // inode of its pin, their liveness check. NULL for programs recorded before this migration until start-up
        // reconciliation reads them (map ids as decimal text separated by commas; load_time in ns since boot).
        """
        ALTER TABLE programs ADD COLUMN kernel_name TEXT;
        ALTER TABLE programs ADD COLUMN kernel_type INTEGER;
        ALTER TABLE programs ADD COLUMN load_time INTEGER;
        ALTER TABLE programs ADD COLUMN tag TEXT;
        ALTER TABLE programs ADD COLUMN gpl_compatible INTEGER;
        ALTER TABLE programs ADD COLUMN map_ids TEXT;
        ALTER TABLE programs ADD COLUMN btf_id INTEGER;
        ALTER TABLE programs ADD COLUMN bytes_xlated INTEGER;
        ALTER TABLE programs ADD COLUMN bytes_jited INTEGER;
        ALTER TABLE programs ADD COLUMN verified_insns INTEGER;
        ALTER TABLE programs ADD COLUMN pin_inode INTEGER;
        """,
    ]

    /// The version a fully migrated database has.
    package static var currentVersion: Int { migrations.count }

    /// Applies every migration above the database's version, each in its own transaction.
    package static func migrate(_ database: Database) throws(SQLiteError) {
        let version = try database.userVersion
        guard version <= currentVersion else {
            throw SQLiteError(
                code: 1,
                message: "database schema version \(version) is newer than this daemon's \(currentVersion)",
                context: "migrate"
            )
        }
        for index in version..<currentVersion {
            try database.transaction { () throws(SQLiteError) in
                try database.execute(migrations[index])
                try database.execute("PRAGMA user_version = \(index + 1)")
            }
        }
    }
}
