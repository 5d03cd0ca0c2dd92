"""grpcio (C-core) client for the H2Transport interop tests.

Usage: python echo_client.py SOCKET_PATH SCENARIO
Generates the stubs for echo.proto into a temp dir, runs one scenario against unix:SOCKET_PATH,
prints one line per check and exits non-zero (with the reason) on the first failure.
"""
import concurrent.futures
import os
import sys
import tempfile
import threading
import time

import grpc
from grpc_tools import protoc

HERE = os.path.dirname(os.path.abspath(__file__))


def load_stubs():
    out = tempfile.mkdtemp(prefix="h2py-")
    rc = protoc.main(["protoc", f"-I{HERE}", f"--python_out={out}", f"--grpc_python_out={out}", "echo.proto"])
    if rc != 0:
        sys.exit(f"protoc failed: {rc}")
    sys.path.insert(0, out)
    import echo_pb2
    import echo_pb2_grpc
    return echo_pb2, echo_pb2_grpc


pb, pb_grpc = load_stubs()


def expect(cond, what):
    if not cond:
        print(f"FAIL {what}", flush=True)
        sys.exit(1)
    print(f"ok {what}", flush=True)


def expect_code(fn, code, what, message=None):
    try:
        fn()
    except grpc.RpcError as e:
        expect(e.code() == code, f"{what}: code {e.code()} == {code}")
        if message is not None:
            expect(e.details() == message, f"{what}: details {e.details()!r} == {message!r}")
        return e
    expect(False, f"{what}: expected {code}, call succeeded")


def channel(path, **options):
    opts = [("grpc.max_receive_message_length", 8 * 1024 * 1024),
            ("grpc.max_send_message_length", 8 * 1024 * 1024)]
    return grpc.insecure_channel(f"unix:{path}", options=opts)


def scenario_unary(path):
    with channel(path) as ch:
        stub = pb_grpc.EchoStub(ch)
        reply = stub.Unary(pb.EchoRequest(text="hello", payload=b"\x00\x01\x02"), timeout=10)
        expect(reply.text == "hello" and reply.payload == b"\x00\x01\x02", "unary echo")
        reply = stub.Unary(pb.EchoRequest(), timeout=10)
        expect(reply.text == "" and reply.payload == b"", "unary empty message")
        reply = stub.Unary(pb.EchoRequest(text="héllo ✓ 100%"), timeout=10)
        expect(reply.text == "héllo ✓ 100%", "unary utf-8")


def scenario_status(path):
    with channel(path) as ch:
        stub = pb_grpc.EchoStub(ch)
        for code in grpc.StatusCode:
            if code == grpc.StatusCode.OK:
                continue
            number = code.value[0]
            msg = f"failed with {number}: 100% ünïcode\nnewline"
            expect_code(lambda: stub.Unary(pb.EchoRequest(text=msg, status=number), timeout=10), code,
                        f"status {code.name}", msg)
        # Unknown method and service (SPEC §1.4 messages).
        unknown_method = ch.unary_unary("/h2test.v1.Echo/Nope")
        expect_code(lambda: unknown_method(b"", timeout=10), grpc.StatusCode.UNIMPLEMENTED,
                    "unknown method", "unknown method Nope for service h2test.v1.Echo")
        unknown_service = ch.unary_unary("/h2test.v1.Nothing/Unary")
        expect_code(lambda: unknown_service(b"", timeout=10), grpc.StatusCode.UNIMPLEMENTED,
                    "unknown service", "unknown service h2test.v1.Nothing")
        # Compressed request: identity only.
        e = expect_code(lambda: stub.Unary(pb.EchoRequest(text="x" * 1000), timeout=10,
                                           compression=grpc.Compression.Gzip),
                        grpc.StatusCode.UNIMPLEMENTED, "gzip request")
        # Server streaming: error after messages arrives in trailers.
        got = []
        def stream_then_fail():
            for r in stub.ServerStream(pb.EchoRequest(text="s", count=3, status=9), timeout=10):
                got.append(r.index)
        expect_code(stream_then_fail, grpc.StatusCode.FAILED_PRECONDITION, "stream then status", "s")
        expect(got == [0, 1, 2], f"messages before the error status: {got}")


def scenario_deadline(path):
    with channel(path) as ch:
        stub = pb_grpc.EchoStub(ch)
        start = time.monotonic()
        expect_code(lambda: stub.Unary(pb.EchoRequest(text="slow", sleep_ms=5000), timeout=0.3),
                    grpc.StatusCode.DEADLINE_EXCEEDED, "deadline")
        expect(time.monotonic() - start < 2.0, "deadline honoured promptly")
        reply = stub.Unary(pb.EchoRequest(text="after"), timeout=10)
        expect(reply.text == "after", "channel still usable after a deadline")


