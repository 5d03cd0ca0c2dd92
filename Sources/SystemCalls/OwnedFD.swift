internal import Glibc

/// A file descriptor with exactly one owner, closed when the owner goes away unless given up with `take()`.
///
/// Sockets, BPF program, map and link fds, perf event and namespace fds all live in one of these; the daemon
/// holds none at rest (SPEC §6.5).
package struct OwnedFD: ~Copyable {
    @usableFromInline let raw: CInt

    /// Takes ownership of `raw`; this value closes it.
    @inlinable
    package init(taking raw: CInt) {
        precondition(raw >= 0, "OwnedFD needs a valid descriptor, got \(raw)")
        self.raw = raw
    }

    deinit { _ = Glibc.close(raw) }

    /// Lends the raw descriptor to `body`; it must not be closed or kept.
    @inlinable
    package borrowing func withRawDescriptor<R, E: Error>(_ body: (CInt) throws(E) -> R) throws(E) -> R {
        try body(raw)
    }

    /// The raw value, for passing to calls that only use it while this value lives.
    @inlinable
    package var rawValue: CInt { raw }

    /// Gives up ownership: the caller now closes the descriptor.
    package consuming func take() -> CInt {
        let value = raw
        discard self
        return value
    }
}
