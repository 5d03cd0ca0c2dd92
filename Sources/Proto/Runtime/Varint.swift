// Base-128 varints and zigzag, the integer encodings of the protobuf wire format.

/// Varint and zigzag helpers.
package enum Varint {
    /// How many bytes `value` takes as a varint (1...10).
    @inlinable
    package static func encodedSize(of value: UInt64) -> Int {
        // Each byte carries 7 bits; a zero still takes one byte.
        let bits = 64 - (value | 1).leadingZeroBitCount
        return (bits + 6) / 7
    }

    /// Appends `value` as a varint.
    @inlinable
    package static func append(_ value: UInt64, to bytes: inout [UInt8]) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    /// Maps signed integers onto unsigned ones so that small magnitudes stay small (sint32/sint64).
    @inlinable
    package static func zigzag(_ value: Int64) -> UInt64 {
        UInt64(bitPattern: (value << 1) ^ (value >> 63))
    }

    /// The inverse of `zigzag(_:)`.
    @inlinable
    package static func unzigzag(_ value: UInt64) -> Int64 {
        Int64(bitPattern: value >> 1) ^ -Int64(bitPattern: value & 1)
    }
}
