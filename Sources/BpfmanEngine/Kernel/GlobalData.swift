internal import CBPF

/// One global variable an object declares in `.rodata`, `.data`, `.bss` or their subsections (SPEC §5.4).
package struct GlobalVariable {
    package var name: String
    package var size: Int
    package var offset: Int
    /// The internal map holding the variable's section.
    package var map: BPFMapHandle
}

extension BPFObject {
    /// The global variables of the object's data sections, found through each internal map's BTF DATASEC.
    package var globalVariables: [GlobalVariable] {
        guard let btf else { return [] }
        var result: [GlobalVariable] = []
        for map in maps where map.isInternal {
            let typeID = map.btfValueTypeID
            guard typeID != 0, let type = btf__type_by_id(btf, typeID) else { continue }
            // 15 is BTF_KIND_DATASEC.
            guard btfKind(type.pointee.info) == 15 else { continue }
            let section = String(cString: btf__name_by_offset(btf, type.pointee.name_off))
            guard
                section == ".rodata" || section == ".data" || section == ".bss" || section.hasPrefix(".rodata.")
                    || section.hasPrefix(".data.")
            else { continue }
            let count = Int(type.pointee.info & 0xffff)
            // `struct btf_var_secinfo` entries follow the `struct btf_type` header.
            let entries = UnsafeRawPointer(type).advanced(by: MemoryLayout<btf_type>.size)
                .assumingMemoryBound(to: btf_var_secinfo.self)
            for i in 0..<count {
                let entry = entries[i]
                guard let variable = btf__type_by_id(btf, entry.type) else { continue }
                let name = String(cString: btf__name_by_offset(btf, variable.pointee.name_off))
                result.append(GlobalVariable(name: name, size: Int(entry.size), offset: Int(entry.offset), map: map))
            }
        }
        return result
    }
}

/// `BTF_INFO_KIND`: bits 24-28 of `btf_type.info`.
private func btfKind(_ info: UInt32) -> UInt32 { (info >> 24) & 0x1f }
