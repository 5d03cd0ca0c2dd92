internal import Proto

/// Decodes the serialized request of a call, turning malformed input into INVALID_ARGUMENT.
///
/// Every service's handlers (bpfman, the inspection extension, health, reflection, CSI) read their request through
/// this one function, so a client that sends bytes that do not parse gets the same status and message whichever
/// service it called.
/// - Throws: the `GRPCStatus` of `ErrorMapping.undecodable` when `bytes` is not a valid `M`.
func decode<M: ProtoMessage>(_ type: M.Type, _ bytes: [UInt8]) throws -> M {
    do {
        return try M(serializedBytes: bytes)
    } catch {
        throw ErrorMapping.undecodable(M.protoMessageName, error)
    }
}
