import Foundation
import Testing

@testable import Proto

/// A small seeded generator (SplitMix64), so every run mutates the same inputs.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Valid random encodings of any message type, written straight from the embedded descriptors.
struct RandomEncoder {
    var messages: [String: Google_Protobuf_DescriptorProto] = [:]
    var enumNumbers: [String: [Int32]] = [:]

    init() throws {
        for file in ProtoDescriptors.files {
            let fd = try Google_Protobuf_FileDescriptorProto(serializedBytes: file.serializedDescriptor)
            func add(_ m: Google_Protobuf_DescriptorProto, scope: String) {
                let name = scope + "." + m.name
                messages[name] = m
                for e in m.enumType { enumNumbers[name + "." + e.name] = e.value.map(\.number) }
                for n in m.nestedType { add(n, scope: name) }
            }
            for m in fd.messageType { add(m, scope: "." + fd.package) }
            for e in fd.enumType { enumNumbers["." + fd.package + "." + e.name] = e.value.map(\.number) }
        }
    }

    func varint(_ v: UInt64, _ out: inout [UInt8]) { Varint.append(v, to: &out) }
    func tag(_ n: Int32, _ wt: UInt64, _ out: inout [UInt8]) { varint(UInt64(n) << 3 | wt, &out) }
    func lengthDelimited(_ body: [UInt8], _ out: inout [UInt8]) {
        varint(UInt64(body.count), &out)
        out += body
    }

    func randomVarint<R: RandomNumberGenerator>(_ rng: inout R) -> UInt64 {
        switch Int.random(in: 0..<4, using: &rng) {
        case 0: UInt64.random(in: 0..<128, using: &rng)
        case 1: UInt64.random(in: 0..<70000, using: &rng)
        case 2: UInt64.max - UInt64.random(in: 0..<3, using: &rng)
        default: rng.next()
        }
    }

    func randomString<R: RandomNumberGenerator>(_ rng: inout R) -> [UInt8] {
        let pieces = ["a", "Z", "é", "中", "😀", " ", "\n", "/"]
        return Array(
            (0..<Int.random(in: 0..<8, using: &rng)).map { _ in pieces.randomElement(using: &rng)! }.joined().utf8
        )
    }

    /// The wire value (without tag) of one field of `type`, and its wire type.
    func value<R: RandomNumberGenerator>(
        _ f: Google_Protobuf_FieldDescriptorProto,
        depth: Int,
        _ rng: inout R
    )
        -> (UInt64, [UInt8])
    {
        var out: [UInt8] = []
        switch f.type {
        case .int32, .int64, .uint32, .uint64, .sint32, .sint64, .bool:
            varint(randomVarint(&rng), &out)
            return (0, out)
        case .enum:
            let known = enumNumbers[f.typeName] ?? [0]
            let n =
                Bool.random(using: &rng) ? known.randomElement(using: &rng)! : Int32.random(in: -5..<100, using: &rng)
            varint(UInt64(bitPattern: Int64(n)), &out)
            return (0, out)
        case .fixed32, .sfixed32, .float:
            for _ in 0..<4 { out.append(UInt8.random(in: 0...255, using: &rng)) }
            return (5, out)
        case .fixed64, .sfixed64, .double:
            for _ in 0..<8 { out.append(UInt8.random(in: 0...255, using: &rng)) }
            return (1, out)
        case .string:
            lengthDelimited(randomString(&rng), &out)
            return (2, out)
        case .bytes:
            lengthDelimited(
                (0..<Int.random(in: 0..<12, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) },
                &out
            )
            return (2, out)
        default:  // message (maps are repeated entry messages)
            lengthDelimited(message(f.typeName, depth: depth + 1, &rng), &out)
            return (2, out)
        }
    }

    func message<R: RandomNumberGenerator>(_ name: String, depth: Int, _ rng: inout R) -> [UInt8] {
        guard let m = messages[name], depth < 5 else { return [] }
        var out: [UInt8] = []
        for f in m.field where Int.random(in: 0..<3, using: &rng) != 0 {
            let count = f.label == .repeated ? Int.random(in: 0..<4, using: &rng) : 1
            let scalarPacked =
                f.label == .repeated && ![.string, .bytes, .message].contains(f.type) && Bool.random(using: &rng)
            if scalarPacked {
                var body: [UInt8] = []
                for _ in 0..<count { body += value(f, depth: depth, &rng).1 }
                tag(f.number, 2, &out)
                lengthDelimited(body, &out)
                continue
            }
            for _ in 0..<count {
                let (wt, v) = value(f, depth: depth, &rng)
                tag(f.number, wt, &out)
                out += v
            }
        }
        if Int.random(in: 0..<8, using: &rng) == 0 {  // an unknown field now and then
            tag(Int32.random(in: 1000..<2000, using: &rng), 0, &out)
            varint(randomVarint(&rng), &out)
        }
        return out
    }
}

