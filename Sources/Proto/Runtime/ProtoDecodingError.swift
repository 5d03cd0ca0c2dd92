// The ways binary decoding can fail. Decoding never traps on bad input; it throws one of these.

/// Why a byte string is not a valid encoding of the message asked for.
package enum ProtoDecodingError: Error, Equatable, Hashable, Sendable, CustomStringConvertible {
    /// The input ends inside a tag, a varint or a fixed-width value.
    case truncated
    /// A varint runs past ten bytes, or its tenth byte carries more than one bit.
    case malformedVarint
    /// A known field arrived with a wire type its declared type never uses.
    case wrongWireType(fieldNumber: Int, wireType: Int)
    /// A `string` field holds bytes that are not UTF-8.
    case invalidUTF8(fieldNumber: Int)
    /// A length-delimited value claims more bytes than remain.
    case lengthBeyondBuffer
    /// Messages nest deeper than `ProtoReader.maxDepth`.
    case depthLimitExceeded
    /// Wire types 3 and 4 (groups): proto3 has none, and we do not read them.
    case groupWireType
    /// Wire types 6 and 7, which do not exist.
    case invalidWireType(Int)
    /// Field number 0, or one above 2^29 - 1.
    case invalidFieldNumber

    package var description: String {
        switch self {
        case .truncated: "truncated input"
        case .malformedVarint: "malformed varint"
        case .wrongWireType(let field, let wireType): "field \(field) has the wrong wire type \(wireType)"
        case .invalidUTF8(let field): "field \(field) is not valid UTF-8"
        case .lengthBeyondBuffer: "length-delimited field runs past the end of the input"
        case .depthLimitExceeded: "messages nested deeper than \(ProtoReader.maxDepth)"
        case .groupWireType: "group wire types are not supported"
        case .invalidWireType(let wireType): "invalid wire type \(wireType)"
        case .invalidFieldNumber: "invalid field number"
        }
    }
}
