// Wire types and tags of the protobuf binary format.

/// The low three bits of every tag.
package enum WireType {
    package static let varint: UInt32 = 0
    package static let fixed64: UInt32 = 1
    package static let lengthDelimited: UInt32 = 2
    package static let startGroup: UInt32 = 3
    package static let endGroup: UInt32 = 4
    package static let fixed32: UInt32 = 5

    /// The tag of `fieldNumber` with `wireType`, as it is varint-encoded on the wire.
    @inlinable
    package static func tag(_ fieldNumber: Int, _ wireType: UInt32) -> UInt32 {
        UInt32(fieldNumber) << 3 | wireType
    }
}