/// Seeded random mutation of valid encodings, fed to every generated decoder: bad input must
/// only ever produce a `ProtoDecodingError` (typed throws guarantees the type; the process not
/// crashing or hanging is what the test checks), and whatever decodes must re-encode stably.
@Suite struct FuzzTests {
    static func mutate<R: RandomNumberGenerator>(_ input: [UInt8], _ rng: inout R) -> [UInt8] {
        var b = input
        for _ in 0..<Int.random(in: 1...3, using: &rng) {
            switch Int.random(in: 0..<7, using: &rng) {
            case 0 where !b.isEmpty:  // flip a bit
                let i = Int.random(in: 0..<b.count, using: &rng)
                b[i] ^= 1 << UInt8.random(in: 0..<8, using: &rng)
            case 1 where !b.isEmpty:  // replace a byte with an interesting one
                b[Int.random(in: 0..<b.count, using: &rng)] = [0x00, 0x7F, 0x80, 0xFF, 0x0A, 0x12, 0x1B, 0x0F]
                    .randomElement(using: &rng)!
            case 2:  // insert random bytes
                let at = Int.random(in: 0...b.count, using: &rng)
                b.insert(
                    contentsOf: (0..<Int.random(in: 1...4, using: &rng)).map { _ in
                        UInt8.random(in: 0...255, using: &rng)
                    },
                    at: at
                )
            case 3 where !b.isEmpty:  // delete a range
                let i = Int.random(in: 0..<b.count, using: &rng)
                b.removeSubrange(i..<min(b.count, i + Int.random(in: 1...4, using: &rng)))
            case 4 where !b.isEmpty:  // truncate
                b.removeLast(Int.random(in: 1...b.count, using: &rng))
            case 5 where !b.isEmpty:  // duplicate a slice
                let i = Int.random(in: 0..<b.count, using: &rng)
                let j = min(b.count, i + Int.random(in: 1...8, using: &rng))
                b.insert(contentsOf: b[i..<j], at: Int.random(in: 0...b.count, using: &rng))
            default:  // a huge length prefix
                b.insert(
                    contentsOf: [0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F],
                    at: Int.random(in: 0...b.count, using: &rng)
                )
            }
        }
        return b
    }

    struct Stats {
        var inputs = 0
        var decoded = 0
        var rejected: [String: Int] = [:]
    }

    /// Decodes `bytes` as `M`; when that works, the message must survive binary and JSON round trips.
    static func check<M: ProtoMessage>(_: M.Type, _ bytes: [UInt8], _ stats: inout Stats) {
        stats.inputs += 1
        let first: M
        do {
            first = try M(serializedBytes: bytes)
        } catch {
            let key =
                switch error {
                case .truncated: "truncated"
                case .malformedVarint: "malformedVarint"
                case .wrongWireType: "wrongWireType"
                case .invalidUTF8: "invalidUTF8"
                case .lengthBeyondBuffer: "lengthBeyondBuffer"
                case .depthLimitExceeded: "depthLimitExceeded"
                case .groupWireType: "groupWireType"
                case .invalidWireType: "invalidWireType"
                case .invalidFieldNumber: "invalidFieldNumber"
                }
            stats.rejected[key, default: 0] += 1
            return
        }
        stats.decoded += 1
        let encoded = first.serializedBytes()
        #expect(encoded.count == first.serializedSize)
        guard let again = try? M(serializedBytes: encoded) else {
            Issue.record("\(M.protoMessageName): re-encoding does not decode: \(bytes)")
            return
        }
        let json = first.jsonString()
        #expect(again.jsonString() == json, "\(M.protoMessageName): binary round trip changed \(bytes)")
        do {
            let fromJSON = try M(jsonString: json)
            #expect(fromJSON.jsonString() == json, "\(M.protoMessageName): JSON round trip changed \(json)")
        } catch {
            // Timestamps outside 0001..9999 have no JSON form; anything else is a bug.
            #expect(json.contains("\"invalid:"), "\(M.protoMessageName): our JSON does not decode: \(error) \(json)")
        }
    }

    static func fuzz(seed: UInt64, rounds: Int, deadline: ContinuousClock.Instant?) throws -> Stats {
        var rng = SplitMix64(state: seed)
        let encoder = try RandomEncoder()
        var stats = Stats()
        let types = ProtoRegistry.messageTypes.sorted { $0.key < $1.key }
        var round = 0
        while deadline.map({ ContinuousClock.now < $0 }) ?? (round < rounds) {
            for (name, type) in types {
                let valid = encoder.message("." + name, depth: 0, &rng)
                check(type, valid, &stats)
                for _ in 0..<8 { check(type, mutate(valid, &rng), &stats) }
                // Pure noise too.
                check(
                    type,
                    (0..<Int.random(in: 0..<24, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) },
                    &stats
                )
            }
            round += 1
        }
        return stats
    }

    @Test func mutatedInputsOnlyThrowTypedErrors() throws {
        let stats = try Self.fuzz(seed: 0xB9F_3A11, rounds: 10, deadline: nil)
        #expect(stats.inputs > 15_000)
        #expect(stats.decoded > 1000, "the generator should mostly produce decodable inputs")
        #expect(stats.rejected.count >= 7, "mutations should reach several kinds of error: \(stats.rejected)")
    }

    /// PROTO_FUZZ_SECONDS=60 swift test --filter FuzzTests/longRun: runs for that long and prints the count.
    @Test(
        .enabled(if: ProcessInfo.processInfo.environment["PROTO_FUZZ_SECONDS"] != nil, "set PROTO_FUZZ_SECONDS to run")
    )
    func longRun() throws {
        let seconds = Int(ProcessInfo.processInfo.environment["PROTO_FUZZ_SECONDS"]!) ?? 60
        let seed = UInt64(ProcessInfo.processInfo.environment["PROTO_FUZZ_SEED"] ?? "") ?? 0x5EED
        let stats = try Self.fuzz(seed: seed, rounds: 0, deadline: .now + .seconds(seconds))
        print(
            "fuzz: \(stats.inputs) inputs in \(seconds) s (seed \(seed)), \(stats.decoded) decoded, rejected: \(stats.rejected.sorted { $0.key < $1.key })"
        )
        #expect(stats.inputs > 0)
    }
}
