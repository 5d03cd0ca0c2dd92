// A forward reader over one contiguous byte range. Every read checks bounds and throws
// ProtoDecodingError; nothing here traps on bad input.

/// Reads protobuf wire values from raw memory the caller keeps alive for the reader's lifetime.
package struct ProtoReader {
    /// The deepest message nesting accepted (the top-level message is depth 0).
    package static let maxDepth = 100

    @usableFromInline var p: UnsafePointer<UInt8>
    @usableFromInline let end: UnsafePointer<UInt8>
    @usableFromInline let depth: Int
    /// Where the most recent tag began, so unknown fields can be copied whole.
    @usableFromInline var tagStart: UnsafePointer<UInt8>

    @inlinable
    package init(start: UnsafePointer<UInt8>, end: UnsafePointer<UInt8>, depth: Int = 0) {
        self.p = start
        self.end = end
        self.depth = depth
        self.tagStart = start
    }

    @inlinable
    package var isAtEnd: Bool { p >= end }

    // MARK: Primitives

    /// The next tag, or 0 at the end of input.
    @inline(__always)
    package mutating func nextTag() throws(ProtoDecodingError) -> UInt32 {
        if p >= end { return 0 }
        tagStart = p
        let b = p.pointee
        if b < 0x80 {
            p += 1
            if b < 8 { throw .invalidFieldNumber }
            return UInt32(b)
        }
        let v = try readVarintSlow()
        guard v <= UInt64(UInt32.max), v >> 3 != 0 else { throw .invalidFieldNumber }
        return UInt32(truncatingIfNeeded: v)
    }

    @inline(__always)
    package mutating func readVarint() throws(ProtoDecodingError) -> UInt64 {
        if p < end, p.pointee < 0x80 {
            let v = UInt64(p.pointee)
            p += 1
            return v
        }
        return try readVarintSlow()
    }

    @usableFromInline
    mutating func readVarintSlow() throws(ProtoDecodingError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        var q = p
        while true {
            guard q < end else { throw .truncated }
            let b = q.pointee
            q += 1
            if shift == 63 && b > 1 { throw .malformedVarint }
            result |= UInt64(b & 0x7F) << shift
            if b < 0x80 { break }
            shift += 7
            if shift > 63 { throw .malformedVarint }
        }
        p = q
        return result
    }

    @inline(__always)
    package mutating func readFixed32() throws(ProtoDecodingError) -> UInt32 {
        guard end - p >= 4 else { throw .truncated }
        let v = UnsafeRawPointer(p).loadUnaligned(as: UInt32.self)
        p += 4
        return UInt32(littleEndian: v)
    }

    @inline(__always)
    package mutating func readFixed64() throws(ProtoDecodingError) -> UInt64 {
        guard end - p >= 8 else { throw .truncated }
        let v = UnsafeRawPointer(p).loadUnaligned(as: UInt64.self)
        p += 8
        return UInt64(littleEndian: v)
    }

    /// A length prefix, checked against the bytes that remain.
    @inline(__always)
    package mutating func readLength() throws(ProtoDecodingError) -> Int {
        let n = try readVarint()
        guard n <= UInt64(end - p) else { throw .lengthBeyondBuffer }
        return Int(truncatingIfNeeded: n)
    }

    /// A reader over the next length-delimited value, one level deeper; this reader moves past it.
    @inline(__always)
    package mutating func subReader() throws(ProtoDecodingError) -> ProtoReader {
        let n = try readLength()
        guard depth < ProtoReader.maxDepth else { throw .depthLimitExceeded }
        let sub = ProtoReader(start: p, end: p + n, depth: depth + 1)
        p += n
        return sub
    }

    // MARK: Scalars

    @inline(__always) package mutating func readInt32() throws(ProtoDecodingError) -> Int32 {
        Int32(truncatingIfNeeded: try readVarint())
    }
    @inline(__always) package mutating func readInt64() throws(ProtoDecodingError) -> Int64 {
        Int64(bitPattern: try readVarint())
    }
    @inline(__always) package mutating func readUInt32() throws(ProtoDecodingError) -> UInt32 {
        UInt32(truncatingIfNeeded: try readVarint())
    }
    @inline(__always) package mutating func readUInt64() throws(ProtoDecodingError) -> UInt64 {
        try readVarint()
    }
    @inline(__always) package mutating func readSInt32() throws(ProtoDecodingError) -> Int32 {
        let v = UInt32(truncatingIfNeeded: try readVarint())
        return Int32(bitPattern: v >> 1) ^ -Int32(bitPattern: v & 1)
    }
    @inline(__always) package mutating func readSInt64() throws(ProtoDecodingError) -> Int64 {
        Varint.unzigzag(try readVarint())
    }
    @inline(__always) package mutating func readBool() throws(ProtoDecodingError) -> Bool {
        try readVarint() != 0
    }
    @inline(__always) package mutating func readSFixed32() throws(ProtoDecodingError) -> Int32 {
        Int32(bitPattern: try readFixed32())
    }
    @inline(__always) package mutating func readSFixed64() throws(ProtoDecodingError) -> Int64 {
        Int64(bitPattern: try readFixed64())
    }
    @inline(__always) package mutating func readFloat() throws(ProtoDecodingError) -> Float {
        Float(bitPattern: try readFixed32())
    }
    @inline(__always) package mutating func readDouble() throws(ProtoDecodingError) -> Double {
        Double(bitPattern: try readFixed64())
    }
    @inline(__always) package mutating func readEnum<E: ProtoEnum>() throws(ProtoDecodingError) -> E {
        E(rawValue: Int32(truncatingIfNeeded: try readVarint()))
    }

    /// A `string` field: UTF-8 is checked, `fieldNumber` only names the field in the error.
    @inline(__always)
    package mutating func readString(field fieldNumber: Int) throws(ProtoDecodingError) -> String {
        let n = try readLength()
        let start = p
        p += n
        if n == 0 { return "" }
        let buffer = UnsafeBufferPointer(start: start, count: n)
        if ProtoReader.isASCII(buffer) {
            return String(unsafeUninitializedCapacity: n) { out in
                _ = out.initialize(from: buffer)
                return n
            }
        }
        guard let s = String(validating: buffer, as: UTF8.self) else { throw .invalidUTF8(fieldNumber: fieldNumber) }
        return s
    }

    @inline(__always)
    package mutating func readBytes() throws(ProtoDecodingError) -> [UInt8] {
        let n = try readLength()
        let start = p
        p += n
        return n == 0 ? [] : Array(UnsafeBufferPointer(start: start, count: n))
    }

    @usableFromInline
    static func isASCII(_ b: UnsafeBufferPointer<UInt8>) -> Bool {
        var i = 0
        let n = b.count
        let base = UnsafeRawPointer(b.baseAddress!)
        while i + 8 <= n {
            if base.loadUnaligned(fromByteOffset: i, as: UInt64.self) & 0x8080_8080_8080_8080 != 0 { return false }
            i += 8
        }
        while i < n {
            if b[i] >= 0x80 { return false }
            i += 1
        }
        return true
    }

    // MARK: Messages and repeated fields

    /// Decodes (merges) a length-delimited sub-message into `slot`, creating it when absent.
    @inline(__always)
    package mutating func readMessage<M: ProtoMessage>(into slot: inout M?) throws(ProtoDecodingError) {
        var sub = try subReader()
        if slot == nil { slot = M() }
        try slot!._protoDecode(from: &sub)
    }

    /// Decodes (merges) a length-delimited sub-message into `message`.
    @inline(__always)
    package mutating func readMessage<M: ProtoMessage>(_ message: inout M) throws(ProtoDecodingError) {
        var sub = try subReader()
        try message._protoDecode(from: &sub)
    }

    /// Appends one length-delimited sub-message.
    @inline(__always)
    package mutating func readMessage<M: ProtoMessage>(appendingTo array: inout [M]) throws(ProtoDecodingError) {
        var sub = try subReader()
        var m = M()
        try m._protoDecode(from: &sub)
        array.append(m)
    }

    /// Reads a packed run of varints (the length-delimited form of a repeated scalar).
    @inline(__always)
    package mutating func readPackedVarints<T>(
        into array: inout [T],
        _ convert: (UInt64) -> T
    ) throws(ProtoDecodingError) {
        let n = try readLength()
        let stop = p + n
        var sub = ProtoReader(start: p, end: stop, depth: depth)
        while sub.p < stop {
            array.append(convert(try sub.readVarint()))
        }
        p = stop
    }

    @inline(__always)
    package mutating func readPackedFixed32<T>(
        into array: inout [T],
        _ convert: (UInt32) -> T
    ) throws(ProtoDecodingError) {
        let n = try readLength()
        guard n % 4 == 0 else { throw .truncated }
        let stop = p + n
        array.reserveCapacity(array.count + n / 4)
        while p < stop {
            array.append(convert(UInt32(littleEndian: UnsafeRawPointer(p).loadUnaligned(as: UInt32.self))))
            p += 4
        }
    }

    @inline(__always)
    package mutating func readPackedFixed64<T>(
        into array: inout [T],
        _ convert: (UInt64) -> T
    ) throws(ProtoDecodingError) {
        let n = try readLength()
        guard n % 8 == 0 else { throw .truncated }
        let stop = p + n
        array.reserveCapacity(array.count + n / 8)
        while p < stop {
            array.append(convert(UInt64(littleEndian: UnsafeRawPointer(p).loadUnaligned(as: UInt64.self))))
            p += 8
        }
    }

    // MARK: Unknown fields

    /// Skips the value of the field whose tag was just read and appends the whole field to `unknown`.
    package mutating func skipField(tag: UInt32, into unknown: inout [UInt8]) throws(ProtoDecodingError) {
        try skipValue(tag: tag)
        unknown.append(contentsOf: UnsafeBufferPointer(start: tagStart, count: p - tagStart))
    }

    /// Skips the value of the field whose tag was just read.
    package mutating func skipValue(tag: UInt32) throws(ProtoDecodingError) {
        switch tag & 7 {
        case WireType.varint: _ = try readVarint()
        case WireType.fixed64:
            guard end - p >= 8 else { throw .truncated }
            p += 8
        case WireType.lengthDelimited: p += try readLength()
        case WireType.fixed32:
            guard end - p >= 4 else { throw .truncated }
            p += 4
        case WireType.startGroup, WireType.endGroup: throw .groupWireType
        default: throw .invalidWireType(Int(tag & 7))
        }
    }

    /// For a tag whose field number is known but whose wire type is not the declared one.
    package func wrongWireType(_ tag: UInt32) -> ProtoDecodingError {
        switch tag & 7 {
        case WireType.startGroup, WireType.endGroup: .groupWireType
        case 6, 7: .invalidWireType(Int(tag & 7))
        default: .wrongWireType(fieldNumber: Int(tag >> 3), wireType: Int(tag & 7))
        }
    }
}
