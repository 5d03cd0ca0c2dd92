/// How the engine attaches XDP and TC programs, as `Inspect.Status` reports it (SPEC §3.9, §4.3).
package struct AttachModeStatus: Sendable, Equatable {
    /// `dispatcher` or `native`.
    package var mode: String
    /// The probe outcome or the configuration key that decided the mode.
    package var reason: String
    /// `kernel_features["freplace"]`: the probe's result, nil when it was not run.
    package var freplace: Bool?
}

/// The dispatcher views of the engine API (`Inspect.ListDispatchers`, `Inspect.Status`).
extension Engine {
    /// Every live dispatcher with its revision, kernel program id, TC handle and members (link id, program
    /// id and name, live position, priority, proceed_on mask), optionally only those on `iface`.
    /// Empty in native mode or without the dispatch hook attacher.
    package func dispatchers(iface: String? = nil) throws(EngineError) -> [DispatcherState] {
        guard let attacher = hooks as? DispatchHookAttacher else { return [] }
        return try attacher.dispatchers(iface: iface, context: hookContext)
    }

    /// The attach mode chosen at start-up, or nil when the engine has no dispatch hook attacher.
    package var attachModeStatus: AttachModeStatus? {
        (hooks as? DispatchHookAttacher)?.status
    }
}
