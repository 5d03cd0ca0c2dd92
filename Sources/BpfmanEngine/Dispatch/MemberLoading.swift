internal import CBPF

/// How a dispatcher member is loaded in dispatcher mode (SPEC §4.3, §4.6): as `BPF_PROG_TYPE_EXT` with the
/// pinned test dispatcher (`<rd>/fs/dispatcher-test/{xdp,tc}`) as its load-time target. At attach time the
/// freplace link retargets it into a slot of the hook's real dispatcher.
package enum DispatcherMemberLoading {
    /// The function of the test dispatcher EXT programs are verified against. Every `prog<i>` stub has the
    /// same signature, so a program verified against `prog0` can replace any slot.
    package static let loadTargetFunction = "prog0"

    /// Turns `program` (a `struct bpf_program *` of an opened, not yet loaded object) into an EXT program
    /// targeting `loadTargetFunction` of the dispatcher program `targetFD`. The caller loads the object
    /// while `targetFD` is open, then may close it.
    /// - Throws: `.internal` when libbpf refuses. The corresponding C functions are `bpf_program__set_type`
    ///   and `bpf_program__set_attach_target`.
    package static func prepareExtension(program: OpaquePointer, targetFD: Int32) throws(DispatchError) {
        _ = try DispatchBPF.check(bpf_program__set_type(program, BPF_PROG_TYPE_EXT), "set program type EXT")
        _ = try DispatchBPF.check(
            bpf_program__set_attach_target(program, targetFD, loadTargetFunction), "set EXT attach target")
    }
}
