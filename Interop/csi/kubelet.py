"""A kubelet stand-in for the bpfman CSI node plugin, on grpcio (gRPC C-core) over the CSI Unix socket.

Usage:
  python kubelet.py [--stubs DIR] SOCKET call METHOD JSON
      One RPC. METHOD is "Service/Method" under csi.v1 (e.g. Node/NodePublishVolume); JSON is the request in
      proto3 JSON. Prints one JSON line: {"code": "OK"|"NOT_FOUND"|..., "message": ..., "response": {...}}.
  python kubelet.py [--stubs DIR] SOCKET concurrent N METHOD JSON
      N identical RPCs at once from N threads; prints {"codes": [...]}.
  python kubelet.py [--stubs DIR] SOCKET every SECONDS COUNT METHOD JSON
      COUNT RPCs, one every SECONDS on one channel; prints {"codes": [...]}.
  python kubelet.py [--stubs DIR] SOCKET sanity PROGRAM MAPS WORKDIR
      csi-sanity-style checks of the Identity and Node rules; one line per check, "PASS" at the end,
      exit 1 with the reason on the first failure.
  python kubelet.py [--stubs DIR] MAIN_SOCKET operator-load OBJECT FUNCTION PROGRAM_NAME TRACEPOINT
      What the operator does before a pod asks for maps: Load FUNCTION (tracepoint) from OBJECT through the
      daemon's main socket with metadata bpfman.io/ProgramName=PROGRAM_NAME, Attach it; prints {"id": N, ...}.
      OBJECT "image:URL" loads from the bytecode image URL (pull policy IfNotPresent), as the operator's agent
      does; the output then also has "image": the url and policy Load reported.
  python kubelet.py [--stubs DIR] MAIN_SOCKET operator-unload ID
  python kubelet.py [--stubs DIR] SOCKET health SERVICE
      grpc.health.v1 Check of SERVICE; prints {"status": "SERVING"|...} or {"code": ...}.
  python kubelet.py [--stubs DIR] SOCKET watch SERVICE [FILE]
      grpc.health.v1 Watch of SERVICE; prints each status as it arrives (and appends it to FILE), then "END"
      when the stream ends.
  python kubelet.py --stubs DIR generate
      Only generate the stubs (for callers that reuse them across invocations).

Stubs for proto/csi.proto and proto/bpfman.proto are generated at run time with grpc_tools.protoc into --stubs (or a temp dir).
"""
import concurrent.futures
import json
import os
import sys
import tempfile

import grpc
import grpc_tools
from grpc_tools import protoc

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def generate(out):
    os.makedirs(out, exist_ok=True)
    if os.path.exists(os.path.join(out, "bpfman_pb2_grpc.py")):
        return
    # Generate into a private directory, then rename, so concurrent callers never see half-written stubs.
    work = tempfile.mkdtemp(prefix="gen-", dir=out)
    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    for proto in ("csi.proto", "bpfman.proto"):
        args = ["protoc", "-I", os.path.join(REPO, "proto"), "-I", include, "-I", "/usr/include",
                "--python_out=" + work, "--grpc_python_out=" + work, proto]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed for " + proto)
    for name in ("csi_pb2.py", "csi_pb2_grpc.py", "bpfman_pb2.py", "bpfman_pb2_grpc.py"):
        os.replace(os.path.join(work, name), os.path.join(out, name))
    os.rmdir(work)


def load_stubs(out):
    generate(out)
    sys.path.insert(0, out)
    import csi_pb2  # noqa: E402
    import csi_pb2_grpc  # noqa: E402
    return csi_pb2, csi_pb2_grpc


class Kubelet:
    def __init__(self, socket, pb2, grpc_mod):
        self.pb2 = pb2
        self.channel = grpc.insecure_channel("unix:" + socket)
        self.stubs = {
            "Identity": grpc_mod.IdentityStub(self.channel),
            "Node": grpc_mod.NodeStub(self.channel),
            "Controller": grpc_mod.ControllerStub(self.channel),
            "GroupController": grpc_mod.GroupControllerStub(self.channel),
        }

    def request_type(self, method):
        service, name = method.split("/")
        descriptor = self.pb2.DESCRIPTOR.services_by_name[service].methods_by_name[name]
        return getattr(self.pb2, descriptor.input_type.name)

    def call(self, method, request_json, timeout=20):
        from google.protobuf import json_format
        service, name = method.split("/")
        request = json_format.Parse(request_json, self.request_type(method)())
        try:
            reply = getattr(self.stubs[service], name)(request, timeout=timeout)
            return {"code": "OK", "message": "",
                    "response": json_format.MessageToDict(reply, preserving_proto_field_name=True)}
        except grpc.RpcError as error:
            return {"code": error.code().name, "message": error.details() or ""}


