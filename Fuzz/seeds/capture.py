#!/usr/bin/env python3
"""Makes the fuzz targets' seed inputs from real client traffic (Fuzz/README.md, "Seeds").

Usage: capture.py OUTDIR [GO_AGENT_BINARY]

Starts a grpcio server that answers every method (empty replies) on a Unix socket and a relay in front of it that
records every byte each client connection sends. Through the relay it drives grpcio (the daemon's and the CSI
kubelet's requests, health, reflection), grpcurl, and, when given, the grpc-go agent of Interop/daemon/go. Writes:
  OUTDIR/h2/<client>-<n>      one connection's client bytes, behind the fuzz-h2 flags byte (whole-frame reads)
  OUTDIR/proto/<type>-<n>     each request message, behind fuzz-proto's two type-index bytes
  OUTDIR/json/<type>-<n>      the same messages in proto3 JSON, for fuzz-json
  OUTDIR/csi/<n>              NodePublish/NodeUnpublish requests behind fuzz-csi's flags byte
The type index is read from `fuzz-proto` itself (FUZZ_LIST_TYPES=1), so seeds and target always agree.
"""
import concurrent.futures
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

import grpc
from google.protobuf import json_format

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.abspath(sys.argv[1])
GO_AGENT = sys.argv[2] if len(sys.argv) > 2 else None
WORK = tempfile.mkdtemp(prefix="bpfman-fuzz-capture-")
SERVER = os.path.join(WORK, "server.sock")
RELAY = os.path.join(WORK, "relay.sock")


def stubs():
    out = os.path.join(WORK, "stubs")
    os.makedirs(out)
    subprocess.check_call([
        sys.executable, "-m", "grpc_tools.protoc", "-I", os.path.join(REPO, "proto"), "-I", "/usr/include",
        "--python_out", out, "--grpc_python_out", out, "bpfman.proto", "csi.proto",
    ])
    sys.path.insert(0, out)


# --- the server: every method answers an empty message ---------------------------------------------------------

class AnyMethod(grpc.GenericRpcHandler):
    def service(self, details):
        method = details.method
        if method.endswith("/Watch"):
            return grpc.unary_stream_rpc_method_handler(lambda request, context: iter([b""]))
        if method.endswith("/ServerReflectionInfo"):
            return grpc.stream_stream_rpc_method_handler(lambda requests, context: (b"" for _ in requests))
        return grpc.unary_unary_rpc_method_handler(lambda request, context: b"")


# --- the relay: records what each client connection sends -------------------------------------------------------

captures = []
capture_lock = threading.Lock()
client_name = ["none"]


def pump(source, sink, record):
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            if record is not None:
                record.append(data)
            sink.sendall(data)
    except OSError:
        pass
    finally:
        try:
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def relay():
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(RELAY)
    listener.listen(64)
    while True:
        client, _ = listener.accept()
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        upstream.connect(SERVER)
        record = []
        with capture_lock:
            captures.append((client_name[0], record))
        threading.Thread(target=pump, args=(client, upstream, record), daemon=True).start()
        threading.Thread(target=pump, args=(upstream, client, None), daemon=True).start()


# --- the clients ------------------------------------------------------------------------------------------------

messages = []  # (full type name, message)


