#!/usr/bin/env python3
"""grpcio (gRPC C-core) against a running `bpfman serve`, with stubs generated at run time from proto/.

Usage: daemon_client.py SOCKET SCENARIO [ARGS...]
Scenarios:
  agent-flow OBJECT FN TRACEPOINT   Load (agent metadata) -> Attach -> Get shows the link -> Detach -> Unload -> NotFound
  validation OBJECT                 SPEC section 3 statuses and messages seen by a real client
  health                            Check "" / bpfman.v1.Bpfman SERVING, unknown NOT_FOUND
  load OBJECT FN                    Load one tracepoint program, print "PROGRAM <id>"
  attach-tp ID TRACEPOINT           Attach, print "LINK <id>"
  get ID                            print "LINKS <ids>" of Get(id), or "NOTFOUND"
  list-managed                      print "MANAGED <ids>"
  writer-deadline OBJECT FN         many concurrent Loads with short deadlines: the ones still waiting for the
                                    writer lock get DEADLINE_EXCEEDED with SPEC's message; then unload all
  watch MARKER                      Health/Watch on "": print each status until the stream ends; the first
                                    one also creates the file MARKER
Prints PASS at the end of a successful scenario; any failed check exits 1 with a message.
"""
import os
import subprocess
import sys
import tempfile
import time

import grpc

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def stubs():
    out = tempfile.mkdtemp(prefix="bpfman-py-")
    subprocess.check_call([
        sys.executable, "-m", "grpc_tools.protoc", "-I", os.path.join(REPO, "proto"), "-I", "/usr/include",
        "--python_out", out, "--grpc_python_out", out, "bpfman.proto",
    ])
    sys.path.insert(0, out)
    import bpfman_pb2, bpfman_pb2_grpc  # noqa: E402
    return bpfman_pb2, bpfman_pb2_grpc


def check(cond, what):
    if not cond:
        print("FAIL: " + what)
        sys.exit(1)


def expect_error(fn, code, fragment):
    try:
        fn()
    except grpc.RpcError as e:
        check(e.code() == code, "expected %s, got %s: %s" % (code, e.code(), e.details()))
        check(fragment in e.details(), "expected %r in %r" % (fragment, e.details()))
        return e
    check(False, "expected %s %r, got success" % (code, fragment))


