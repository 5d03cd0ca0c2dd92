#!/usr/bin/env python3
"""The long fuzzing run (README "Fuzzing and the load test"): every target until it has RUNS executions or the
time is up, JOBS targets at a time. Run through `scripts/fuzz.sh long RUNS MINUTES [NAME..]`.

Each target is fuzzed in chunks of at most CHUNK seconds with `-runs=` what it still needs, from its committed
seeds plus what earlier chunks found, with the flags of `scripts/fuzz.sh run`. A free slot takes the target with
the most estimated time left (runs still needed / its rate so far), so the slowest targets get the most time. A
target whose binary is not built yet (or was written in the last 30 s: still being linked) is skipped until it is. A target that crashes, leaks, times out or exceeds
its memory limit is stopped (its input is under .build-fuzz/artifacts/NAME) and the others go on.

When every target still short of its runs is already running and a slot is free, a second process fuzzes the
target with the most time left from the same corpus directory (libFuzzer picks up what the other one adds when a
chunk starts), so the last slow target gets both cores.

`--goal NAME=RUNS` sets one target's RUNS, for a run that adds to earlier ones recorded elsewhere (the issue's
10 million executions per target are summed over a target's runs).

State (runs, CPU seconds, edges, peak RSS per target, every chunk) is kept in STATE (JSON), so a run that is
stopped and started again goes on counting; `--report` prints the table from it.
"""

import argparse
import json
import os
import re
import resource
import signal
import subprocess
import sys
import time

FLAGS = ["-timeout=10", "-rss_limit_mb=2048", "-malloc_limit_mb=512", "-max_len=65536", "-print_final_stats=1"]


def load(path, names):
    state = {"targets": {}, "chunks": []}
    if os.path.exists(path):
        with open(path) as f:
            state = json.load(f)
    for name in names:
        state["targets"].setdefault(
            name,
            {"runs": 0, "seconds": 0.0, "cpu": 0.0, "edges": 0, "features": 0, "peak_rss_mb": 0, "chunks": 0,
             "failed": None},
        )
    return state


def save(path, state):
    with open(path + ".tmp", "w") as f:
        json.dump(state, f, indent=1)
    os.replace(path + ".tmp", path)


def parse(log):
    with open(log, errors="replace") as f:
        text = f.read()
    runs = re.findall(r"^stat::number_of_executed_units: *(\d+)", text, re.M)
    rss = re.findall(r"^stat::peak_rss_mb: *(\d+)", text, re.M)
    cov = re.findall(r"cov: (\d+) ft: (\d+)", text)
    problem = re.search(r"^(==\d+==ERROR.*|SUMMARY.*|.*Fatal error.*|fuzz property failed.*|.*-timeout.*)$",
                        text, re.M)
    return (int(runs[-1]) if runs else None, int(rss[-1]) if rss else 0,
            tuple(map(int, cov[-1])) if cov else (0, 0), problem.group(1) if problem else None)