def grpcio_daemon_calls():
    import bpfman_pb2 as pb
    import bpfman_pb2_grpc as pbg
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    location = pb.BytecodeLocation(file="/usr/lib/bpfman/kprobe.bpf.o")
    image = pb.BytecodeLocation(image=pb.BytecodeImage(
        url="quay.io/bpfman-bytecode/xdp_pass:latest", image_pull_policy=1, username="user", password="secret"))
    requests = [
        ("Load", pb.LoadRequest(
            bytecode=location, info=[pb.LoadInfo(name="kprobe_counter", program_type=pb.KPROBE),
                                     pb.LoadInfo(name="fentry_counter", program_type=pb.FENTRY, info=pb.ProgSpecificInfo(
                                         fentry_load_info=pb.FentryLoadInfo(fn_name="do_unlinkat")))],
            metadata={"bpfman.io/ProgramName": "kprobe-counter", "bpfman.io/uuid": "8f0c2a4e-6d1b-4e8a-9c3f"},
            global_data={"GLOBAL_u8": b"\x01", "GLOBAL_u32": b"\x0d\x0c\x0b\x0a"},
            uuid="8f0c2a4e-6d1b-4e8a-9c3f-5b7d9e1a2c4f", map_owner_id=7)),
        ("Load", pb.LoadRequest(bytecode=image, info=[pb.LoadInfo(name="pass", program_type=pb.XDP)])),
        ("Attach", pb.AttachRequest(id=42, attach=pb.AttachInfo(xdp_attach_info=pb.XDPAttachInfo(
            priority=50, iface="eth0", position=1, proceed_on=[2, 31], netns="/var/run/netns/test",
            metadata={"app": "pass"})))),
        ("Attach", pb.AttachRequest(id=43, attach=pb.AttachInfo(tc_attach_info=pb.TCAttachInfo(
            priority=1000, iface="veth0", direction="ingress", proceed_on=[0, 3, 30])))),
        ("Attach", pb.AttachRequest(id=44, attach=pb.AttachInfo(
            tracepoint_attach_info=pb.TracepointAttachInfo(tracepoint="syscalls/sys_enter_openat")))),
        ("Attach", pb.AttachRequest(id=45, attach=pb.AttachInfo(uprobe_attach_info=pb.UprobeAttachInfo(
            fn_name="malloc", offset=16, target="libc", pid=1234, container_pid=77, metadata={"k": "v"})))),
        ("Attach", pb.AttachRequest(id=46, attach=pb.AttachInfo(
            kprobe_attach_info=pb.KprobeAttachInfo(fn_name="try_to_wake_up", offset=0)))),
        ("Detach", pb.DetachRequest(link_id=1001)),
        ("Unload", pb.UnloadRequest(id=42)),
        ("List", pb.ListRequest(program_type=0, bpfman_programs_only=True,
                                match_metadata={"bpfman.io/ProgramName": "pass"})),
        ("Get", pb.GetRequest(id=42)),
        ("PullBytecode", pb.PullBytecodeRequest(image=pb.BytecodeImage(
            url="localhost:5000/bytecode/tracepoint@sha256:" + "ab" * 32, image_pull_policy=0))),
    ]
    with grpc.insecure_channel("unix://" + RELAY) as channel:
        stub = pbg.BpfmanStub(channel)
        for method, request in requests:
            messages.append((request.DESCRIPTOR.full_name, request))
            getattr(stub, method)(request, timeout=10, metadata=[("client", "fuzz-seed")])
        health = health_pb2_grpc.HealthStub(channel)
        check = health_pb2.HealthCheckRequest(service="bpfman.v1.Bpfman")
        messages.append((check.DESCRIPTOR.full_name, check))
        health.Check(check, timeout=10)
        list(health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=10))


def grpcio_reflection_calls():
    from grpc_reflection.v1alpha import reflection_pb2 as rpb
    from grpc_reflection.v1alpha import reflection_pb2_grpc as rpbg
    requests = [rpb.ServerReflectionRequest(list_services=""),
                rpb.ServerReflectionRequest(file_containing_symbol="bpfman.v1.Bpfman"),
                rpb.ServerReflectionRequest(file_by_filename="bpfman.proto")]
    for request in requests:
        messages.append((request.DESCRIPTOR.full_name, request))
    with grpc.insecure_channel("unix://" + RELAY) as channel:
        list(rpbg.ServerReflectionStub(channel).ServerReflectionInfo(iter(requests), timeout=10))


csi_requests = []  # (flags, message)


