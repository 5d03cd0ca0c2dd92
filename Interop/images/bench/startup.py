#!/usr/bin/env python3
"""Start-up time and RSS of `bpfman serve` builds, started alternately (Interop/images/bench/run.sh).

Each start gets an empty runtime dir and image cache under WORK. Start-up is the time from spawning the process
to the first successful connect() on its socket (Interop/daemon/bench/run.sh's method); RSS is read from
/proc/PID/status 200 ms after that (VmRSS, and its RssAnon/RssFile split), with the number of shared objects
mapped. The builds take turns (a, b, a, b, ...) so drift on a shared VM hits both alike.

Usage: startup.py WORK CONFIG STARTS NAME=BINARY[:BPF_DIR] ...
Prints per build: "NAME startup_ms=M min_ms=N rss_kib=R anon_kib=A file_kib=F libs=L" (medians, and the fastest
start: on a busy VM the median moves with other load, the minimum much less), samples on stderr.
"""
import os
import socket
import statistics
import subprocess
import sys
import time


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def shared_objects(pid):
    with open(f"/proc/{pid}/maps") as f:
        return len({line.split()[-1] for line in f if ".so" in line.rsplit("/", 1)[-1]})


def start(work, config, name, binary, bpf_dir, i):
    sock = f"{work}/start-{name}-{i}.sock"
    rd = f"{work}/start-{name}-{i}"
    env = dict(os.environ)
    env.pop("BPFMAN_BPF_DIR", None)
    if bpf_dir:
        env["BPFMAN_BPF_DIR"] = bpf_dir
    args = [binary, "serve", "--runtime-dir", rd, "--socket-path", sock, "--image-cache-dir", rd + "-cache",
            "--config", config]
    t0 = time.monotonic()
    p = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            if p.poll() is not None:
                sys.exit(f"startup.py: {name} exited with {p.returncode} before its socket answered")
            if time.monotonic() - t0 > 30:
                sys.exit(f"startup.py: {name} had no socket after 30 s")
            s = socket.socket(socket.AF_UNIX)
            try:
                s.connect(sock)
                break
            except OSError:
                time.sleep(0.0005)
            finally:
                s.close()
        ms = (time.monotonic() - t0) * 1000
        time.sleep(0.2)
        sample = (ms, status_kib(p.pid, "VmRSS"), status_kib(p.pid, "RssAnon"), status_kib(p.pid, "RssFile"),
                  shared_objects(p.pid))
    finally:
        p.terminate()
        p.wait()
        subprocess.call(["umount", "-l", f"{rd}/fs"], stderr=subprocess.DEVNULL)
    return sample


def main():
    work, config, starts = sys.argv[1], sys.argv[2], int(sys.argv[3])
    builds = []
    for spec in sys.argv[4:]:
        name, rest = spec.split("=", 1)
        binary, _, bpf_dir = rest.partition(":")
        builds.append((name, binary, bpf_dir))
    samples = {name: [] for name, _, _ in builds}
    for i in range(starts):
        for name, binary, bpf_dir in builds:
            samples[name].append(start(work, config, name, binary, bpf_dir, i))
    for name, _, _ in builds:
        rows = samples[name]
        print(f"{name} samples (ms, rss, anon, file, libs): {rows}", file=sys.stderr)
        med = [statistics.median(column) for column in zip(*rows)]
        print(f"{name} startup_ms={med[0]:.1f} min_ms={min(r[0] for r in rows):.1f} rss_kib={med[1]:.0f} "
              f"anon_kib={med[2]:.0f} file_kib={med[3]:.0f} libs={med[4]:.0f}")


if __name__ == "__main__":
    main()
