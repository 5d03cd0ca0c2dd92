internal import CBPF
internal import Glibc
package import SystemCalls

/// A program as declared in an ELF object file, before anything is loaded.
package struct DeclaredProgram: Sendable, Equatable {
    /// The C function name, which is also the program's name in the object.
    package var name: String
    /// The ELF section the program lives in, e.g. `tracepoint/syscalls/sys_enter_kill`.
    package var section: String
}

/// Reads an ELF object without loading it into the kernel.
package enum ObjectFile {
    /// Lists the programs of the object at `path`, in object order.
    ///
    /// - Throws: `ObjectFileError` when libbpf cannot open or parse the file.
    /// The corresponding C functions are `bpf_object__open_file` and `bpf_object__next_program`.
    package static func programs(at path: String) throws(ObjectFileError) -> [DeclaredProgram] {
        guard let object = cbpf_object_open(path) else {
            throw ObjectFileError(path: path, errno: .current)
        }
        defer { bpf_object__close(object) }
        var result: [DeclaredProgram] = []
        var program = bpf_object__next_program(object, nil)
        while let p = program {
            result.append(
                DeclaredProgram(
                    name: String(cString: bpf_program__name(p)),
                    section: String(cString: bpf_program__section_name(p))
                )
            )
            program = bpf_object__next_program(object, p)
        }
        return result
    }

    /// What a bytecode image's labels say of the object at `path` (`io.ebpf.programs`, `io.ebpf.maps`, SPEC §8.1):
    /// each program's name with the kind of its ELF section (nil when the section is none of SPEC §4.2's), and
    /// each map that is not one of libbpf's internal `.data`/`.rodata`/`.bss`/`.kconfig` maps with its kernel map
    /// type number. Nothing is loaded. The C functions are `bpf_object__open_file`, `bpf_map__type` and
    /// `bpf_map__is_internal`.
    package static func contents(
        at path: String
    ) throws(ObjectFileError) -> (
        programs: [(name: String, kind: ProgramKind?)], maps: [(name: String, type: UInt32)]
    ) {
        guard let object = cbpf_object_open(path) else {
            throw ObjectFileError(path: path, errno: .current)
        }
        defer { bpf_object__close(object) }
        var programs: [(name: String, kind: ProgramKind?)] = []
        var program = bpf_object__next_program(object, nil)
        while let p = program {
            let section = String(cString: bpf_program__section_name(p))
            let kind = Engine.sectionKind(section)
            // A `tcx/...` section is tc-family for loading; its label says tcx, as upstream's builder writes it.
            let labelled = kind == .tc && (section == "tcx" || section.hasPrefix("tcx/")) ? .tcx : kind
            programs.append((String(cString: bpf_program__name(p)), labelled))
            program = bpf_object__next_program(object, p)
        }
        var maps: [(name: String, type: UInt32)] = []
        var map = bpf_object__next_map(object, nil)
        while let m = map {
            if !bpf_map__is_internal(m) {
                maps.append((String(cString: bpf_map__name(m)), bpf_map__type(m).rawValue))
            }
            map = bpf_object__next_map(object, m)
        }
        return (programs, maps)
    }
}

/// libbpf could not open an object file.
package struct ObjectFileError: Error, Equatable, CustomStringConvertible {
    package var path: String
    package var errno: Errno

    package var description: String {
        "cannot open BPF object \(path): \(errno)"
    }
}
