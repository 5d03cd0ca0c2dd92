#!/usr/bin/env python3
"""`bpfman serve` as a process under hostile load (issue 20; README "Fuzzing", load test).

Usage: load_test.py BPFMAN [--idle N] [--garbage N] [--frames N] [--callers N] [--seconds S]

Starts the daemon on a private runtime directory with systemd's default soft descriptor limit (1024: what
`bpfman.service` gets), then, phase after phase, with the daemon's RSS and open descriptors read
from /proc after each:
  idle      N connections held open at once: half never send a byte, half send the preface and SETTINGS and wait
  garbage   N connections that send random bytes (some after a valid preface) and hang up
  frames    N connections that send random well-formed HTTP/2 frames mixed with real gRPC requests
  oversized a 5 MiB request message (grpcio: RESOURCE_EXHAUSTED), a message prefix announcing 4 GiB, a header
            list of 1 MiB in CONTINUATION frames, a DATA frame over the frame size limit
  callers   N grpcio callers, each on its own channel, calling Get/List/health for S seconds
All phases run twice. After each phase a health Check must answer SERVING, and every caller call must end OK or
NOT_FOUND. At the end no descriptor may be left open but the SQLite read pool's, and the second round must leave
the RSS where the first left it (within 2 MiB). Then a second daemon, with a hard limit of 256 descriptors, is sent
400 connections at once: those over the limit must be hung up at once, the daemon must not spin, and it must answer
once they are gone. Prints one line per phase and PASS, or FAIL and exits 1.
"""
import argparse
import os
import random
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

import grpc

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(kind, flags, stream, payload):
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def hpack_literal(headers):
    """A header block of literals without indexing and without Huffman coding (RFC 7541 §6.2.2)."""
    out = b""
    for name, value in headers:
        name, value = name.encode(), value.encode()
        assert len(name) < 127 and len(value) < 127
        out += b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value
    return out


def grpc_request(stream, path, message):
    headers = hpack_literal([(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "localhost"),
                             ("content-type", "application/grpc"), ("te", "trailers")])
    body = b"\x00" + len(message).to_bytes(4, "big") + message
    return frame(1, 0x4, stream, headers) + frame(0, 0x1, stream, body)


def random_frame(rng):
    kind = rng.choice([0, 1, 2, 3, 4, 6, 7, 8, 9, 0x20])
    stream = rng.choice([0, 1, 3, 5, rng.randrange(1, 1 << 31)])
    if kind == 2:
        payload = rng.randbytes(5)
    elif kind in (3, 8):
        payload = rng.randbytes(4)
    elif kind == 4:
        payload = b"".join(rng.choice([1, 2, 3, 4, 5, 6]).to_bytes(2, "big") + rng.randbytes(4)
                           for _ in range(rng.randrange(4)))
        stream = 0
    elif kind == 6:
        payload, stream = rng.randbytes(8), 0
    elif kind == 7:
        payload, stream = (rng.randrange(1 << 31)).to_bytes(4, "big") + rng.randbytes(4 + rng.randrange(8)), 0
    else:
        payload = rng.randbytes(rng.randrange(64))
    return frame(kind, rng.randrange(256), stream, payload)