def grpcio_csi_calls():
    import csi_pb2 as csi
    import csi_pb2_grpc as csig
    capability = csi.VolumeCapability(
        mount=csi.VolumeCapability.MountVolume(volume_mount_group="2000"),
        access_mode=csi.VolumeCapability.AccessMode(mode=csi.VolumeCapability.AccessMode.SINGLE_NODE_WRITER))
    publish = csi.NodePublishVolumeRequest(
        volume_id="csi-4b6f1c2e9a", target_path="/var/lib/kubelet/pods/0d1e/volumes/kubernetes.io~csi/maps/mount",
        volume_capability=capability, readonly=True,
        volume_context={"csi.bpfman.io/program": "kprobe-counter", "csi.bpfman.io/maps": "counts, events",
                        "csi.storage.k8s.io/pod.name": "app-0", "csi.storage.k8s.io/ephemeral": "true"})
    unpublish = csi.NodeUnpublishVolumeRequest(
        volume_id="csi-4b6f1c2e9a", target_path="/var/lib/kubelet/pods/0d1e/volumes/kubernetes.io~csi/maps/mount")
    csi_requests.extend([(0, publish), (1, publish), (2, unpublish), (3, unpublish)])
    with grpc.insecure_channel("unix://" + RELAY) as channel:
        node = csig.NodeStub(channel)
        for request in (publish, unpublish):
            messages.append((request.DESCRIPTOR.full_name, request))
        node.NodePublishVolume(publish, timeout=10)
        node.NodeUnpublishVolume(unpublish, timeout=10)
        node.NodeGetCapabilities(csi.NodeGetCapabilitiesRequest(), timeout=10)
        csig.IdentityStub(channel).GetPluginInfo(csi.GetPluginInfoRequest(), timeout=10)


def grpcurl_calls():
    grpcurl = shutil.which("grpcurl") or os.path.join(REPO, ".venv", "bin", "grpcurl")
    calls = [
        ("bpfman.v1.Bpfman/List", '{"program_type": 6, "match_metadata": {"bpfman.io/ProgramName": "pass"}}'),
        ("bpfman.v1.Bpfman/Get", '{"id": 7}'),
        ("bpfman.v1.Bpfman/Unload", '{"id": 7}'),
    ]
    for method, body in calls:
        subprocess.run([grpcurl, "-plaintext", "-unix", "-import-path", os.path.join(REPO, "proto"),
                        "-proto", "bpfman.proto", "-d", body, RELAY, method],
                       check=False, capture_output=True, timeout=30)


def go_calls():
    if GO_AGENT:
        subprocess.run([GO_AGENT, RELAY, "/usr/lib/bpfman/tracepoint.bpf.o", "tracepoint", "enter_openat",
                        "syscalls/sys_enter_openat"], check=False, capture_output=True, timeout=60)


def write(directory, name, data):
    os.makedirs(os.path.join(OUT, directory), exist_ok=True)
    with open(os.path.join(OUT, directory, name), "wb") as f:
        f.write(data)


def main():
    stubs()
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((AnyMethod(),))
    server.add_insecure_port("unix://" + SERVER)
    server.start()
    threading.Thread(target=relay, daemon=True).start()
    while not os.path.exists(RELAY):
        time.sleep(0.01)
    for name, run in (("grpcio", grpcio_daemon_calls), ("grpcio-reflection", grpcio_reflection_calls),
                      ("grpcio-csi", grpcio_csi_calls), ("grpcurl", grpcurl_calls), ("grpc-go", go_calls)):
        client_name[0] = name
        run()
        time.sleep(0.2)
    time.sleep(0.5)
    server.stop(0)

    types = subprocess.run([os.path.join(REPO, ".build-fuzz", "release", "fuzz-proto")],
                           env=dict(os.environ, FUZZ_LIST_TYPES="1"), capture_output=True, text=True).stdout.split()
    index = {name: i for i, name in enumerate(types)}
    counts = {}
    for client, record in captures:
        data = b"".join(record)
        if data:
            counts[client] = counts.get(client, 0) + 1
            write("h2", "%s-%d" % (client, counts[client]), bytes([0x0c]) + data)
    for n, (name, message) in enumerate(messages):
        prefix = index[name].to_bytes(2, "big")
        write("proto", "%s-%d" % (name, n), prefix + message.SerializeToString())
        write("json", "%s-%d" % (name, n), prefix + json_format.MessageToJson(message).encode())
    for n, (flags, message) in enumerate(csi_requests):
        write("csi", "kubelet-%d" % n, bytes([flags]) + message.SerializeToString())
    print("captured %d connections, %d messages" % (len([c for c in captures if c[1]]), len(messages)))
    shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
