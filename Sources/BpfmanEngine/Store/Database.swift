internal import CSQLite

/// One SQLite connection (STYLE convention 14). Owned by the `Engine`; closed in `close()` or `deinit`.
package final class Database {
    private var handle: OpaquePointer?
    /// The counter `countCommits` bumps, retained while the connection is open.
    private var commitCounter: Unmanaged<CommitCounter>?

    /// Opens (creating if needed) the database at `path`. The corresponding C function is `sqlite3_open_v2`.
    /// With `create: false` the file must exist already.
    package init(path: String, create: Bool = true) throws(SQLiteError) {
        var db: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let error = SQLiteError.from(db, code: rc, context: "open \(path)")
            sqlite3_close(db)
            throw error
        }
        sqlite3_extended_result_codes(db, 1)
        sqlite3_busy_timeout(db, 5000)
        handle = db
    }

    deinit { close() }

    /// Closes the connection; idempotent. Unfinalised statements are finalised by `sqlite3_close_v2`.
    package func close() {
        if let handle { sqlite3_close_v2(handle) }
        handle = nil
        commitCounter?.release()
        commitCounter = nil
    }

    /// Bumps `counter` after every commit of this connection (a WAL-mode database). The corresponding C
    /// function is `sqlite3_wal_hook`, which SQLite calls once a commit has taken place and its write lock is
    /// released. The hook replaces SQLite's automatic checkpoint, so it checkpoints as that would: once the
    /// WAL holds 1000 pages (SQLite's default `wal_autocheckpoint`). A later `PRAGMA wal_autocheckpoint` on this
    /// connection would replace the hook and stop the count.
    package func countCommits(_ counter: CommitCounter) {
        commitCounter?.release()
        let retained = Unmanaged.passRetained(counter)
        commitCounter = retained
        sqlite3_wal_hook(
            pointer,
            { context, db, name, pages in
                Unmanaged<CommitCounter>.fromOpaque(context!).takeUnretainedValue().bump()
                if pages >= 1000 { sqlite3_wal_checkpoint(db, name) }
                return SQLITE_OK
            },
            retained.toOpaque()
        )
    }

    var pointer: OpaquePointer {
        guard let handle else { preconditionFailure("database used after close()") }
        return handle
    }

    /// Runs one or more SQL statements without results. The corresponding C function is `sqlite3_exec`.
    package func execute(_ sql: String) throws(SQLiteError) {
        let rc = sqlite3_exec(pointer, sql, nil, nil, nil)
        guard rc == SQLITE_OK else { throw SQLiteError.from(pointer, code: rc, context: sql) }
    }

    /// Prepares `sql`; the statement finalises itself.
    package func prepare(_ sql: String) throws(SQLiteError) -> Statement {
        try Statement(database: self, sql: sql)
    }

    /// Runs `body` inside `BEGIN IMMEDIATE … COMMIT`, rolling back when it throws.
    package func transaction<R>(_ body: () throws(SQLiteError) -> R) throws(SQLiteError) -> R {
        try execute("BEGIN IMMEDIATE")
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }

    /// Rowid of the last insert.
    package var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(pointer) }

    /// `PRAGMA user_version`.
    package var userVersion: Int {
        get throws(SQLiteError) {
            let statement = try prepare("PRAGMA user_version")
            return try statement.step() ? Int(statement.int64(0)) : 0
        }
    }
}