def publish_json(volume, target, program, maps, readonly=False, group="", mode=1, extra=None):
    request = {
        "volume_id": volume, "target_path": target, "readonly": readonly,
        "volume_capability": {"mount": {"volume_mount_group": group}, "access_mode": {"mode": mode}},
        "volume_context": {"csi.bpfman.io/program": program, "csi.bpfman.io/maps": maps,
                           "csi.storage.k8s.io/pod.name": "stand-in"},
    }
    for key, value in (extra or {}).items():
        request[key] = value
    return json.dumps(request)


def sanity(kubelet, program, maps, workdir):
    """The Identity and Node rules of the CSI spec, as csi-sanity checks them, with our plugin's answers."""
    checks = 0

    def expect(what, result, code, contains=""):
        nonlocal checks
        if result["code"] != code or contains not in result["message"]:
            raise SystemExit("FAIL %s: wanted %s %r, got %s %r" % (what, code, contains, result["code"],
                                                                    result["message"]))
        checks += 1
        print("ok %s: %s" % (what, result["code"]))
        return result

    def call(method, request):
        return kubelet.call(method, json.dumps(request) if isinstance(request, dict) else request)

    # Identity.
    info = expect("GetPluginInfo", call("Identity/GetPluginInfo", {}), "OK")["response"]
    if info.get("name") != "csi.bpfman.io" or not info.get("vendor_version"):
        raise SystemExit("FAIL GetPluginInfo: %r" % info)
    caps = expect("GetPluginCapabilities", call("Identity/GetPluginCapabilities", {}), "OK")["response"]
    if caps.get("capabilities"):
        raise SystemExit("FAIL GetPluginCapabilities lists %r" % caps)
    probe = expect("Probe", call("Identity/Probe", {}), "OK")["response"]
    if probe.get("ready") is not True:
        raise SystemExit("FAIL Probe: %r" % probe)

    # Node info and capabilities.
    node = expect("NodeGetInfo", call("Node/NodeGetInfo", {}), "OK")["response"]
    if not node.get("node_id") or "accessible_topology" in node:
        raise SystemExit("FAIL NodeGetInfo: %r" % node)
    caps = expect("NodeGetCapabilities", call("Node/NodeGetCapabilities", {}), "OK")["response"]
    kinds = [c.get("rpc", {}).get("type") for c in caps.get("capabilities", [])]
    if kinds != ["VOLUME_MOUNT_GROUP"]:
        raise SystemExit("FAIL NodeGetCapabilities: %r" % kinds)

    # Unimplemented RPCs.
    stage = {"volume_id": "v", "staging_target_path": workdir + "/stage",
             "volume_capability": {"mount": {}, "access_mode": {"mode": 1}}}
    expect("NodeStageVolume", call("Node/NodeStageVolume", stage), "UNIMPLEMENTED")
    expect("NodeUnstageVolume", call("Node/NodeUnstageVolume",
                                     {"volume_id": "v", "staging_target_path": workdir + "/stage"}), "UNIMPLEMENTED")
    expect("NodeGetVolumeStats", call("Node/NodeGetVolumeStats",
                                      {"volume_id": "v", "volume_path": workdir}), "UNIMPLEMENTED")
    expect("NodeExpandVolume", call("Node/NodeExpandVolume", {"volume_id": "v", "volume_path": workdir}),
           "UNIMPLEMENTED")
    expect("Controller/CreateVolume", call("Controller/CreateVolume", {"name": "v"}), "UNIMPLEMENTED")
    expect("Controller/ControllerGetCapabilities", call("Controller/ControllerGetCapabilities", {}),
           "UNIMPLEMENTED")
    expect("GroupController/GroupControllerGetCapabilities",
           call("GroupController/GroupControllerGetCapabilities", {}), "UNIMPLEMENTED")

    # NodePublishVolume required fields.
    target = workdir + "/pod/volumes/sanity"
    good = json.loads(publish_json("sanity-vol", target, program, maps))

    def without(*path):
        request = json.loads(json.dumps(good))
        node = request
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
        return request

    def with_value(value, *path):
        request = json.loads(json.dumps(good))
        node = request
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
        return request

    expect("publish without volume_id", call("Node/NodePublishVolume", without("volume_id")),
           "INVALID_ARGUMENT", "volume_id")
    expect("publish with volume_id a/b", call("Node/NodePublishVolume", with_value("a/b", "volume_id")),
           "INVALID_ARGUMENT", "volume_id")
    expect("publish with volume_id ..", call("Node/NodePublishVolume", with_value("..", "volume_id")),
           "INVALID_ARGUMENT", "volume_id")
    expect("publish without target_path", call("Node/NodePublishVolume", without("target_path")),
           "INVALID_ARGUMENT", "target_path")
    expect("publish with relative target_path",
           call("Node/NodePublishVolume", with_value("pod/volumes/x", "target_path")), "INVALID_ARGUMENT",
           "target_path")
    expect("publish with target_path /", call("Node/NodePublishVolume", with_value("/", "target_path")),
           "INVALID_ARGUMENT", "target_path")
    expect("publish without volume_capability", call("Node/NodePublishVolume", without("volume_capability")),
           "INVALID_ARGUMENT", "volume_capability")
    block = with_value({}, "volume_capability", "block")
    del block["volume_capability"]["mount"]
    expect("publish of a block volume", call("Node/NodePublishVolume", block), "INVALID_ARGUMENT",
           "volume_capability")
    expect("publish with fs_type", call("Node/NodePublishVolume",
                                        with_value("ext4", "volume_capability", "mount", "fs_type")),
           "INVALID_ARGUMENT", "fs_type")
    expect("publish with mount_flags", call("Node/NodePublishVolume",
                                            with_value(["noatime"], "volume_capability", "mount", "mount_flags")),
           "INVALID_ARGUMENT", "mount_flags")
    for mode in (0, 2, 3, 5):
        expect("publish with access mode %d" % mode,
               call("Node/NodePublishVolume", with_value(mode, "volume_capability", "access_mode", "mode")),
               "INVALID_ARGUMENT", "access_mode")
    expect("publish with a non-numeric mount group",
           call("Node/NodePublishVolume", with_value("wheel", "volume_capability", "mount", "volume_mount_group")),
           "INVALID_ARGUMENT", "volume_mount_group")
    expect("publish without volume_context", call("Node/NodePublishVolume", without("volume_context")),
           "INVALID_ARGUMENT", "csi.bpfman.io/program and at least one csi.bpfman.io/maps are required")
    expect("publish with only commas as maps",
           call("Node/NodePublishVolume", with_value(" , ,", "volume_context", "csi.bpfman.io/maps")),
           "INVALID_ARGUMENT", "csi.bpfman.io/maps")
    expect("publish with a map name containing /",
           call("Node/NodePublishVolume", with_value("a/b", "volume_context", "csi.bpfman.io/maps")),
           "INVALID_ARGUMENT", "a/b")
    if os.path.exists(target):
        raise SystemExit("FAIL invalid publishes created %s" % target)

    # NodeUnpublishVolume required fields.
    expect("unpublish without volume_id", call("Node/NodeUnpublishVolume", {"target_path": target}),
           "INVALID_ARGUMENT", "volume_id")
    expect("unpublish without target_path", call("Node/NodeUnpublishVolume", {"volume_id": "sanity-vol"}),
           "INVALID_ARGUMENT", "target_path")

    # Unknown program: NOT_FOUND and nothing mounted.
    expect("publish of an unknown program",
           call("Node/NodePublishVolume", with_value("no-such-program", "volume_context", "csi.bpfman.io/program")),
           "NOT_FOUND", 'program "no-such-program" not found')

    # Publish, idempotent repeat, incompatible repeat, unpublish twice.
    expect("publish", call("Node/NodePublishVolume", good), "OK")
    expect("publish again (idempotent)", call("Node/NodePublishVolume", good), "OK")
    expect("publish again read-only", call("Node/NodePublishVolume", with_value(True, "readonly")),
           "ALREADY_EXISTS", "already published")
    expect("publish again with one map",
           call("Node/NodePublishVolume", with_value(maps.split(",")[0], "volume_context", "csi.bpfman.io/maps")),
           "ALREADY_EXISTS", "already published")
    expect("unpublish", call("Node/NodeUnpublishVolume", {"volume_id": "sanity-vol", "target_path": target}), "OK")
    if os.path.exists(target):
        raise SystemExit("FAIL unpublish left %s" % target)
    expect("unpublish again (idempotent)",
           call("Node/NodeUnpublishVolume", {"volume_id": "sanity-vol", "target_path": target}), "OK")
    expect("unpublish of a volume never published",
           call("Node/NodeUnpublishVolume", {"volume_id": "never", "target_path": workdir + "/pod/never"}), "OK")
    print("PASS %d checks" % checks)


