// Encode and decode throughput of our codec (Proto) against swift-protobuf 1.39, on the same bytes.
// Run: cd Benchmarks && swift run -c release CodecBenchmark [seconds-per-measurement]
import Proto
import SwiftProtobuf
import SwiftProtobufMessages

typealias Ours = Proto.Bpfman_V1_ListResponse

let secondsPerRun = CommandLine.arguments.count > 1 ? Double(CommandLine.arguments[1]) ?? 0.5 : 0.5

// MARK: The messages (built with our types; swift-protobuf decodes the same bytes)

func listResponse() -> Proto.Bpfman_V1_ListResponse {
    var r = Proto.Bpfman_V1_ListResponse()
    for i in 0..<100 {
        var result = Proto.Bpfman_V1_ListResponse.ListResult()
        var info = Proto.Bpfman_V1_ProgramInfo()
        info.name = "xdp_pass_\(i)"
        var image = Proto.Bpfman_V1_BytecodeImage()
        image.url = "quay.io/bpfman-bytecode/xdp_pass:latest"
        image.imagePullPolicy = 1
        info.bytecode.location = .image(image)
        info.links = [UInt32(1000 + i), UInt32(2000 + i)]
        info.globalData = ["GLOBAL_u8": [0x01], "GLOBAL_u32": [0x0D, 0x0C, 0x0B, 0x0A]]
        info.mapOwnerID = UInt32(i)
        info.mapPinPath = "/run/bpfman/fs/maps/\(4000 + i)"
        info.mapUsedBy = ["\(4000 + i)", "\(5000 + i)"]
        info.metadata = ["app": "demo", "owner": "team-\(i % 7)", "bpfman.io/ProgramName": "xdp_pass"]
        result.info = info
        var k = Proto.Bpfman_V1_KernelProgramInfo()
        k.id = UInt32(4000 + i)
        k.name = "xdp_pass"
        k.programType = 6
        k.loadedAt = "2026-11-21T11:41:28+0000"
        k.tag = "4b9d1b2c3a4f5e6d"
        k.gplCompatible = true
        k.mapIds = [UInt32(100 + i), UInt32(200 + i), UInt32(300 + i)]
        k.btfID = UInt32(50 + i)
        k.bytesXlated = 96
        k.jited = true
        k.bytesJited = 75
        k.bytesMemlock = 4096
        k.verifiedInsns = 12
        result.kernelInfo = k
        r.results.append(result)
    }
    return r
}

func loadRequest() -> Proto.Bpfman_V1_LoadRequest {
    var r = Proto.Bpfman_V1_LoadRequest()
    r.bytecode.location = .file("/usr/lib/bpfman/xdp_counter.bpf.o")
    r.metadata = ["app": "counter", "env": "test"]
    r.globalData = [
        "GLOBAL_config": (0..<256).map { UInt8(truncatingIfNeeded: $0) },
        "GLOBAL_table": (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 31) },
        "GLOBAL_flag": [1],
    ]
    r.uuid = "6c2b1f0e-3d4a-4b5c-8d9e-0f1a2b3c4d5e"
    var info = Proto.Bpfman_V1_LoadInfo()
    info.name = "xdp_counter"
    info.programType = .xdp
    r.info = [info]
    return r
}

func getRequest() -> Proto.Bpfman_V1_GetRequest {
    var r = Proto.Bpfman_V1_GetRequest()
    r.id = 4242
    return r
}

// MARK: Timing

@inline(never)
func blackHole<T>(_ x: T) { withExtendedLifetime(x) {} }

/// Best of three runs: operations per second.
func measure(_ body: () throws -> Void) rethrows -> Double {
    var best = 0.0
    let clock = ContinuousClock()
    for _ in 0..<3 {
        var iterations = 0
        let start = clock.now
        var elapsed = 0.0
        repeat {
            for _ in 0..<16 { try body() }
            iterations += 16
            let d = clock.now - start
            elapsed = Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
        } while elapsed < secondsPerRun / 3
        best = max(best, Double(iterations) / elapsed)
    }
    return best
}

func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
func lpad(_ s: String, _ n: Int) -> String { s.count >= n ? s : String(repeating: " ", count: n - s.count) + s }
func fmt(_ v: Double, _ digits: Int = 1) -> String {
    let p = (0..<digits).reduce(1.0) { r, _ in r * 10 }
    let x = (v * p).rounded() / p
    return String(x)
}

func bench<O: Proto.ProtoMessage, T: SwiftProtobuf.Message>(_ name: String, _ ours: O, _ theirType: T.Type) throws {
    let bytes = ours.serializedBytes()
    let theirs = try T(serializedBytes: bytes)
    let reencoded = try O(serializedBytes: theirs.serializedBytes() as [UInt8])
    precondition(reencoded == ours, "swift-protobuf re-encoding differs")
    let size = Double(bytes.count)
    let ourEncode = measure { blackHole(ours.serializedBytes()) }
    let theirEncode = try measure { blackHole(try theirs.serializedBytes() as [UInt8]) }
    let ourDecode = try measure { blackHole(try O(serializedBytes: bytes)) }
    let theirDecode = try measure { blackHole(try T(serializedBytes: bytes)) }
    for (op, o, t) in [("encode", ourEncode, theirEncode), ("decode", ourDecode, theirDecode)] {
        print(
            pad(name, 28) + pad(op, 8) + lpad(String(bytes.count), 7)
                + lpad(fmt(o * size / 1e6), 11) + lpad(String(Int(o)), 12)
                + lpad(fmt(t * size / 1e6), 11) + lpad(String(Int(t)), 12)
                + lpad(fmt(o / t, 2), 8)
        )
    }
}

print("seconds per measurement: \(secondsPerRun) (best of 3)")
print(
    pad("message", 28) + pad("op", 8) + lpad("bytes", 7) + lpad("ours MB/s", 11) + lpad("ours msg/s", 12)
        + lpad("spb MB/s", 11) + lpad("spb msg/s", 12) + lpad("ratio", 8)
)
try bench("ListResponse (100 results)", listResponse(), SwiftProtobufMessages.Bpfman_V1_ListResponse.self)
try bench("LoadRequest (global data)", loadRequest(), SwiftProtobufMessages.Bpfman_V1_LoadRequest.self)
try bench("GetRequest", getRequest(), SwiftProtobufMessages.Bpfman_V1_GetRequest.self)
