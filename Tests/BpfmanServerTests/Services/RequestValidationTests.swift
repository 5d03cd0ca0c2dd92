import BpfmanEngine
import H2Transport
import Proto
import Testing

@testable import BpfmanServer

/// SPEC §3 validation tables, row by row: each case breaks exactly the checks it names and expects the
/// first failing one's status and message.
@Suite struct RequestValidationTests {
    static func program(
        _ name: String,
        _ type: Bpfman_V1_BpfmanProgramType,
        _ info: Bpfman_V1_ProgSpecificInfo.OneOf_Info? = nil
    )
        -> Bpfman_V1_LoadInfo
    {
        var p = Bpfman_V1_LoadInfo()
        p.name = name
        p.programType = type
        if let info {
            var specific = Bpfman_V1_ProgSpecificInfo()
            specific.info = info
            p.info = specific
        }
        return p
    }

    static func load(
        file: String? = "/obj.o",
        image: Bpfman_V1_BytecodeImage? = nil,
        _ info: [Bpfman_V1_LoadInfo]
    )
        -> Bpfman_V1_LoadRequest
    {
        var r = Bpfman_V1_LoadRequest()
        if let image {
            var b = Bpfman_V1_BytecodeLocation()
            b.location = .image(image)
            r.bytecode = b
        } else if let file {
            var b = Bpfman_V1_BytecodeLocation()
            b.location = .file(file)
            r.bytecode = b
        }
        r.info = info
        return r
    }

    static func image(_ url: String, policy: Int32 = 1) -> Bpfman_V1_BytecodeImage {
        var i = Bpfman_V1_BytecodeImage()
        i.url = url
        i.imagePullPolicy = policy
        return i
    }

    static func fentry(_ fn: String) -> Bpfman_V1_ProgSpecificInfo.OneOf_Info {
        var f = Bpfman_V1_FentryLoadInfo()
        f.fnName = fn
        return .fentryLoadInfo(f)
    }

    static func lsm(_ hook: String) -> Bpfman_V1_ProgSpecificInfo.OneOf_Info {
        var l = Bpfman_V1_LsmLoadInfo()
        l.hookName = hook
        return .lsmLoadInfo(l)
    }

    static let tp = program("tp_a", .tracepoint)

    static let loadCases: [(String, Bpfman_V1_LoadRequest, String)] = [
        ("no bytecode", load(file: nil, [tp]), "bytecode location is required"),
        (
            "bytecode without location",
            {
                var r = load(file: nil, [tp])
                r.bytecode = Bpfman_V1_BytecodeLocation()
                return r
            }(),
            "bytecode location is required"
        ),
        ("relative path", load(file: "obj.o", [tp]), "bytecode file path must be absolute, got \"obj.o\""),
        ("empty path", load(file: "", [tp]), "bytecode file path must be absolute, got \"\""),
        ("empty url", load(image: image(""), [tp]), "image url is required"),
        ("bad policy", load(image: image("quay.io/x", policy: 7), [tp]), "invalid pull policy: unknown pull policy: 7"),
        ("url checked before policy", load(image: image("", policy: 7), [tp]), "image url is required"),
        ("no info", load([]), "at least one program info is required"),
        ("path checked before info", load(file: "x", []), "bytecode file path must be absolute, got \"x\""),
        ("empty name", load([tp, program("", .xdp)]), "program name is required (info[1])"),
        ("duplicate", load([tp, program("tp_a", .kprobe)]), "program tp_a is listed more than once"),
        (
            "unknown type", load([program("p", .UNRECOGNIZED(42))]),
            "invalid program type for p: unknown program type: 42"
        ),
        ("fentry without info", load([program("f", .fentry)]), "fn_name is required for fentry program f"),
        (
            "fexit with empty fn",
            load([
                program(
                    "f",
                    .fexit,
                    {
                        var x = Bpfman_V1_FexitLoadInfo()
                        x.fnName = ""
                        return .fexitLoadInfo(x)
                    }()
                )
            ]),
            "fn_name is required for fexit program f"
        ),
        ("lsm without hook", load([program("l", .lsm)]), "hook_name is required for lsm program l"),
        (
            "variant on a tracepoint", load([program("t", .tracepoint, fentry("do_unlinkat"))]),
            "program t: fentry_load_info does not apply to a tracepoint program"
        ),
        (
            "lsm info on fentry", load([program("f", .fentry, lsm("file_open"))]),
            "program f: lsm_load_info does not apply to a fentry program"
        ),
    ]

    @Test(arguments: loadCases)
    func loadRejects(_ name: String, _ request: Bpfman_V1_LoadRequest, _ message: String) {
        #expect(throws: EngineError.invalidArgument(message), "\(name)") { try LoadRequest(validating: request) }
    }