def main():
    sock, scenario, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    pb, pbg = stubs()
    channel = grpc.insecure_channel("unix:" + sock)
    grpc.channel_ready_future(channel).result(timeout=10)
    client = pbg.BpfmanStub(channel)

    def load(obj, fn, metadata=None):
        req = pb.LoadRequest(
            bytecode=pb.BytecodeLocation(file=obj),
            info=[pb.LoadInfo(name=fn, program_type=pb.TRACEPOINT)],
            metadata=metadata or {})
        return client.Load(req, timeout=30)

    def attach_tp(pid, tp, metadata=None):
        info = pb.AttachInfo(tracepoint_attach_info=pb.TracepointAttachInfo(tracepoint=tp, metadata=metadata or {}))
        return client.Attach(pb.AttachRequest(id=pid, attach=info), timeout=30)

    if scenario == "agent-flow":
        obj, fn, tp = args
        meta = {"bpfman.io/uuid": "3a2c6a1e-1b7f-4c55-9a53-2d3f2f7c9a10", "bpfman.io/ProgramName": "py-agent"}
        loaded = load(obj, fn, meta)
        check(len(loaded.programs) == 1, "one program loaded")
        p = loaded.programs[0]
        pid = p.kernel_info.id
        check(pid != 0, "kernel id set")
        check(p.info.name == fn, "name round-trips")
        check(dict(p.info.metadata) == meta, "metadata round-trips: %r" % dict(p.info.metadata))
        check(p.kernel_info.program_type == 5, "tracepoint reported as kernel type 5")
        check(p.info.map_pin_path.endswith("/fs/maps/%d" % pid), "map pin path %s" % p.info.map_pin_path)
        check(list(p.info.map_used_by) == [str(pid)], "map_used_by")
        check(not p.info.HasField("map_owner_id"), "no map owner")
        got = client.Get(pb.GetRequest(id=pid), timeout=10)
        check(dict(got.info.metadata) == meta and got.info.name == fn, "Get matches Load")
        check(list(got.info.links) == [], "no links yet")
        link = attach_tp(pid, tp, {"owner": "py"}).link_id
        check(link >= 1, "link id >= 1")
        got = client.Get(pb.GetRequest(id=pid), timeout=10)
        check(link in got.info.links, "link %d in info.links %r" % (link, list(got.info.links)))
        listed = client.List(pb.ListRequest(bpfman_programs_only=True, match_metadata={"bpfman.io/ProgramName": "py-agent"}))
        check([r.kernel_info.id for r in listed.results] == [pid], "List by agent metadata finds it")
        client.Detach(pb.DetachRequest(link_id=link), timeout=10)
        got = client.Get(pb.GetRequest(id=pid), timeout=10)
        check(link not in got.info.links, "link gone after Detach")
        expect_error(lambda: client.Detach(pb.DetachRequest(link_id=link)), grpc.StatusCode.NOT_FOUND,
                     "link %d does not exist" % link)
        client.Unload(pb.UnloadRequest(id=pid), timeout=10)
        expect_error(lambda: client.Get(pb.GetRequest(id=pid)), grpc.StatusCode.NOT_FOUND,
                     "program %d does not exist" % pid)
        expect_error(lambda: client.Unload(pb.UnloadRequest(id=pid)), grpc.StatusCode.NOT_FOUND,
                     "program %d does not exist" % pid)
    elif scenario == "validation":
        obj = args[0]
        C = grpc.StatusCode
        expect_error(lambda: client.Load(pb.LoadRequest(info=[pb.LoadInfo(name="x")])), C.INVALID_ARGUMENT,
                     "bytecode location is required")
        expect_error(lambda: client.Load(pb.LoadRequest(bytecode=pb.BytecodeLocation(file=obj))), C.INVALID_ARGUMENT,
                     "at least one program info is required")
        expect_error(lambda: client.Load(pb.LoadRequest(bytecode=pb.BytecodeLocation(file="rel.o"),
                                                        info=[pb.LoadInfo(name="x")])),
                     C.INVALID_ARGUMENT, 'bytecode file path must be absolute, got "rel.o"')
        expect_error(lambda: client.Load(pb.LoadRequest(bytecode=pb.BytecodeLocation(file=obj),
                                                        info=[pb.LoadInfo(name="nope", program_type=pb.TRACEPOINT)])),
                     C.INVALID_ARGUMENT, "program(s) not found in object file: [nope]")
        expect_error(lambda: client.Load(pb.LoadRequest(bytecode=pb.BytecodeLocation(file=obj),
                                                        info=[pb.LoadInfo(name="x", program_type=99)])),
                     C.INVALID_ARGUMENT, "invalid program type for x: unknown program type: 99")
        expect_error(lambda: client.Load(pb.LoadRequest(bytecode=pb.BytecodeLocation(file=obj), map_owner_id=429496729,
                                                        info=[pb.LoadInfo(name="x", program_type=pb.TRACEPOINT)])),
                     C.INVALID_ARGUMENT, "map_owner_id 429496729 does not exist")
        expect_error(lambda: client.Attach(pb.AttachRequest(id=0)), C.INVALID_ARGUMENT, "program id is required")
        expect_error(lambda: client.Attach(pb.AttachRequest(id=4000000000)), C.INVALID_ARGUMENT,
                     "attach info is required")
        expect_error(lambda: attach_tp(4000000000, "syscalls/sys_enter_getpid"), C.NOT_FOUND,
                     "program 4000000000 does not exist")
        expect_error(lambda: client.Detach(pb.DetachRequest(link_id=0)), C.INVALID_ARGUMENT, "link id is required")
        expect_error(lambda: client.Detach(pb.DetachRequest(link_id=4000000)), C.NOT_FOUND, "link 4000000 does not exist")
        expect_error(lambda: client.Get(pb.GetRequest(id=0)), C.INVALID_ARGUMENT, "program id is required")
        expect_error(lambda: client.Unload(pb.UnloadRequest(id=0)), C.INVALID_ARGUMENT, "program id is required")
        expect_error(lambda: client.PullBytecode(pb.PullBytecodeRequest()), C.INVALID_ARGUMENT, "image is required")
        expect_error(lambda: client.PullBytecode(pb.PullBytecodeRequest(image=pb.BytecodeImage(url="quay.io/x"))),
                     C.UNIMPLEMENTED, "PullBytecode is not implemented")
        # Kind mismatch after a real load.
        fn = args[1]
        pid = load(obj, fn).programs[0].kernel_info.id
        info = pb.AttachInfo(uprobe_attach_info=pb.UprobeAttachInfo(target="/bin/true", fn_name="main"))
        expect_error(lambda: client.Attach(pb.AttachRequest(id=pid, attach=info)), C.FAILED_PRECONDITION,
                     "program %d is a tracepoint program; the uprobe attach accepts uprobe or uretprobe" % pid)
        expect_error(lambda: attach_tp(pid, "sched_switch"), C.INVALID_ARGUMENT, "expected group/name")
        expect_error(lambda: attach_tp(pid, "nosuch/thing"), C.NOT_FOUND, 'tracepoint "nosuch/thing" not found')
        check(list(client.Get(pb.GetRequest(id=pid)).info.links) == [], "no link recorded by failed attaches")
        client.Unload(pb.UnloadRequest(id=pid))
    elif scenario == "health":
        from grpc_health.v1 import health_pb2, health_pb2_grpc
        h = health_pb2_grpc.HealthStub(channel)
        for name in ["", "bpfman.v1.Bpfman", "bpfman.ext.v1.Inspect"]:
            check(h.Check(health_pb2.HealthCheckRequest(service=name)).status == health_pb2.HealthCheckResponse.SERVING,
                  "%r SERVING" % name)
        expect_error(lambda: h.Check(health_pb2.HealthCheckRequest(service="nope")), grpc.StatusCode.NOT_FOUND,
                     "unknown service nope")
    elif scenario == "writer-deadline":
        import collections
        import threading
        obj, fn = args

        def attempt(callers, deadline):
            outcomes = []
            lock = threading.Lock()

            def one():
                req = pb.LoadRequest(bytecode=pb.BytecodeLocation(file=obj),
                                     info=[pb.LoadInfo(name=fn, program_type=pb.TRACEPOINT)],
                                     metadata={"deadline": "test"})
                try:
                    client.Load(req, timeout=deadline)
                    result = ("OK", "")
                except grpc.RpcError as e:
                    result = (e.code().name, e.details())
                with lock:
                    outcomes.append(result)

            threads = [threading.Thread(target=one) for _ in range(callers)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            print("callers=%d deadline=%.3f: %r" % (callers, deadline, collections.Counter(outcomes)), flush=True)
            check(all(code in ("OK", "DEADLINE_EXCEEDED") for code, _ in outcomes), "only OK or DEADLINE_EXCEEDED")
            return outcomes

        # More callers and shorter deadlines until some wait in the lock queue past their deadline (how long a
        # Load takes depends on the machine's load).
        seen = False
        for callers, deadline in [(40, 0.4), (80, 0.2), (120, 0.1), (160, 0.05)]:
            outcomes = attempt(callers, deadline)
            if any(msg == "timed out waiting for the bpfman writer lock" for _, msg in outcomes):
                seen = True
                break
        check(seen, "some caller timed out waiting for the writer lock with SPEC's message")
        # Loads that had the lock finish even though their caller gave up; clean them up.
        time.sleep(1)
        for r in client.List(pb.ListRequest(bpfman_programs_only=True, match_metadata={"deadline": "test"})).results:
            client.Unload(pb.UnloadRequest(id=r.kernel_info.id))
        left = client.List(pb.ListRequest(bpfman_programs_only=True)).results
        check(len(left) == 0, "programs left: %r" % [r.kernel_info.id for r in left])
    elif scenario == "watch":
        from grpc_health.v1 import health_pb2, health_pb2_grpc
        h = health_pb2_grpc.HealthStub(channel)
        for reply in h.Watch(health_pb2.HealthCheckRequest(service="")):
            print("STATUS " + health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status), flush=True)
            if not os.path.exists(args[0]):
                open(args[0], "w").close()
    elif scenario == "load":
        print("PROGRAM %d" % load(args[0], args[1]).programs[0].kernel_info.id)
    elif scenario == "attach-tp":
        print("LINK %d" % attach_tp(int(args[0]), args[1]).link_id)
    elif scenario == "get":
        try:
            got = client.Get(pb.GetRequest(id=int(args[0])))
            print("LINKS " + ",".join(str(l) for l in got.info.links))
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.NOT_FOUND, "Get: %s" % e)
            print("NOTFOUND")
    elif scenario == "list-managed":
        got = client.List(pb.ListRequest(bpfman_programs_only=True))
        print("MANAGED " + ",".join(str(r.kernel_info.id) for r in got.results))
    else:
        check(False, "unknown scenario " + scenario)
    print("PASS")


if __name__ == "__main__":
    main()
