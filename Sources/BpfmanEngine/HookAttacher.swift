package import Logging

/// The seam between the engine and the XDP/TC dispatcher code in `Dispatch/` (SPEC §4.3-4.9).
///
/// The engine owns programs, single links (tracepoint, probes, fentry/fexit, LSM, TCX) and the store; XDP and
/// TC attachments are delegated to one `HookAttacher`, installed when the `Engine` is created. Without one,
/// XDP/TC programs load natively and their attach fails with FAILED_PRECONDITION.
///
/// Contract:
/// - Every method is called on the engine actor, one at a time, with the writer lock held; methods run kernel
///   and store work synchronously and must close every fd before returning.
/// - `attach` is called after the common checks (program managed and alive, kind accepted). A `pending` link
///   row with id `linkID` already exists; the attacher performs its own per-variant validation, kernel work
///   and pins, and on success writes the link's fields with `ProgramStore.activateLink` in its commit (with
///   its dispatcher rows). On failure it must leave the kernel and pins as they were and throw; the engine
///   then deletes the pending row.
/// - `detach` removes the link from the kernel and deletes its record (`ProgramStore.deleteLink`).
/// - `reconcile` runs once at start-up after pending links and stale programs are dropped (SPEC §6.3 step 4),
///   and should also remove orphaned dispatcher pins under `xdp/`, `tc-ingress/`, `tc-egress/`.
package protocol HookAttacher: AnyObject {
    /// How XDP and TC programs are loaded: `.ext` (dispatcher mode) or `.native`.
    var loadMode: LoadMode { get }

    /// In `.ext` mode, the pinned test dispatcher program XDP (`.xdp`) or TC (`.tc`) programs target at load
    /// (`<rd>/fs/dispatcher-test/{xdp,tc}`; see `DispatcherMemberLoading`); nil in native mode.
    func testDispatcherPin(for kind: ProgramKind) -> String?

    /// Attaches `program` (kind `.xdp` or `.tc`) as link `linkID` according to `spec` (`.xdp` or `.tc`).
    /// - Throws: `EngineError` with the SPEC §3.3 codes and messages.
    func attach(linkID: UInt32, program: ProgramRecord, spec: AttachSpec, context: HookContext) throws(EngineError)

    /// Detaches an active XDP/TC link and deletes its record (SPEC §3.4).
    func detach(_ link: LinkRecord, context: HookContext) throws(EngineError)

    /// Detaches every XDP/TC link of one program being unloaded (SPEC §3.2: members of one dispatcher go
    /// with a single rebuild). The default detaches them one by one.
    func detachAll(_ links: [LinkRecord], context: HookContext) throws(EngineError)

    /// Start-up reconciliation of dispatchers (SPEC §6.3 step 4 and the dispatcher part of step 5).
    func reconcile(context: HookContext) throws(EngineError)
}

extension HookAttacher {
    package func detachAll(_ links: [LinkRecord], context: HookContext) throws(EngineError) {
        for link in links { try detach(link, context: context) }
    }
}

/// What a `HookAttacher` may use: the paths, the engine's store (SQL stays in `Store/`) and a logger.
package struct HookContext {
    package let paths: BpfmanPaths
    package let store: ProgramStore
    package let logger: Logger
}
