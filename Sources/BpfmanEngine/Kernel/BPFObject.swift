internal import CBPF
internal import Glibc
package import SystemCalls

/// An opened (and possibly loaded) `struct bpf_object`, with one owner that closes it.
///
/// Closing a loaded object closes its program and map fds; pins keep the kernel objects alive.
package struct BPFObject: ~Copyable {
    package let pointer: OpaquePointer
    /// The file's bytes when opened from memory: libelf reads them until the object is closed.
    private let image: UnsafeMutableRawBufferPointer?

    /// Opens the ELF at `path`; PIN_BY_NAME maps use `pinRoot`.
    /// The corresponding C function is `bpf_object__open_file` (via `cbpf_object_open_pinned`).
    package static func open(path: String, pinRoot: String) throws(BPFError) -> BPFObject {
        BPFObject(
            pointer: try BPFError.pointer("bpf_object__open_file", cbpf_object_open_pinned(path, pinRoot)).get(),
            image: nil
        )
    }

    /// Opens an object file already read into memory, under the name libbpf gives the file at `path` (its
    /// base name up to the first dot, which prefixes internal map names such as `<name>.rodata`); PIN_BY_NAME
    /// maps use `pinRoot`. Reading the file once ourselves (`ObjectImage.read`) costs four system calls where
    /// `bpf_object__open_file` makes a dozen, and lets the header be checked without opening the file twice.
    /// The corresponding C function is `bpf_object__open_mem` (via `cbpf_object_open_memory`).
    package static func open(image: consuming ObjectImage, path: String, pinRoot: String) throws(BPFError) -> BPFObject
    {
        let bytes = image.take()
        let base = path.split(separator: "/").last.map(String.init) ?? path
        let name = String(base.prefix { $0 != "." })
        guard let pointer = cbpf_object_open_memory(bytes.baseAddress, bytes.count, name, pinRoot) else {
            let error = BPFError(function: "bpf_object__open_mem", errno: Errno.current)
            bytes.deallocate()
            throw error
        }
        return BPFObject(pointer: pointer, image: bytes)
    }

    private init(pointer: OpaquePointer, image: UnsafeMutableRawBufferPointer?) {
        self.pointer = pointer
        self.image = image
    }

    deinit {
        bpf_object__close(pointer)
        image?.deallocate()
    }

    /// Programs in object order: function name, ELF section, libbpf handle.
    package var programs: [(name: String, section: String, handle: OpaquePointer)] {
        var result: [(String, String, OpaquePointer)] = []
        var program = bpf_object__next_program(pointer, nil)
        while let p = program {
            result.append((String(cString: bpf_program__name(p)), String(cString: bpf_program__section_name(p)), p))
            program = bpf_object__next_program(pointer, p)
        }
        return result
    }

    /// Maps in object order.
    package var maps: [BPFMapHandle] {
        var result: [BPFMapHandle] = []
        var map = bpf_object__next_map(pointer, nil)
        while let m = map {
            result.append(BPFMapHandle(pointer: m))
            map = bpf_object__next_map(pointer, m)
        }
        return result
    }

    /// Loads every program left with autoload on, creating maps first.
    /// The corresponding C function is `bpf_object__load`.
    package func load() -> Result<Void, BPFError> {
        BPFError.call("bpf_object__load") { bpf_object__load(pointer) }
    }

    /// The object's BTF, if it has one.
    package var btf: OpaquePointer? { bpf_object__btf(pointer) }
}

/// A map of an open object (borrowed from its `BPFObject`; never outlives it).
package struct BPFMapHandle {
    package let pointer: OpaquePointer

    package var name: String { String(cString: bpf_map__name(pointer)) }
    package var isInternal: Bool { bpf_map__is_internal(pointer) }
    /// The PIN_BY_NAME path libbpf will use, or nil.
    package var pinPath: String? { bpf_map__pin_path(pointer).map { String(cString: $0) } }
    package var fd: Int32 { bpf_map__fd(pointer) }
    package var type: UInt32 { bpf_map__type(pointer).rawValue }
    package var keySize: UInt32 { bpf_map__key_size(pointer) }
    package var valueSize: UInt32 { bpf_map__value_size(pointer) }
    package var maxEntries: UInt32 { bpf_map__max_entries(pointer) }
    package var flags: UInt32 { bpf_map__map_flags(pointer) }
    package var btfValueTypeID: UInt32 { bpf_map__btf_value_type_id(pointer) }

    /// Makes the map use `fd` (dup'ed by libbpf) instead of creating one. The caller keeps `fd`.
    /// The corresponding C function is `bpf_map__reuse_fd`.
    package func reuse(_ fd: borrowing OwnedFD) -> Result<Void, BPFError> {
        let raw = fd.rawValue
        return BPFError.call("bpf_map__reuse_fd") { bpf_map__reuse_fd(pointer, raw) }
    }

    /// A copy of the map's initial value (internal data maps), or nil.
    package var initialValue: [UInt8]? {
        var size = 0
        guard let value = bpf_map__initial_value(pointer, &size) else { return nil }
        return Array(UnsafeRawBufferPointer(start: value, count: size))
    }

    /// The corresponding C function is `bpf_map__set_initial_value`.
    package func setInitialValue(_ bytes: [UInt8]) -> Result<Void, BPFError> {
        bytes.withUnsafeBytes { buffer in
            BPFError.call("bpf_map__set_initial_value") {
                bpf_map__set_initial_value(pointer, buffer.baseAddress, buffer.count)
            }
        }
    }
}

/// The bytes of an object file, read whole with one `open`, `fstat` and `read`; handed to `BPFObject.open`.
package struct ObjectImage: ~Copyable {
    /// Allocated here; deallocated by `deinit`, or by the `BPFObject` that `take` hands it to.
    private let storage: UnsafeMutableRawBufferPointer
    /// How many bytes of `storage` the file filled.
    private let count: Int

    /// Reads the file at `path` up to the size `fstat` reported (at most 1 GiB).
    /// - Throws: the failing call and its errno (a directory reads as EISDIR).
    package static func read(path: String) throws(SystemCallError) -> ObjectImage {
        let fd = try Syscalls.open(path, O_RDONLY)
        var status = Glibc.stat()
        if fstat(fd.rawValue, &status) != 0 { throw SystemCallError(function: "fstat", errno: Errno.current) }
        let size = max(1, min(Int(status.st_size), 1 << 30))
        let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 16)
        var filled = 0
        while filled < size {
            switch valueOrErrno("read", { Glibc.read(fd.rawValue, storage.baseAddress! + filled, size - filled) }) {
            case .success(let count) where count > 0: filled += count
            case .success: return ObjectImage(storage: storage, count: filled)  // shorter than fstat said
            case .failure(let error):
                storage.deallocate()
                throw error
            }
        }
        return ObjectImage(storage: storage, count: filled)
    }

    private init(storage: UnsafeMutableRawBufferPointer, count: Int) {
        self.storage = storage
        self.count = count
    }

    deinit { storage.deallocate() }

    /// The first `length` bytes (fewer for a shorter file), for the header check.
    package func prefix(_ length: Int) -> [UInt8] {
        Array(UnsafeRawBufferPointer(rebasing: storage[0..<min(length, count)]))
    }

    /// Hands the bytes to the caller, who deallocates them with `deallocate()` on the returned buffer.
    fileprivate consuming func take() -> UnsafeMutableRawBufferPointer {
        let result = UnsafeMutableRawBufferPointer(start: storage.baseAddress, count: count)
        discard self
        return result
    }
}