/// A prepared statement, finalised in `deinit`. Text and blobs bind with `SQLITE_TRANSIENT`.
package final class Statement {
    private let database: Database
    private var handle: OpaquePointer?
    private let sql: String

    init(database: Database, sql: String) throws(SQLiteError) {
        self.database = database
        self.sql = sql
        var statement: OpaquePointer?
        let rc = sqlite3_prepare_v3(database.pointer, sql, -1, 0, &statement, nil)
        guard rc == SQLITE_OK, let statement else {
            throw SQLiteError.from(database.pointer, code: rc, context: sql)
        }
        handle = statement
    }

    deinit { sqlite3_finalize(handle) }

    /// Binds parameters 1...n in order; `nil` binds NULL.
    @discardableResult
    package func bind(_ values: (any SQLValue)?...) throws(SQLiteError) -> Statement {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
        for (index, value) in values.enumerated() {
            let position = Int32(index + 1)
            // Each value binds itself (a witness-table call): matching `as String`, `as any SQLInteger`, ...
            // here cost a dynamic cast per value, several microseconds per statement.
            let rc = value?.bind(to: handle, at: position) ?? sqlite3_bind_null(handle, position)
            guard rc == SQLITE_OK else { throw SQLiteError.from(database.pointer, code: rc, context: sql) }
        }
        return self
    }

    /// Rewinds the statement and clears its bindings (ends any read it had in progress).
    package func reset() {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    /// Advances; true while a row is available.
    package func step() throws(SQLiteError) -> Bool {
        let rc = sqlite3_step(handle)
        switch rc {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default: throw SQLiteError.from(database.pointer, code: rc, context: sql)
        }
    }

    /// Steps to completion, ignoring rows.
    package func run() throws(SQLiteError) {
        while try step() {}
    }

    package func isNull(_ column: Int32) -> Bool { sqlite3_column_type(handle, column) == SQLITE_NULL }
    package func int64(_ column: Int32) -> Int64 { sqlite3_column_int64(handle, column) }
    package func uint32(_ column: Int32) -> UInt32 { UInt32(truncatingIfNeeded: sqlite3_column_int64(handle, column)) }
    package func optionalInt64(_ column: Int32) -> Int64? { isNull(column) ? nil : int64(column) }
    package func optionalUInt32(_ column: Int32) -> UInt32? { isNull(column) ? nil : uint32(column) }
    package func text(_ column: Int32) -> String {
        guard let pointer = sqlite3_column_text(handle, column) else { return "" }
        let count = Int(sqlite3_column_bytes(handle, column))
        return String(decoding: UnsafeBufferPointer(start: pointer, count: count), as: UTF8.self)
    }
    package func optionalText(_ column: Int32) -> String? { isNull(column) ? nil : text(column) }
    package func blob(_ column: Int32) -> [UInt8] {
        let count = Int(sqlite3_column_bytes(handle, column))
        guard count > 0, let pointer = sqlite3_column_blob(handle, column) else { return [] }
        return Array(UnsafeRawBufferPointer(start: pointer, count: count))
    }
}

/// Values `Statement.bind` accepts.
package protocol SQLValue {
    /// Binds the value as parameter `position` of `statement`; returns SQLite's result code.
    func bind(to statement: OpaquePointer?, at position: Int32) -> Int32
}

extension String: SQLValue {
    package func bind(to statement: OpaquePointer?, at position: Int32) -> Int32 {
        sqlite3_bind_text(statement, position, self, -1, csqlite_transient())
    }
}

extension Array: SQLValue where Element == UInt8 {
    package func bind(to statement: OpaquePointer?, at position: Int32) -> Int32 {
        withUnsafeBytes { sqlite3_bind_blob(statement, position, $0.baseAddress, Int32($0.count), csqlite_transient()) }
    }
}

/// Integers bind as INTEGER.
package protocol SQLInteger: SQLValue { var sqlInt64: Int64 { get } }

extension SQLInteger {
    package func bind(to statement: OpaquePointer?, at position: Int32) -> Int32 {
        sqlite3_bind_int64(statement, position, sqlInt64)
    }
}

extension Int: SQLInteger { package var sqlInt64: Int64 { Int64(self) } }
extension Int32: SQLInteger { package var sqlInt64: Int64 { Int64(self) } }
extension Int64: SQLInteger { package var sqlInt64: Int64 { self } }
extension UInt32: SQLInteger { package var sqlInt64: Int64 { Int64(self) } }
extension UInt64: SQLInteger { package var sqlInt64: Int64 { Int64(bitPattern: self) } }
extension Bool: SQLInteger { package var sqlInt64: Int64 { self ? 1 : 0 } }