    @Test func loadAcceptsAndConverts() throws {
        var request = Self.load(
            [
                Self.tp, Self.program("f", .fentry, Self.fentry("do_unlinkat")),
                Self.program("l", .lsm, Self.lsm("file_open")),
            ])
        request.metadata = ["bpfman.io/uuid": "u"]
        request.globalData = ["config_u8": [0x42]]
        request.mapOwnerID = 0
        let converted = try LoadRequest(validating: request)
        #expect(converted.bytecode == .file("/obj.o"))
        #expect(converted.mapOwnerID == nil, "map_owner_id 0 means unset")
        #expect(converted.metadata == ["bpfman.io/uuid": "u"])
        #expect(converted.globalData == ["config_u8": [0x42]])
        #expect(converted.programs.map(\.name) == ["tp_a", "f", "l"])
        #expect(converted.programs[1].target == .fentry(functionName: "do_unlinkat"))
        #expect(converted.programs[2].target == .lsm(hookName: "file_open"))
        #expect(converted.programs[0].type == .tracepoint)
    }

    @Test func imageCredentialsAreKeptForThePullOnly() throws {
        var image = Self.image("quay.io/bpfman/xdp:latest", policy: 2)
        image.username = "u"
        image.password = "p"
        let converted = try LoadRequest(validating: Self.load(image: image, [Self.tp]))
        #expect(
            converted.bytecode
                == .image(
                    BytecodeImage(url: "quay.io/bpfman/xdp:latest", pullPolicy: .never, username: "u", password: "p")
                )
        )
    }

    static func attach(_ id: UInt32, _ info: Bpfman_V1_AttachInfo.OneOf_Info?) -> Bpfman_V1_AttachRequest {
        var r = Bpfman_V1_AttachRequest()
        r.id = id
        if let info {
            var a = Bpfman_V1_AttachInfo()
            a.info = info
            r.attach = a
        }
        return r
    }

    static let tracepoint: Bpfman_V1_AttachInfo.OneOf_Info = {
        var t = Bpfman_V1_TracepointAttachInfo()
        t.tracepoint = "syscalls/sys_enter_getpid"
        return .tracepointAttachInfo(t)
    }()

    @Test func attachChecksIdThenAttachInfo() {
        #expect(throws: EngineError.invalidArgument("program id is required")) {
            try AttachCall(validating: Self.attach(0, nil))
        }
        #expect(throws: EngineError.invalidArgument("program id is required")) {
            try AttachCall(validating: Self.attach(0, Self.tracepoint))
        }
        #expect(throws: EngineError.invalidArgument("attach info is required")) {
            try AttachCall(validating: Self.attach(7, nil))
        }
        var empty = Self.attach(7, nil)
        empty.attach = Bpfman_V1_AttachInfo()
        #expect(throws: EngineError.invalidArgument("attach info is required")) { try AttachCall(validating: empty) }
    }

    @Test func attachConvertsEveryVariantField() throws {
        var x = Bpfman_V1_XDPAttachInfo()
        x.priority = 0
        x.iface = "veth0"
        x.position = 9  // output only: ignored
        x.proceedOn = [2, 31]
        x.netns = ""
        x.metadata = ["owner": "alpha"]
        let xdp = try AttachCall(validating: Self.attach(5, .xdpAttachInfo(x)))
        #expect(xdp.programID == 5)
        #expect(
            xdp.spec
                == .xdp(
                    XDPAttach(
                        priority: 0,
                        iface: "veth0",
                        proceedOn: [2, 31],
                        netns: nil,
                        metadata: ["owner": "alpha"]
                    )
                )
        )

        var u = Bpfman_V1_UprobeAttachInfo()
        u.target = "libc"
        u.fnName = "malloc"
        u.pid = 12
        u.offset = 4
        let uprobe = try AttachCall(validating: Self.attach(5, .uprobeAttachInfo(u)))
        #expect(uprobe.spec == .uprobe(UprobeAttach(fnName: "malloc", offset: 4, target: "libc", pid: 12)))

        var t = Bpfman_V1_TCXAttachInfo()
        t.iface = "eth0"
        t.direction = "Ingress"
        t.priority = 100
        t.netns = "/var/run/netns/x"
        let tcx = try AttachCall(validating: Self.attach(5, .tcxAttachInfo(t)))
        #expect(
            tcx.spec == .tcx(TCXAttach(priority: 100, iface: "eth0", direction: "Ingress", netns: "/var/run/netns/x"))
        )
    }

    @Test func idsOfZeroAreMissing() {
        #expect(throws: EngineError.invalidArgument("program id is required")) { try IDValidation.programID(0) }
        #expect(throws: EngineError.invalidArgument("link id is required")) { try IDValidation.linkID(0) }
        #expect((try? IDValidation.programID(3)) == 3)
    }

    @Test func pullBytecodeChecks() {
        #expect(throws: EngineError.invalidArgument("image is required")) {
            try BytecodeImage(validatingPull: Bpfman_V1_PullBytecodeRequest())
        }
        var r = Bpfman_V1_PullBytecodeRequest()
        r.image = Self.image("x", policy: -1)
        #expect(throws: EngineError.invalidArgument("invalid pull policy: unknown pull policy: -1")) {
            try BytecodeImage(validatingPull: r)
        }
    }
}
