internal import CBPF

/// How a dispatcher member is loaded in dispatcher mode (SPEC §4.3, §4.6): as `BPF_PROG_TYPE_EXT` with the
/// pinned test dispatcher (`<rd>/fs/dispatcher-test/{xdp,tc}`) as its load-time target. At attach time the
/// freplace link retargets it into a slot of the hook's real dispatcher.
package enum DispatcherMemberLoading {
    /// The function of the test dispatcher EXT programs are verified against (as the probe of SPEC §4.3).
    /// It has the same signature as every `prog<i>` slot, so the program can later replace any slot.
    package static let loadTargetFunction = "compat_test"

    /// Turns `program` (a `struct bpf_program *` of an opened, not yet loaded object) into an EXT program
    /// targeting `loadTargetFunction` of the dispatcher program `targetFD`. The caller loads the object
    /// while `targetFD` is open, then may close it.
    /// - Throws: `.internal` when libbpf refuses. The corresponding C functions are `bpf_program__set_type`,
    ///   `bpf_program__set_expected_attach_type` and `bpf_program__set_attach_target`.
    package static func prepareExtension(program: OpaquePointer, targetFD: Int32) throws(DispatchError) {
        _ = try DispatchBPF.check(bpf_program__set_type(program, BPF_PROG_TYPE_EXT), "set program type EXT")
        // libbpf gives `xdp` sections expected attach type BPF_XDP; the kernel refuses EXT programs with any
        // expected attach type (EINVAL), so clear it.
        _ = try DispatchBPF.check(
            bpf_program__set_expected_attach_type(program, bpf_attach_type(rawValue: 0)),
            "clear expected attach type"
        )
        _ = try DispatchBPF.check(
            bpf_program__set_attach_target(program, targetFD, loadTargetFunction),
            "set EXT attach target"
        )
    }
}
