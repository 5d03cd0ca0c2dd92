// Every generated message decoder. Input: two bytes pick the message type (index into the sorted registry), the
// rest is the wire bytes.
//
// What must hold for an input that decodes: the size computed equals the bytes encoded; the encoding decodes to an
// equal message (decode∘encode is the identity on decoded messages) of the same encoded size; the JSON
// form parses back to the same JSON. An input that does not decode throws a typed ProtoDecodingError, nothing else.
internal import FuzzSupport
internal import Glibc
internal import Proto

private let types: [any ProtoMessage.Type] = ProtoRegistry.messageTypes.sorted { $0.key < $1.key }.map(\.value)

private func check<M: ProtoMessage>(_: M.Type, _ bytes: [UInt8]) {
    let message: M
    do { message = try M(serializedBytes: bytes) } catch { return }
    let encoded = message.serializedBytes()
    require(encoded.count == message.serializedSize, "\(M.protoMessageName): serializedSize is wrong")
    let again: M
    do { again = try M(serializedBytes: encoded) } catch {
        fail("\(M.protoMessageName): our encoding does not decode: \(error)")
    }
    // A NaN float is not == to itself: such a message must then come back bit for bit.
    require(again == message || again.serializedBytes() == encoded, "\(M.protoMessageName): decode(encode(m)) != m")
    // Not byte-equal: map entries go out in the dictionary's order, which two equal dictionaries need not share.
    require(again.serializedSize == encoded.count, "\(M.protoMessageName): equal messages differ in size")
    let json = message.jsonString()
    do {
        let fromJSON = try M(jsonString: json)
        require(fromJSON.jsonString() == json, "\(M.protoMessageName): JSON round trip changed \(json)")
    } catch {
        // Our JSON carries values proto3 JSON cannot read back (bytes that are not UTF-8 in a string field
        // are written as "invalid:..."), so a failure is allowed only then.
        require(json.contains("\"invalid:"), "\(M.protoMessageName): our JSON does not parse: \(error) \(json)")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 2 else { return 0 }
    let type = types[(Int(data[0]) << 8 | Int(data[1])) % types.count]
    check(type, Array(UnsafeBufferPointer(start: data + 2, count: size - 2)))
    return 0
}

/// With FUZZ_LIST_TYPES=1 in the environment, prints the type names in index order and exits (Fuzz/seeds uses it).
@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>
) -> CInt {
    if getenv("FUZZ_LIST_TYPES") != nil {
        for name in ProtoRegistry.messageTypes.keys.sorted() { print(name) }
        exit(0)
    }
    return 0
}
