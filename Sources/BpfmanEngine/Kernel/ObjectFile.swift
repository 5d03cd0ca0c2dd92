internal import CBPF
internal import Glibc

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
            throw ObjectFileError(path: path, errno: errno)
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
}

/// libbpf could not open an object file.
package struct ObjectFileError: Error, Equatable, CustomStringConvertible {
    package var path: String
    package var errno: Int32

    package var description: String {
        "cannot open BPF object \(path): \(String(cString: strerror(errno)))"
    }
}
