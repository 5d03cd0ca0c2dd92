internal import Synchronization

/// Read-only connections to the store for the engine's concurrent read path (SPEC §1.7: reads run at the same
/// time as each other and as a mutation, each seeing one committed state).
///
/// Each read borrows one connection (opened on first need, so an idle daemon holds none), runs its queries
/// inside one `BEGIN … COMMIT` read transaction — in WAL mode that is a consistent snapshot that neither
/// blocks nor waits for the writer — and gives the connection back. At most `capacity` idle connections are
/// kept; a burst of more concurrent readers opens extra ones and closes them afterwards.
package final class ReadPool: Sendable {
    private let path: String
    private let capacity: Int
    private let idle: Mutex<IdleStores>

    /// Non-`Sendable` stores parked while no task uses them; only reachable under the lock.
    private struct IdleStores: @unchecked Sendable {
        var stores: [ProgramStore] = []
    }

    /// Borrowed store handed across the lock boundary; used by exactly one task until returned.
    private struct Borrowed: @unchecked Sendable {
        let store: ProgramStore
    }

    package init(path: String, capacity: Int = 4) {
        self.path = path
        self.capacity = capacity
        self.idle = Mutex(IdleStores())
    }

    /// Runs `body` on a read-only connection inside one read transaction (one snapshot).
    package func read<R>(_ body: (ProgramStore) throws(SQLiteError) -> R) throws(SQLiteError) -> R {
        let borrowed = try borrow()
        let store = borrowed.store
        do throws(SQLiteError) {
            try store.beginRead()
            let result: R
            do throws(SQLiteError) {
                result = try body(store)
            } catch {
                try? store.endRead()
                throw error
            }
            try store.endRead()
            giveBack(borrowed)
            return result
        } catch {
            // A connection that failed mid-transaction is not reused.
            store.close()
            throw error
        }
    }

    /// Closes every idle connection (the engine's `close()`); later reads open new ones.
    package func close() {
        idle.withLock { idle in
            for store in idle.stores { store.close() }
            idle.stores.removeAll()
        }
    }

    private func borrow() throws(SQLiteError) -> Borrowed {
        if let parked = idle.withLock({ idle -> Borrowed? in idle.stores.popLast().map { Borrowed(store: $0) } }) {
            return parked
        }
        return Borrowed(store: try ProgramStore(readerAt: path))
    }

    private func giveBack(_ borrowed: Borrowed) {
        let kept = idle.withLock { idle -> Bool in
            guard idle.stores.count < capacity else { return false }
            idle.stores.append(borrowed.store)
            return true
        }
        if !kept { borrowed.store.close() }
    }
}