class Daemon:
    def __init__(self, binary, hard_limit=None):
        self.work = tempfile.mkdtemp(prefix="bpfman-load-")
        self.socket = os.path.join(self.work, "s.sock")
        with open(os.path.join(self.work, "bpfman.toml"), "w") as f:
            f.write('[logging]\nlevel = "info"\n')
        self.log = open(os.path.join(self.work, "daemon.log"), "wb")

        def limits():
            # systemd's default soft limit; the hard one as this session has it (systemd's is 524288)
            hard = hard_limit or resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))

        self.process = subprocess.Popen(
            [binary, "serve", "--runtime-dir", os.path.join(self.work, "rd"), "--socket-path", self.socket,
             "--config", os.path.join(self.work, "bpfman.toml"), "--image-cache-dir", os.path.join(self.work, "c")],
            stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL, preexec_fn=limits)
        deadline = time.time() + 30
        while not self.connectable():
            if self.process.poll() is not None or time.time() > deadline:
                raise SystemExit("FAIL: the daemon did not start: " + self.log_tail())
            time.sleep(0.05)

    def connectable(self):
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.connect(self.socket)
            return True
        except OSError:
            return False

    def log_tail(self):
        self.log.flush()
        with open(os.path.join(self.work, "daemon.log"), "rb") as f:
            return f.read()[-2000:].decode(errors="replace")

    def rss_kib(self):
        with open("/proc/%d/status" % self.process.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def fds(self):
        return len(os.listdir("/proc/%d/fd" % self.process.pid))

    def fd_targets(self):
        targets = []
        for fd in os.listdir("/proc/%d/fd" % self.process.pid):
            try:
                targets.append(os.readlink("/proc/%d/fd/%s" % (self.process.pid, fd)).split(":")[0])
            except OSError:
                pass
        return sorted(targets)

    def cpu_seconds(self):
        with open("/proc/%d/stat" % self.process.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def threads(self):
        return len(os.listdir("/proc/%d/task" % self.process.pid))

    def alive(self):
        return self.process.poll() is None

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        subprocess.run(["umount", "-l", os.path.join(self.work, "rd", "fs")], capture_output=True)
        shutil.rmtree(self.work, ignore_errors=True)


def stubs():
    out = tempfile.mkdtemp(prefix="bpfman-load-stubs-")
    subprocess.check_call([sys.executable, "-m", "grpc_tools.protoc", "-I", os.path.join(REPO, "proto"),
                           "-I", "/usr/include", "--python_out", out, "--grpc_python_out", out, "bpfman.proto"])
    sys.path.insert(0, out)


def connect(path, patience=5.0):
    """A connected socket; waits while the listen backlog is full (EAGAIN), as a blocking client would."""
    deadline = time.time() + patience
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        try:
            s.connect(path)
            return s
        except BlockingIOError:
            s.close()
            if time.time() > deadline:
                raise
            time.sleep(0.002)
        except OSError:
            s.close()
            raise


def drain(s, seconds=0.2):
    """Reads what the server sends until it hangs up or is quiet for `seconds`; returns the byte count."""
    s.settimeout(seconds)
    total = 0
    try:
        while True:
            data = s.recv(65536)
            if not data:
                break
            total += len(data)
    except OSError:
        pass
    return total


failures = []


def exhaustion(binary, health_stub, connections=400, hard=256):
    """A daemon whose hard descriptor limit is `hard`, sent `connections` connections at once: the ones it has no
    descriptor for are hung up at once (not left waiting), the daemon does not spin, and answers once they go."""
    daemon = Daemon(binary, hard_limit=hard)
    try:
        held = []
        for _ in range(connections):
            try:
                held.append(connect(daemon.socket))
            except OSError:
                pass
        time.sleep(1)
        before = daemon.cpu_seconds()
        time.sleep(2)
        cpu = daemon.cpu_seconds() - before
        hung_up = served = waiting = 0
        for s in held:
            s.settimeout(0.5)
            try:
                if s.recv(64):
                    served += 1
                else:
                    hung_up += 1
            except socket.timeout:
                waiting += 1
            except OSError:
                hung_up += 1
        fds = daemon.fds()
        for s in held:
            s.close()
        time.sleep(1)
        answered = health_stub(daemon.socket)
        print("exhaustion (hard limit %d)    %d connections: %d served, %d hung up, %d left waiting; daemon fds %d, "
              "CPU %.2f s in 2 s; afterwards %s" % (hard, len(held), served, hung_up, waiting, fds, cpu,
                                                     "SERVING" if answered else "no answer"), flush=True)
        check(waiting == 0, "%d connections over the limit were left waiting" % waiting)
        check(cpu < 0.5, "the daemon spun (%.2f s of CPU in 2 s) with connections it cannot accept" % cpu)
        check(answered, "no answer after the connections over the limit went")
        check(daemon.alive(), "daemon died under descriptor exhaustion")
    finally:
        daemon.stop()


def check(condition, what):
    if not condition:
        failures.append(what)
        print("FAIL: " + what, flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("bpfman")
    parser.add_argument("--idle", type=int, default=2000)
    parser.add_argument("--garbage", type=int, default=2000)
    parser.add_argument("--frames", type=int, default=500)
    parser.add_argument("--callers", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--exhaustion-only", action="store_true")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.idle + 512)), hard))
    stubs()
    import bpfman_pb2 as pb
    import bpfman_pb2_grpc as pbg
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    rng = random.Random(20)

    def health_at(path):
        """True when the daemon on `path` answers a health Check of the server as a whole with SERVING."""
        try:
            with grpc.insecure_channel("unix://" + path) as channel:
                return health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=""), timeout=10).status == 1
        except grpc.RpcError:
            return False

    if args.exhaustion_only:
        exhaustion(args.bpfman, health_at)
        print("FAIL" if failures else "PASS")
        sys.exit(1 if failures else 0)
    daemon = Daemon(args.bpfman)
    target = "unix://" + daemon.socket

    def health(timeout=10):
        try:
            with grpc.insecure_channel(target) as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service="bpfman.v1.Bpfman"), timeout=timeout)
                return reply.status == health_pb2.HealthCheckResponse.SERVING
        except grpc.RpcError as error:
            print("  health: %s %s" % (error.code(), error.details()), flush=True)
            return False

    rows = []

    def record(phase, note=""):
        rows.append((phase, daemon.rss_kib(), daemon.fds(), daemon.threads(), note))
        print("%-28s rss %7.1f MiB  fds %5d  threads %3d  %s" % (
            phase, rows[-1][1] / 1024, rows[-1][2], rows[-1][3], note), flush=True)

    def stress(round_number):
        # idle: held open at once
        idle = []
        began = time.time()
        refused = 0
        for n in range(args.idle):
            try:
                s = connect(daemon.socket)
            except OSError:
                refused += 1
                continue
            if n % 2:
                s.sendall(PREFACE + frame(4, 0, 0, b""))
            idle.append(s)
        time.sleep(1)
        record("%d idle: %d open" % (round_number, len(idle)), "%d refused by connect, %.1fs" % (refused, time.time() - began))
        answered = health(timeout=10)
        check(answered, "health with %d idle connections open" % len(idle))
        record("%d " % round_number + "idle: health checked", "SERVING" if answered else "no answer")
        for s in idle:
            s.close()
        time.sleep(1)
        record("%d " % round_number + "idle: closed")

        # garbage
        began = time.time()
        for n in range(args.garbage):
            try:
                s = connect(daemon.socket)
            except OSError:
                continue
            data = rng.randbytes(rng.randrange(1, 4096))
            if n % 3 == 0:
                data = PREFACE + data
            try:
                s.sendall(data)
            except OSError:
                pass
            if n % 10 == 0:
                drain(s, 0.05)
            s.close()
        time.sleep(0.5)
        check(health(), "health after garbage")
        record("%d garbage: %d connections" % (round_number, args.garbage), "%.1fs" % (time.time() - began))

        # random well-formed frames and real requests
        get = pb.GetRequest(id=1).SerializeToString()
        began = time.time()
        answered_bytes = 0
        for n in range(args.frames):
            try:
                s = connect(daemon.socket)
                data = PREFACE + frame(4, 0, 0, b"")
                stream = 1
                for _ in range(rng.randrange(1, 60)):
                    if rng.random() < 0.3:
                        data += grpc_request(stream, rng.choice(["/bpfman.v1.Bpfman/Get", "/bpfman.v1.Bpfman/List",
                                                                 "/grpc.health.v1.Health/Check", "/x.Y/Z"]), get)
                        stream += 2
                    else:
                        data += random_frame(rng)
                s.sendall(data)
                answered_bytes += drain(s, 0.05)
                s.close()
            except OSError:
                pass
        check(health(), "health after random frames")
        record("%d frames: %d connections" % (round_number, args.frames), "%d bytes answered, %.1fs" % (
            answered_bytes, time.time() - began))

        # oversized
        with grpc.insecure_channel(target, options=[("grpc.max_send_message_length", -1)]) as channel:
            big = pb.LoadRequest(bytecode=pb.BytecodeLocation(file="/x"), global_data={"g": b"\x00" * (5 << 20)})
            try:
                pbg.BpfmanStub(channel).Load(big, timeout=30)
                check(False, "a 5 MiB Load was accepted")
            except grpc.RpcError as error:
                check(error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED,
                      "5 MiB Load ended %s, not RESOURCE_EXHAUSTED" % error.code())
        s = connect(daemon.socket)
        headers = hpack_literal([(":method", "POST"), (":scheme", "http"), (":path", "/bpfman.v1.Bpfman/Get"),
                                 (":authority", "x"), ("content-type", "application/grpc"), ("te", "trailers")])
        s.sendall(PREFACE + frame(4, 0, 0, b"") + frame(1, 0x4, 1, headers) +
                  frame(0, 0, 1, b"\x00\xff\xff\xff\xff" + b"\x00" * 1000))
        drain(s, 0.3)
        s.close()
        s = connect(daemon.socket)
        block = b"\x00\x05x-pad\x64" + b"v" * 100
        block = block * ((1 << 20) // len(block))  # 1 MiB of headers
        chunks = [block[i:i + 16384] for i in range(0, len(block), 16384)]
        data = PREFACE + frame(4, 0, 0, b"") + frame(1, 0, 1, chunks[0])
        for i, chunk in enumerate(chunks[1:]):
            data += frame(9, 0x4 if i == len(chunks) - 2 else 0, 1, chunk)
        try:
            s.sendall(data)
        except OSError:
            pass
        drain(s, 0.3)
        s.close()
        s = connect(daemon.socket)
        try:
            s.sendall(PREFACE + frame(4, 0, 0, b"") + frame(0, 0, 1, b"\x00" * (1 << 20)))
        except OSError:
            pass
        drain(s, 0.3)
        s.close()
        check(health(), "health after oversized input")
        record("%d oversized" % round_number, "5 MiB message, 4 GiB prefix, 1 MiB headers, 1 MiB frame")

        # concurrent callers
        counts = {}
        lock = threading.Lock()
        stop = time.time() + args.seconds

        def caller(index):
            mine = {}
            with grpc.insecure_channel(target) as channel:
                bpfman = pbg.BpfmanStub(channel)
                healthz = health_pb2_grpc.HealthStub(channel)
                while time.time() < stop:
                    try:
                        choice = rng.random()
                        if choice < 0.5:
                            bpfman.Get(pb.GetRequest(id=index + 1), timeout=10)
                        elif choice < 0.8:
                            bpfman.List(pb.ListRequest(bpfman_programs_only=True), timeout=10)
                        else:
                            healthz.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
                        code = "OK"
                    except grpc.RpcError as error:
                        code = error.code().name
                    mine[code] = mine.get(code, 0) + 1
            with lock:
                for code, count in mine.items():
                    counts[code] = counts.get(code, 0) + count

        threads = [threading.Thread(target=caller, args=(i,)) for i in range(args.callers)]
        for t in threads:
            t.start()
        time.sleep(args.seconds / 2)
        record("%d callers: %d running" % (round_number, args.callers))
        for t in threads:
            t.join()
        total = sum(counts.values())
        check(set(counts) <= {"OK", "NOT_FOUND"}, "caller statuses %s" % counts)
        record("%d callers: done" % round_number, "%d calls, %.0f/s, %s" % (total, total / args.seconds, counts))


    try:
        check(health(), "health at start")
        time.sleep(0.5)
        record("start")
        start_rss, start_fds = rows[-1][1], rows[-1][2]

        start_targets = daemon.fd_targets()
        stress(1)
        time.sleep(2)
        record("1 end (2 s later)")
        first_rss = rows[-1][1]
        for round_number in range(2, args.rounds + 1):
            stress(round_number)
        time.sleep(2)
        check(health(), "health at the end")
        check(daemon.alive(), "daemon alive at the end")
        record("%d end (2 s later)" % args.rounds)
        end_rss, end_fds = rows[-1][1], rows[-1][2]
        # The SQLite read pool keeps the connections the callers made it open (a fixed number, BpfmanEngine's
        # ReadPool); anything else must be closed again.
        # The health Check just before may still be closing on the daemon's side: wait up to 3 s for it.
        for _ in range(30):
            now = daemon.fd_targets()
            grown = [t for t in now if now.count(t) > start_targets.count(t)]
            extra = [t for t in set(grown) if not t.endswith((".db", ".db-wal", ".db-shm")) and
                     not t.startswith("/proc/")]
            if not extra:
                break
            time.sleep(0.1)
        check(not extra, "descriptors left open: %s" % sorted(set(grown)))
        print("descriptors: %d at start, %d at the end (%s)" % (start_fds, end_fds, ", ".join(sorted(set(grown))) or
                                                                "the same"))
        # Memory is bounded: more rounds of everything leave the RSS where the first left it.
        check(end_rss <= first_rss + 2 * 1024, "RSS grew from %d KiB after round 1 to %d KiB after round %d" % (
            first_rss, end_rss, args.rounds))
        peak = max(r[1] for r in rows)
        print("peak rss %.1f MiB, peak fds %d" % (peak / 1024, max(r[2] for r in rows)))
    finally:
        alive = daemon.alive()
        if not alive:
            print("daemon log:\n" + daemon.log_tail())
        daemon.stop()
    exhaustion(args.bpfman, health_at)
    if failures or not alive:
        print("FAIL")
        sys.exit(1)
    print("PASS")


if __name__ == "__main__":
    main()