def scenario_cancel(path):
    tag = sys.argv[3] if len(sys.argv) > 3 else "cancel-me"
    with channel(path) as ch:
        stub = pb_grpc.EchoStub(ch)
        future = stub.Unary.future(pb.EchoRequest(text=tag, sleep_ms=10000), timeout=30)
        time.sleep(0.3)
        expect(future.cancel(), "client cancelled the call")
        expect(future.cancelled(), "future reports cancelled")
        # A streaming call cancelled mid-way.
        it = stub.ServerStream(pb.EchoRequest(text=tag + "-stream", count=1000, sleep_ms=20), timeout=30)
        first = next(it)
        expect(first.index == 0, "first streamed message before cancelling")
        it.cancel()
        time.sleep(0.3)
        reply = stub.Unary(pb.EchoRequest(text="after"), timeout=10)
        expect(reply.text == "after", "channel still usable after cancellation")


def scenario_concurrency(path):
    with channel(path) as ch:
        stub = pb_grpc.EchoStub(ch)
        futures = [stub.Unary.future(pb.EchoRequest(text=f"c{i}", sleep_ms=100), timeout=20) for i in range(100)]
        texts = [f.result().text for f in futures]
        expect(texts == [f"c{i}" for i in range(100)], "100 concurrent calls on one connection")
    channels = [channel(path, ) for _ in range(20)]
    # grpcio shares subchannels between identical channels; a distinct option forces 20 connections.
    for c in channels:
        c.close()
    channels = [grpc.insecure_channel(f"unix:{path}", options=[("grpc.use_local_subchannel_pool", 1),
                                                                  ("h2test.channel", i)]) for i in range(20)]
    try:
        with concurrent.futures.ThreadPoolExecutor(20) as pool:
            results = list(pool.map(
                lambda ic: pb_grpc.EchoStub(ic[1]).Unary(pb.EchoRequest(text=f"conn{ic[0]}"), timeout=20).text,
                enumerate(channels)))
        expect(results == [f"conn{i}" for i in range(20)], "20 connections")
    finally:
        for c in channels:
            c.close()


def scenario_large(path):
    with channel(path) as ch:
        stub = pb_grpc.EchoStub(ch)
        payload = bytes((i * 7) & 0xFF for i in range(3 * 1024 * 1024))
        reply = stub.Unary(pb.EchoRequest(text="big", payload=payload), timeout=30)
        expect(reply.payload == payload, "3 MiB message round trip")
        too_big = b"x" * (5 * 1024 * 1024)
        expect_code(lambda: stub.Unary(pb.EchoRequest(payload=too_big), timeout=30),
                    grpc.StatusCode.RESOURCE_EXHAUSTED, "5 MiB request over the 4 MiB limit")
        reply = stub.Unary(pb.EchoRequest(text="after"), timeout=10)
        expect(reply.text == "after", "channel still usable after an oversized message")


def scenario_streaming(path):
    with channel(path) as ch:
        stub = pb_grpc.EchoStub(ch)
        replies = list(stub.ServerStream(pb.EchoRequest(text="s", count=50), timeout=10))
        expect([r.index for r in replies] == list(range(50)), "server streaming 50 messages")
        replies = list(stub.ServerStream(pb.EchoRequest(text="none", count=0), timeout=10))
        expect(replies == [], "server streaming with no messages")
        reply = stub.ClientStream(iter([pb.EchoRequest(text=str(i)) for i in range(20)]), timeout=10)
        expect(reply.text == ",".join(str(i) for i in range(20)) and reply.index == 20, "client streaming 20 messages")
        chunk = b"z" * (256 * 1024)
        reply = stub.ClientStream(iter([pb.EchoRequest(text="", payload=chunk) for _ in range(24)]), timeout=30)
        expect(reply.index == 24 and len(reply.payload) == 24 * len(chunk), "client streaming 6 MiB")
        reply = stub.ClientStream(iter([]), timeout=10)
        expect(reply.index == 0, "client streaming with no messages")
        # Bidi: each reply arrives before the next request is sent (true interleaving).
        import queue
        q = queue.Queue()
        def requests():
            for i in range(10):
                yield pb.EchoRequest(text=f"b{i}")
                got = q.get(timeout=5)
                if got != f"b{i}":
                    return
        responses = stub.Bidi(requests(), timeout=10)
        seen = []
        for r in responses:
            seen.append(r.text)
            q.put(r.text)
        expect(seen == [f"b{i}" for i in range(10)], "bidi ping-pong 10 messages")
        big = bytes(range(256)) * 4096  # 1 MiB per message, slow reader below
        replies = stub.ServerStream(pb.EchoRequest(text="big", count=8, payload=big), timeout=30)
        total = 0
        for r in replies:
            time.sleep(0.05)
            total += len(r.payload)
        expect(total == 8 * len(big), "server streaming 8 x 1 MiB to a slow reader")


SCENARIOS = {name[len("scenario_"):]: fn for name, fn in globals().items() if name.startswith("scenario_")}

if __name__ == "__main__":
    SCENARIOS[sys.argv[2]](sys.argv[1])
    print("PASS", flush=True)