def report(state):
    rows = []
    total = 0
    print(f"{'target':<10} {'runs':>12} {'exec/s':>8} {'cpu s':>8} {'exec/cpu s':>10} {'edges':>7} {'rss MiB':>8}"
          f" {'chunks':>6}  result")
    for name, t in state["targets"].items():
        wall = t["seconds"] or 1
        cpu = t["cpu"] or 1
        print(f"{name:<10} {t['runs']:>12,} {t['runs'] / wall:>8,.0f} {t['cpu']:>8,.0f} {t['runs'] / cpu:>10,.0f}"
              f" {t['edges']:>7,} {t['peak_rss_mb']:>8} {t['chunks']:>6}  {t['failed'] or 'ok'}")
        total += t["runs"]
    print(f"{'all':<10} {total:>12,}")
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10_000_000)
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=600)
    parser.add_argument("--bin", default=".build-fuzz/release")
    parser.add_argument("--scratch", default=".build-fuzz")
    parser.add_argument("--state", default=".build-fuzz/long/state.json")
    parser.add_argument("--nice", action="store_true")
    parser.add_argument("--report", action="store_true")
    parser.add_argument("--goal", action="append", default=[], metavar="NAME=RUNS")
    parser.add_argument("names", nargs="+")
    args = parser.parse_args()

    goals = {name: args.runs for name in args.names}
    for goal in args.goal:
        name, _, runs = goal.partition("=")
        if name not in goals or not runs.isdigit():
            parser.error(f"--goal {goal}: not NAME=RUNS for a target of this run")
        goals[name] = int(runs)
    os.makedirs(os.path.dirname(args.state) or ".", exist_ok=True)
    state = load(args.state, args.names)
    if args.report:
        report(state)
        return 0
    logs = os.path.join(os.path.dirname(args.state), "logs")
    os.makedirs(logs, exist_ok=True)
    deadline = time.time() + args.minutes * 60
    running = {}  # pid -> (name, log, start, Popen)
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True
        for _, _, _, process in running.values():
            process.send_signal(signal.SIGINT)  # libFuzzer prints its statistics and exits

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def instances(name):
        return sum(n == name for n, *_ in running.values())

    def pick(second=False):
        best, best_left = None, -1.0
        for name in args.names:
            t = state["targets"][name]
            if t["failed"] or t["runs"] >= goals[name] or instances(name) > (1 if second else 0):
                continue
            binary = os.path.join(args.bin, f"fuzz-{name}")
            # Not built yet, or (written in the last 30 s) still being linked.
            if not os.access(binary, os.X_OK) or time.time() - os.path.getmtime(binary) < 30:
                continue
            rate = t["runs"] / t["seconds"] if t["seconds"] > 0 else 0
            left = (goals[name] - t["runs"]) / rate if rate > 0 else float("inf")
            if left > best_left:
                best, best_left = name, left
        return best

    while True:
        while not stopping and len(running) < args.jobs and deadline - time.time() > 30:
            name = pick() or pick(second=True)
            if name is None:
                break
            t = state["targets"][name]
            seconds = int(min(args.chunk, deadline - time.time()))
            work = os.path.join(args.scratch, "corpus", name)
            artifacts = os.path.join(args.scratch, "artifacts", name)
            os.makedirs(work, exist_ok=True)
            os.makedirs(artifacts, exist_ok=True)
            number = t["chunks"] + 1
            while any(log == os.path.join(logs, f"{name}-{number}.log") for _, log, *_ in running.values()):
                number += 1
            log = os.path.join(logs, f"{name}-{number}.log")
            command = ([os.path.join(args.bin, f"fuzz-{name}"), work, f"Fuzz/corpus/{name}",
                        f"-max_total_time={seconds}", f"-runs={goals[name] - t['runs']}",
                        f"-artifact_prefix={artifacts}/"] + FLAGS)
            if args.nice:
                command = ["nice", "-n", "19"] + command
            with open(log, "w") as out:
                process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
            running[process.pid] = (name, log, time.time(), process)
            print(f"{time.strftime('%H:%M:%S')} start {name} for {seconds} s ({t['runs']:,} runs so far)",
                  flush=True)
        if not running:
            # Nothing runs: wait for a target still being built, while there is time.
            waiting = [n for n in args.names if not state["targets"][n]["failed"]
                       and state["targets"][n]["runs"] < goals[n]]
            if waiting and not stopping and deadline - time.time() > 30:
                time.sleep(15)
                continue
            break
        try:
            # Polled, so that a slot left free while a target was being built is filled once it is.
            pid, status, usage = os.wait4(-1, os.WNOHANG)
        except InterruptedError:
            continue
        except ChildProcessError:
            break
        if pid == 0:
            time.sleep(5)
            continue
        if pid not in running:
            continue
        name, log, start, _ = running.pop(pid)
        t = state["targets"][name]
        runs, rss, (edges, features), problem = parse(log)
        code = os.waitstatus_to_exitcode(status)
        t["runs"] += runs or 0
        t["seconds"] += time.time() - start
        t["cpu"] += usage.ru_utime + usage.ru_stime
        t["edges"] = max(t["edges"], edges)
        t["features"] = max(t["features"], features)
        t["peak_rss_mb"] = max(t["peak_rss_mb"], rss, usage.ru_maxrss // 1024)
        t["chunks"] += 1
        interrupted = stopping and code in (-signal.SIGINT, 0, 72)
        if code != 0 and not interrupted:
            t["failed"] = f"exit {code}: {problem or 'see ' + log}"
        elif runs is None and not interrupted:
            t["failed"] = f"no libFuzzer statistics in {log}"
        state["chunks"].append({"name": name, "log": log, "start": start, "end": time.time(), "runs": runs,
                                "cpu": usage.ru_utime + usage.ru_stime, "edges": edges, "rss_mb": rss,
                                "exit": code, "loadavg": os.getloadavg()})
        save(args.state, state)
        print(f"{time.strftime('%H:%M:%S')} done {name}: {runs or 0:,} runs, {edges} edges, {rss} MiB"
              f"{', ' + t['failed'] if t['failed'] else ''} (total {t['runs']:,}, load {os.getloadavg()[0]:.1f})",
              flush=True)
    report(state)
    return 1 if any(t["failed"] for t in state["targets"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
