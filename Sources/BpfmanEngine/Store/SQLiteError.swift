internal import CSQLite

/// A failed SQLite call, decoded in this one file (STYLE convention 4).
///
/// SQLite returns result codes; extended codes are enabled on every connection so `SQLITE_CONSTRAINT_*`,
/// `SQLITE_IOERR_*` and `SQLITE_BUSY_*` arrive distinguished. No SQLite code traps: they all become
/// INTERNAL engine errors with the message `sqlite3_errmsg` gave.
package struct SQLiteError: Error, Sendable, CustomStringConvertible {
    /// The extended result code.
    package var code: Int32
    package var message: String
    /// The statement or call that failed.
    package var context: String

    package var description: String { "\(context): \(message) (code \(code))" }

    /// True for `SQLITE_CONSTRAINT` and its extended codes.
    package var isConstraint: Bool { code & 0xff == SQLITE_CONSTRAINT }

    static func from(_ db: OpaquePointer?, code: Int32, context: String) -> SQLiteError {
        let text =
            db.flatMap { sqlite3_errmsg($0) }.map { String(cString: $0) } ?? String(cString: sqlite3_errstr(code))
        return SQLiteError(code: code, message: text, context: context)
    }

    /// As an engine error: database failures are INTERNAL.
    package var engineError: EngineError { .internal("database error: \(description)") }
}
