// protocat: binary protobuf <-> canonical proto3 JSON for every message type we generate.
//
//   protocat --type bpfman.v1.LoadRequest --decode   < request.bin  > request.json
//   protocat --type bpfman.v1.LoadRequest --encode   < request.json > request.bin
//   protocat --list                                  (every known message type)
//
// Errors go to stderr; the exit status is 1 for bad input and 2 for bad usage.
internal import Foundation
internal import Proto

let usage = """
    usage: protocat --type <full.message.Name> (--decode | --encode)
           protocat --list
      --decode  read binary protobuf on stdin, write canonical JSON on stdout
      --encode  read JSON on stdin, write binary protobuf on stdout

    """

func die(_ message: String, status: Int32) -> Never {
    FileHandle.standardError.write(Data("protocat: \(message)\n".utf8))
    exit(status)
}

func decode<M: ProtoMessage>(_: M.Type, _ input: [UInt8]) -> [UInt8] {
    do {
        return try M(serializedBytes: input).jsonUTF8Bytes() + [0x0A]
    } catch {
        die("cannot decode \(M.protoMessageName): \(error)", status: 1)
    }
}

func encode<M: ProtoMessage>(_: M.Type, _ input: [UInt8]) -> [UInt8] {
    do {
        return try M(jsonUTF8Bytes: input).serializedBytes()
    } catch {
        die("cannot encode \(M.protoMessageName) from JSON: \(error)", status: 1)
    }
}

func main() {
    var typeName: String?
    var mode: String?
    var args = CommandLine.arguments.dropFirst()
    while let a = args.popFirst() {
        switch a {
        case "--type", "-t":
            guard let v = args.popFirst() else { die("--type needs a message name\n\(usage)", status: 2) }
            typeName = v
        case "--decode", "-d": mode = "decode"
        case "--encode", "-e": mode = "encode"
        case "--list":
            for name in ProtoRegistry.messageTypes.keys.sorted() { print(name) }
            return
        case "--help", "-h":
            print(usage, terminator: "")
            return
        default: die("unknown argument \(a)\n\(usage)", status: 2)
        }
    }
    guard let typeName, let mode else { die("need --type and one of --decode/--encode\n\(usage)", status: 2) }
    let name = typeName.hasPrefix(".") ? String(typeName.dropFirst()) : typeName
    guard let type = ProtoRegistry.messageTypes[name] else {
        die("unknown message type \(typeName) (see protocat --list)", status: 2)
    }
    let input = [UInt8](FileHandle.standardInput.readDataToEndOfFile())
    let output = mode == "decode" ? decode(type, input) : encode(type, input)
    FileHandle.standardOutput.write(Data(output))
}

main()
