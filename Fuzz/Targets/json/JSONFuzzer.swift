// The proto3 JSON mapping of every generated message. Input: two bytes pick the message type, the rest is the
// JSON text.
//
// What must hold for a document that parses: the message's own JSON parses to a message with the same JSON (the
// mapping is stable after one pass) and is the same message; the binary encoding decodes to an equal message.
// A document that does not parse throws ProtoJSONError, nothing else.
internal import FuzzSupport
internal import Proto

private let types: [any ProtoMessage.Type] = ProtoRegistry.messageTypes.sorted { $0.key < $1.key }.map(\.value)

private func check<M: ProtoMessage>(_: M.Type, _ text: String) {
    let message: M
    do { message = try M(jsonString: text) } catch { return }
    let encoded = message.serializedBytes()
    require(encoded.count == message.serializedSize, "\(M.protoMessageName): serializedSize is wrong")
    do {
        let decoded = try M(serializedBytes: encoded)
        // A NaN float is not == to itself: such a message must then come back bit for bit.
        require(
            decoded == message || decoded.serializedBytes() == encoded,
            "\(M.protoMessageName): decode(encode(m)) != m for \(text)"
        )
    } catch {
        fail("\(M.protoMessageName): the encoding of \(text) does not decode: \(error)")
    }
    let json = message.jsonString()
    do {
        let again = try M(jsonString: json)
        require(again.jsonString() == json, "\(M.protoMessageName): JSON not stable: \(text) -> \(json)")
        require(
            again == message || again.serializedBytes() == encoded,
            "\(M.protoMessageName): JSON round trip changed \(json)"
        )
    } catch {
        require(json.contains("\"invalid:"), "\(M.protoMessageName): our JSON does not parse: \(error) \(json)")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 2 else { return 0 }
    let type = types[(Int(data[0]) << 8 | Int(data[1])) % types.count]
    check(type, String(decoding: UnsafeBufferPointer(start: data + 2, count: size - 2), as: UTF8.self))
    return 0
}
