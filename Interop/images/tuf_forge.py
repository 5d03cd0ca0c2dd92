#!/usr/bin/env python3
"""A TUF repository made by the tests (TUF specification 1.0 metadata, consistent snapshots), serving one target,
a Sigstore trusted_root.json, and a small HTTP server for it.

  tuf_forge.py make DIR --target FILE [--roots N] [--version V] [--timestamp-days D] [--fault F]
      writes DIR/repo (1.root.json ... N.root.json, timestamp.json, V.snapshot.json, V.targets.json,
      targets/<sha256>.trusted_root.json) and DIR/initial_root.json (version 1). Keys come from fixed seeds, so
      repeated runs on one DIR sign with the same keys. Root version k is signed by root key k (and by key k-1 for
      k > 1); timestamp needs 2 of 2 keys. Faults: tampered-target (one bit), longer-target (one byte more),
      expired-timestamp, timestamp-threshold (one of its two signatures), duplicate-key (the first timestamp key
      under two ids, signing twice), bad-rotation (root 2 not signed by root 1's key).
  tuf_forge.py serve DIR --port-file FILE
      serves DIR/repo on 127.0.0.1 (a free port, written to FILE); each request path is appended to
      DIR/requests.log.

Signatures are ed25519 over the canonical JSON of `signed` (securesystemslib's: sorted keys, no whitespace, only
`"` and `\\` escaped), hex-encoded.
"""
import argparse
import datetime
import hashlib
import http.server
import json
import os
import shutil

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


def canonical(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ",".join(canonical(v) for v in value) + "]"
    return "{" + ",".join(canonical(k) + ":" + canonical(value[k]) for k in sorted(value)) + "}"


def key(name):
    private = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(name.encode()).digest())
    raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
    public = {"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": raw}}
    keyid = hashlib.sha256(canonical(public).encode()).hexdigest()
    return keyid, public, private


def when(days):
    moment = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=days)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def sign(signed, signers):
    payload = canonical(signed).encode()
    return {"signed": signed, "signatures": [{"keyid": k, "sig": p.sign(payload).hex()} for k, _, p in signers]}


def write(path, document):
    with open(path, "w") as f:
        json.dump(document, f, indent=1)
    with open(path, "rb") as f:
        return f.read()


def meta(data, version):
    return {"version": version, "length": len(data), "hashes": {"sha256": hashlib.sha256(data).hexdigest()}}


def make(args):
    repo = os.path.join(args.dir, "repo")
    shutil.rmtree(repo, ignore_errors=True)
    os.makedirs(os.path.join(repo, "targets"))
    timestamp_keys = [key("timestamp-1"), key("timestamp-2")]
    snapshot_key, targets_key = key("snapshot"), key("targets")
    for version in range(1, args.roots + 1):
        root_key = key(f"root-{version}")
        keys = {k: public for k, public, _ in [root_key, snapshot_key, targets_key] + timestamp_keys}
        signed = {
            "_type": "root", "spec_version": "1.0", "version": version, "expires": when(365),
            "consistent_snapshot": True, "keys": keys,
            "roles": {
                "root": {"keyids": [root_key[0]], "threshold": 1},
                "timestamp": {"keyids": [k for k, _, _ in timestamp_keys], "threshold": 2},
                "snapshot": {"keyids": [snapshot_key[0]], "threshold": 1},
                "targets": {"keyids": [targets_key[0]], "threshold": 1},
            },
        }
        if args.fault == "duplicate-key":
            # The first timestamp key listed again under another id, in place of the second key.
            duplicate = ("d" * 64, timestamp_keys[0][1], timestamp_keys[0][2])
            keys[duplicate[0]] = duplicate[1]
            signed["roles"]["timestamp"]["keyids"] = [timestamp_keys[0][0], duplicate[0]]
        signers = [root_key]
        if version > 1 and not (args.fault == "bad-rotation" and version == 2):
            signers.append(key(f"root-{version - 1}"))
        data = write(os.path.join(repo, f"{version}.root.json"), sign(signed, signers))
        if version == 1:
            with open(os.path.join(args.dir, "initial_root.json"), "wb") as f:
                f.write(data)
    with open(args.target, "rb") as f:
        target = f.read()
    digest = hashlib.sha256(target).hexdigest()
    served = target
    if args.fault == "tampered-target":
        served = bytes([target[0] ^ 1]) + target[1:]
    elif args.fault == "longer-target":
        served = target + b" "
    with open(os.path.join(repo, "targets", f"{digest}.trusted_root.json"), "wb") as f:
        f.write(served)
    v = args.version
    targets = {
        "_type": "targets", "spec_version": "1.0", "version": v, "expires": when(365),
        "targets": {"trusted_root.json": {"length": len(target), "hashes": {"sha256": digest}}},
    }
    write(os.path.join(repo, f"{v}.targets.json"), sign(targets, [targets_key]))
    snapshot = {
        "_type": "snapshot", "spec_version": "1.0", "version": v, "expires": when(365),
        "meta": {"targets.json": {"version": v}},
    }
    snapshot_data = write(os.path.join(repo, f"{v}.snapshot.json"), sign(snapshot, [snapshot_key]))
    timestamp = {
        "_type": "timestamp", "spec_version": "1.0", "version": v,
        "expires": when(-1 if args.fault == "expired-timestamp" else args.timestamp_days),
        "meta": {"snapshot.json": meta(snapshot_data, v)},
    }
    signers = timestamp_keys[:1] if args.fault == "timestamp-threshold" else timestamp_keys
    if args.fault == "duplicate-key":
        signers = [timestamp_keys[0], ("d" * 64, None, timestamp_keys[0][2])]
    write(os.path.join(repo, "timestamp.json"), sign(timestamp, signers))


def serve(args):
    repo = os.path.join(args.dir, "repo")
    log = os.path.join(args.dir, "requests.log")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=repo, **kw)

        def do_GET(self):
            with open(log, "a") as f:
                f.write(self.path + "\n")
            super().do_GET()

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(args.port_file + ".tmp", args.port_file)
    server.serve_forever()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    m = commands.add_parser("make")
    m.add_argument("dir")
    m.add_argument("--target", required=True)
    m.add_argument("--roots", type=int, default=1)
    m.add_argument("--version", type=int, default=1)
    m.add_argument("--timestamp-days", type=float, default=1, help="the timestamp expires this many days from now")
    faults = [
        "tampered-target", "longer-target", "expired-timestamp", "timestamp-threshold", "duplicate-key", "bad-rotation",
    ]
    m.add_argument("--fault", default="", choices=[""] + faults)
    s = commands.add_parser("serve")
    s.add_argument("dir")
    s.add_argument("--port-file", required=True)
    args = parser.parse_args()
    make(args) if args.command == "make" else serve(args)


if __name__ == "__main__":
    main()