def main(argv):
    stubs = None
    if len(argv) >= 2 and argv[0] == "--stubs":
        stubs, argv = argv[1], argv[2:]
    if argv and argv[0] == "generate":
        generate(stubs or tempfile.mkdtemp(prefix="csi-stubs-"))
        return 0
    if len(argv) < 2:
        print(__doc__)
        return 2
    pb2, grpc_mod = load_stubs(stubs or tempfile.mkdtemp(prefix="csi-stubs-"))
    kubelet = Kubelet(argv[0], pb2, grpc_mod)
    command = argv[1]
    if command == "operator-load":
        import bpfman_pb2 as pb
        import bpfman_pb2_grpc as pbg
        obj, function, name, tracepoint = argv[2:6]
        client = pbg.BpfmanStub(grpc.insecure_channel("unix:" + argv[0]))
        if obj.startswith("image:"):
            bytecode = pb.BytecodeLocation(image=pb.BytecodeImage(url=obj[len("image:"):], image_pull_policy=1))
        else:
            bytecode = pb.BytecodeLocation(file=obj)
        loaded = client.Load(pb.LoadRequest(
            bytecode=bytecode, info=[pb.LoadInfo(name=function, program_type=pb.TRACEPOINT)],
            metadata={"bpfman.io/ProgramName": name}), timeout=60)
        program = loaded.programs[0].kernel_info.id
        client.Attach(pb.AttachRequest(id=program, attach=pb.AttachInfo(
            tracepoint_attach_info=pb.TracepointAttachInfo(tracepoint=tracepoint))), timeout=30)
        reply = {"id": program, "map_pin_path": loaded.programs[0].info.map_pin_path}
        if loaded.programs[0].info.bytecode.WhichOneof("location") == "image":
            image = loaded.programs[0].info.bytecode.image
            reply["image"] = {"url": image.url, "image_pull_policy": image.image_pull_policy}
        print(json.dumps(reply))
    elif command == "operator-unload":
        import bpfman_pb2 as pb
        import bpfman_pb2_grpc as pbg
        client = pbg.BpfmanStub(grpc.insecure_channel("unix:" + argv[0]))
        client.Unload(pb.UnloadRequest(id=int(argv[2])), timeout=30)
        print(json.dumps({"code": "OK"}))
    elif command == "health":
        from grpc_health.v1 import health_pb2, health_pb2_grpc
        stub = health_pb2_grpc.HealthStub(grpc.insecure_channel("unix:" + argv[0]))
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=argv[2]), timeout=10)
            print(json.dumps({"status": health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}))
        except grpc.RpcError as error:
            print(json.dumps({"code": error.code().name, "message": error.details() or ""}))
    elif command == "watch":
        from grpc_health.v1 import health_pb2, health_pb2_grpc
        stub = health_pb2_grpc.HealthStub(grpc.insecure_channel("unix:" + argv[0]))

        def say(line):
            print(line, flush=True)
            if len(argv) > 3:
                with open(argv[3], "a") as log:
                    log.write(line + "\n")
        try:
            for reply in stub.Watch(health_pb2.HealthCheckRequest(service=argv[2]), timeout=60):
                say(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
        except grpc.RpcError as error:
            say("ERROR " + error.code().name)
        say("END")
    elif command == "call":
        print(json.dumps(kubelet.call(argv[2], argv[3]), sort_keys=True))
    elif command == "concurrent":
        count = int(argv[2])
        with concurrent.futures.ThreadPoolExecutor(max_workers=count) as pool:
            results = list(pool.map(lambda _: kubelet.call(argv[3], argv[4]), range(count)))
        print(json.dumps({"codes": [r["code"] for r in results]}))
    elif command == "every":
        import time
        interval, count = float(argv[2]), int(argv[3])
        codes = []
        for _ in range(count):
            codes.append(kubelet.call(argv[4], argv[5])["code"])
            time.sleep(interval)
        print(json.dumps({"codes": codes}))
    elif command == "sanity":
        sanity(kubelet, argv[2], argv[3], argv[4])
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
