// The protocols every generated message and enum conforms to, and the entry points callers use.

/// A generated protobuf message: a value type with proto3 defaults and preserved unknown fields.
package protocol ProtoMessage: Sendable, Equatable {
    /// The message with every field at its default.
    init()
    /// The fully-qualified protobuf name, e.g. "bpfman.v1.LoadRequest".
    static var protoMessageName: String { get }
    /// Fields this version of the schema does not know, kept byte-for-byte and re-emitted on encode.
    var unknownFields: [UInt8] { get set }

    /// Merges fields read until the end of `reader`. Generated; callers use `init(serializedBytes:)`.
    mutating func _protoDecode(from reader: inout ProtoReader) throws(ProtoDecodingError)
    /// The exact encoded size in bytes. Generated; callers use `serializedSize`.
    func _protoEncodedSize() -> Int
    /// Writes the fields backwards (see `ProtoWriter`). Generated; callers use `serializedBytes()`.
    func _protoEncode(to writer: inout ProtoWriter)
    /// Writes the canonical proto3 JSON form. Generated; callers use `jsonString()`.
    func _protoEncodeJSON(to writer: inout ProtoJSONWriter)
    /// Merges the fields of a parsed JSON value. Generated; callers use `init(jsonString:)`.
    mutating func _protoDecodeJSON(from value: ProtoJSONValue) throws(ProtoJSONError)
}

/// A generated protobuf enum. Values outside the declared ones are kept (`UNRECOGNIZED`).
package protocol ProtoEnum: Sendable, Hashable, RawRepresentable where RawValue == Int32 {
    init(rawValue: Int32)
    /// The first declared value (number 0 in proto3).
    init()
    /// The declared name of the value ("XDP"), or nil for an unrecognized number.
    var protoName: String? { get }
    /// The value with the declared name `protoName`, if there is one.
    init?(protoName: String)
}

extension ProtoMessage {
    /// Decodes a message from its binary encoding.
    /// - Throws: `ProtoDecodingError` for any malformed input; it never traps.
    package init(serializedBytes bytes: [UInt8]) throws(ProtoDecodingError) {
        self.init()
        try merge(serializedBytes: bytes)
    }

    /// Decodes a message from raw memory the caller keeps alive for the call.
    package init(serializedBytes bytes: UnsafeRawBufferPointer) throws(ProtoDecodingError) {
        self.init()
        try merge(serializedBytes: bytes)
    }

    /// Merges the fields of `bytes` into this message (later values win, sub-messages merge).
    package mutating func merge(serializedBytes bytes: [UInt8]) throws(ProtoDecodingError) {
        let count = bytes.count
        if count == 0 { return }
        let result: Result<Void, ProtoDecodingError> = bytes.withUnsafeBufferPointer { buffer in
            let start = buffer.baseAddress!
            var reader = ProtoReader(start: start, end: start + count)
            do throws(ProtoDecodingError) {
                try self._protoDecode(from: &reader)
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        try result.get()
    }

    /// Merges the fields of `bytes` into this message.
    package mutating func merge(serializedBytes bytes: UnsafeRawBufferPointer) throws(ProtoDecodingError) {
        guard let raw = bytes.baseAddress, bytes.count > 0 else { return }
        let start = raw.assumingMemoryBound(to: UInt8.self)
        var reader = ProtoReader(start: start, end: start + bytes.count)
        try _protoDecode(from: &reader)
    }

    /// The exact number of bytes `serializedBytes()` returns.
    package var serializedSize: Int { _protoEncodedSize() }

    /// The binary encoding: known fields in field-number order, then unknown fields.
    package func serializedBytes() -> [UInt8] {
        serializedBytes(headroom: 0)
    }

    /// The binary encoding after `headroom` zero bytes the caller may fill in (a gRPC frame prefix).
    package func serializedBytes(headroom: Int) -> [UInt8] {
        let size = _protoEncodedSize()
        let total = headroom + size
        if total == 0 { return [] }
        return [UInt8](unsafeUninitializedCapacity: total) { buffer, initialized in
            let base = buffer.baseAddress!
            base.initialize(repeating: 0, count: headroom)
            var writer = ProtoWriter(base: base + headroom, capacity: size)
            _protoEncode(to: &writer)
            precondition(writer.position == 0, "\(Self.protoMessageName): size pass and write pass disagree")
            initialized = total
        }
    }

    /// The canonical proto3 JSON encoding, compact (no whitespace).
    package func jsonString(options: ProtoJSONEncodingOptions = .init()) -> String {
        String(decoding: jsonUTF8Bytes(options: options), as: UTF8.self)
    }

    /// The JSON encoding as UTF-8 bytes (canonical proto3 unless `options` say otherwise).
    package func jsonUTF8Bytes(options: ProtoJSONEncodingOptions = .init()) -> [UInt8] {
        var writer = ProtoJSONWriter(options: options)
        _protoEncodeJSON(to: &writer)
        return writer.bytes
    }

    /// The JSON encoding as a value, to compose into larger documents (see `ProtoJSONValue.text`).
    package func jsonValue(options: ProtoJSONEncodingOptions = .init()) -> ProtoJSONValue {
        // Our own output always parses.
        (try? ProtoJSONValue.parse(jsonUTF8Bytes(options: options))) ?? .null
    }

    /// Decodes the canonical proto3 JSON form (also accepts original field names, numbers as strings...).
    package init(jsonString: String) throws(ProtoJSONError) {
        try self.init(jsonUTF8Bytes: Array(jsonString.utf8))
    }

    /// Decodes the canonical proto3 JSON form from UTF-8 bytes.
    package init(jsonUTF8Bytes bytes: [UInt8]) throws(ProtoJSONError) {
        self.init()
        let value = try ProtoJSONValue.parse(bytes)
        try _protoDecodeJSON(from: value)
    }
}
