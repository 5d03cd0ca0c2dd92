// Encoding writes back to front into a buffer whose exact size was computed first, so every
// length prefix is known when it is written and nothing is measured twice.

/// Writes protobuf wire values backwards, from the end of an exactly-sized buffer to its start.
///
/// Generated code writes a message's unknown fields first, then its fields in descending
/// field-number order, each value before its length and tag, so the finished buffer reads forward
/// in ascending field-number order.
package struct ProtoWriter {
    @usableFromInline let base: UnsafeMutablePointer<UInt8>
    /// Bytes `[position, capacity)` are written.
    @usableFromInline package var position: Int

    /// - Parameters:
    ///   - base: the buffer, owned by the caller and valid while the writer is used.
    ///   - capacity: the exact number of bytes that will be written.
    @inlinable
    package init(base: UnsafeMutablePointer<UInt8>, capacity: Int) {
        self.base = base
        self.position = capacity
    }

    @inline(__always)
    package mutating func writeVarint(_ value: UInt64) {
        if value < 0x80 {
            position -= 1
            base[position] = UInt8(truncatingIfNeeded: value)
            return
        }
        let n = Varint.encodedSize(of: value)
        position -= n
        var q = base + position
        var v = value
        while v >= 0x80 {
            q.pointee = UInt8(truncatingIfNeeded: v) | 0x80
            q += 1
            v >>= 7
        }
        q.pointee = UInt8(truncatingIfNeeded: v)
    }

    @inline(__always)
    package mutating func writeTag(_ tag: UInt32) {
        writeVarint(UInt64(tag))
    }

    @inline(__always)
    package mutating func writeLength(since end: Int) {
        writeVarint(UInt64(end - position))
    }

    @inline(__always)
    package mutating func writeFixed32(_ value: UInt32) {
        position -= 4
        UnsafeMutableRawPointer(base + position).storeBytes(of: value.littleEndian, as: UInt32.self)
    }

    @inline(__always)
    package mutating func writeFixed64(_ value: UInt64) {
        position -= 8
        UnsafeMutableRawPointer(base + position).storeBytes(of: value.littleEndian, as: UInt64.self)
    }

    /// Raw bytes, no length prefix (unknown fields).
    @inline(__always)
    package mutating func writeRaw(_ bytes: [UInt8]) {
        let n = bytes.count
        if n == 0 { return }
        position -= n
        bytes.withUnsafeBufferPointer { src in
            (base + position).update(from: src.baseAddress!, count: n)
        }
    }

    /// A `bytes` value with its length prefix.
    @inline(__always)
    package mutating func writeBytes(_ bytes: [UInt8]) {
        writeRaw(bytes)
        writeVarint(UInt64(bytes.count))
    }

    /// A `string` value with its length prefix.
    @inline(__always)
    package mutating func writeString(_ string: String) {
        var s = string
        let n = s.withUTF8 { src in
            let n = src.count
            if n > 0 {
                position -= n
                (base + position).update(from: src.baseAddress!, count: n)
            }
            return n
        }
        writeVarint(UInt64(n))
    }

    @inline(__always) package mutating func writeInt32(_ v: Int32) { writeVarint(UInt64(bitPattern: Int64(v))) }
    @inline(__always) package mutating func writeInt64(_ v: Int64) { writeVarint(UInt64(bitPattern: v)) }
    @inline(__always) package mutating func writeUInt32(_ v: UInt32) { writeVarint(UInt64(v)) }
    @inline(__always) package mutating func writeUInt64(_ v: UInt64) { writeVarint(v) }
    @inline(__always) package mutating func writeSInt32(_ v: Int32) { writeVarint(Varint.zigzag(Int64(v))) }
    @inline(__always) package mutating func writeSInt64(_ v: Int64) { writeVarint(Varint.zigzag(v)) }
    @inline(__always) package mutating func writeBool(_ v: Bool) { writeVarint(v ? 1 : 0) }
    @inline(__always) package mutating func writeFixed32Value(_ v: UInt32) { writeFixed32(v) }
    @inline(__always) package mutating func writeFixed64Value(_ v: UInt64) { writeFixed64(v) }
    @inline(__always) package mutating func writeSFixed32(_ v: Int32) { writeFixed32(UInt32(bitPattern: v)) }
    @inline(__always) package mutating func writeSFixed64(_ v: Int64) { writeFixed64(UInt64(bitPattern: v)) }
    @inline(__always) package mutating func writeFloat(_ v: Float) { writeFixed32(v.bitPattern) }
    @inline(__always) package mutating func writeDouble(_ v: Double) { writeFixed64(v.bitPattern) }
    @inline(__always) package mutating func writeEnum<E: ProtoEnum>(_ v: E) { writeInt32(v.rawValue) }

    /// A sub-message with its length prefix (no tag).
    @inline(__always)
    package mutating func writeMessage<M: ProtoMessage>(_ message: M) {
        let end = position
        message._protoEncode(to: &self)
        writeVarint(UInt64(end - position))
    }
}

/// Encoded sizes of single values (without tags).
package enum ProtoSize {
    @inline(__always) package static func varint(_ v: UInt64) -> Int { Varint.encodedSize(of: v) }
    @inline(__always) package static func int32(_ v: Int32) -> Int { v < 0 ? 10 : Varint.encodedSize(of: UInt64(v)) }
    @inline(__always) package static func int64(_ v: Int64) -> Int { Varint.encodedSize(of: UInt64(bitPattern: v)) }
    @inline(__always) package static func uint32(_ v: UInt32) -> Int { Varint.encodedSize(of: UInt64(v)) }
    @inline(__always) package static func uint64(_ v: UInt64) -> Int { Varint.encodedSize(of: v) }
    @inline(__always) package static func sint32(_ v: Int32) -> Int { Varint.encodedSize(of: Varint.zigzag(Int64(v))) }
    @inline(__always) package static func sint64(_ v: Int64) -> Int { Varint.encodedSize(of: Varint.zigzag(v)) }
    @inline(__always) package static func enumValue<E: ProtoEnum>(_ v: E) -> Int { int32(v.rawValue) }
    @inline(__always) package static func lengthDelimited(_ n: Int) -> Int { n + Varint.encodedSize(of: UInt64(n)) }
    @inline(__always) package static func string(_ s: String) -> Int { lengthDelimited(s.utf8.count) }
    @inline(__always) package static func bytes(_ b: [UInt8]) -> Int { lengthDelimited(b.count) }
    @inline(__always) package static func message<M: ProtoMessage>(_ m: M) -> Int {
        lengthDelimited(m._protoEncodedSize())
    }
}
