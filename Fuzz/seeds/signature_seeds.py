#!/usr/bin/env python3
"""Writes the seeds of fuzz-signature (Fuzz/README.md, "Seeds") into OUTDIR/signature.

Usage: signature_seeds.py OUTDIR   (needs Python's `cryptography`, as the signature tests do)

The material is what the signature and TUF tests verify, made by the same scripts (Interop/images/
sigstore_forge.py and tuf_forge.py): a test trust root; a v0.3 DSSE bundle of an image, a blob bundle and a
legacy simple-signing signature under it, each valid, plus a few of the forge's faults; a TUF repository of two
root versions serving that trust root, reachable and (mode bit 2) cached; and Sigstore's public-good initial root
(Sources/BpfmanImages/SigstorePublicGood.swift). Each seed is fuzz-signature's input: a mode byte, then parts
separated by NUL bytes. JSON is written compact to keep the seeds small.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "Interop", "images"))
import sigstore_forge  # noqa: E402

OUT = os.path.join(os.path.abspath(sys.argv[1]), "signature")
DIGEST = "sha256:" + "ab" * 32


def compact(data):
    return json.dumps(json.loads(data), separators=(",", ":")).encode()


def write(name, mode, *parts):
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(bytes([mode]) + b"\0".join(parts))


def signer(root, fault=""):
    return sigstore_forge.Signer(argparse.Namespace(
        root=root, fault=fault, identity="signer@bpfman.test", issuer="https://issuer.bpfman.test"))


def public_good_root():
    source = open(os.path.join(REPO, "Sources", "BpfmanImages", "SigstorePublicGood.swift")).read()
    text = source.split('#"""\n', 1)[1].split('\n        """#', 1)[0]
    return re.sub(r"\\#\n *", "", text.strip()).encode()


def main():
    with tempfile.TemporaryDirectory() as work:
        root = os.path.join(work, "sigstore")
        sigstore_forge.command_root(argparse.Namespace(dir=root))
        trusted = compact(open(os.path.join(root, "trusted_root.json"), "rb").read())
        write("trust-root", 0, trusted)

        good = signer(root)
        write("bundle-dsse", 1, trusted, compact(good.image_bundle("bpfman.test/bytecode", DIGEST)))
        blob = b"a blob\n"
        write("bundle-blob", 1, trusted, compact(good.blob_bundle(blob)), blob)
        payload, annotations = good.legacy("bpfman.test/bytecode", DIGEST)
        write("legacy", 2, trusted, payload, json.dumps(annotations, separators=(",", ":")).encode())
        for fault in ["no-set", "bad-proof", "chain-loop"]:
            write("bundle-" + fault, 1, trusted, compact(signer(root, fault).image_bundle("bpfman.test/b", DIGEST)))

        target = os.path.join(work, "trusted_root.json")
        with open(target, "wb") as f:
            f.write(trusted)
        tuf = os.path.join(work, "tuf")
        subprocess.run([sys.executable, os.path.join(REPO, "Interop", "images", "tuf_forge.py"), "make", tuf,
                        "--target", target, "--roots", "2", "--version", "2", "--timestamp-days", "3650"],
                       check=True)
        repo = os.path.join(tuf, "repo")
        files = sorted(os.listdir(os.path.join(repo, "targets")))

        def read(*path):
            return compact(open(os.path.join(repo, *path), "rb").read())

        initial = compact(open(os.path.join(tuf, "initial_root.json"), "rb").read())
        parts = [initial, read("timestamp.json"),
                 # as written: the timestamp lists the snapshot's length and hash
                 open(os.path.join(repo, "2.snapshot.json"), "rb").read(), read("2.targets.json"),
                 open(os.path.join(repo, "targets", files[0]), "rb").read(), read("2.root.json")]
        write("tuf", 3, *parts)
        write("tuf-cached", 7, *parts[:5])
        write("tuf-public-good-root", 3, public_good_root())


if __name__ == "__main__":
    main()
