#!/usr/bin/env python3
"""An independent protobuf implementation (Python protobuf) as an oracle for our Swift codec.

  oracle.py generate --seed N --count K --out cases.tsv [--proto-dir proto]
      For every message type of bpfman, csi, bpfman_ext, health and reflection (nested too), K seeded random
      messages; one line each: <full type name> TAB <hex binary> TAB <hex JSON (UTF-8)>.
  oracle.py verify --cases cases.tsv --ours ours.tsv
      ours.tsv has one line per case: <type> TAB <hex binary> TAB <hex JSON>, written by the
      Swift side after decoding the oracle's bytes and JSON. Every binary and JSON must parse
      back to a message equal to the original. Prints "ok <n>" or the first differences; exit 1
      on any difference.

Descriptors come from the system protoc (--descriptor_set_out), loaded into a private pool.
"""
import argparse
import os
import random
import subprocess
import sys
import tempfile

from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.descriptor import FieldDescriptor as FD

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FILES = ["bpfman.proto", "csi.proto", "bpfman_ext.proto", "grpc/health/v1/health.proto",
         "grpc/reflection/v1/reflection.proto", "grpc/reflection/v1alpha/reflection.proto"]


def load_pool(proto_dir):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "set.pb")
        subprocess.run(
            ["protoc", "-I", proto_dir, "-I", "/usr/include", "--include_imports",
             "--descriptor_set_out=" + out] + FILES,
            check=True)
        fds = descriptor_pb2.FileDescriptorSet()
        with open(out, "rb") as f:
            fds.ParseFromString(f.read())
    pool = descriptor_pool.DescriptorPool()
    for f in fds.file:
        pool.Add(f)
    return pool


def message_types(pool):
    names = []

    def walk(d):
        if d.GetOptions().map_entry:
            return
        names.append(d.full_name)
        for n in d.nested_types:
            walk(n)

    for name in FILES:
        fd = pool.FindFileByName(name)
        for d in fd.message_types_by_name.values():
            walk(d)
    return sorted(names)


UNICODE = ["a", "Z", "0", " ", "_", "/", "\"", "\\", "\n", "\t", "\x01", "é", "ß", "€", "中", "文",
           "\U0001F600", "\u2028", "ö"]


def rand_string(rng):
    n = rng.choice([0, 1, 2, 5, 12, 40])
    return "".join(rng.choice(UNICODE) for _ in range(n))


def rand_bytes(rng):
    n = rng.choice([0, 1, 3, 16, 100])
    return bytes(rng.randrange(256) for _ in range(n))


def rand_int(rng, bits, signed):
    if signed:
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    else:
        lo, hi = 0, (1 << bits) - 1
    return rng.choice([0, 1, -1 if signed else 2, lo, hi, rng.randint(lo, hi), rng.randint(0, 300)])


def rand_scalar(rng, f):
    t = f.type
    if t in (FD.TYPE_INT32, FD.TYPE_SINT32, FD.TYPE_SFIXED32):
        return rand_int(rng, 32, True)
    if t in (FD.TYPE_INT64, FD.TYPE_SINT64, FD.TYPE_SFIXED64):
        return rand_int(rng, 64, True)
    if t in (FD.TYPE_UINT32, FD.TYPE_FIXED32):
        return rand_int(rng, 32, False)
    if t in (FD.TYPE_UINT64, FD.TYPE_FIXED64):
        return rand_int(rng, 64, False)
    if t == FD.TYPE_BOOL:
        return rng.random() < 0.5
    if t == FD.TYPE_STRING:
        return rand_string(rng)
    if t == FD.TYPE_BYTES:
        return rand_bytes(rng)
    if t in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
        return rng.choice([0.0, 1.5, -2.25, 1e10])
    if t == FD.TYPE_ENUM:
        values = [v.number for v in f.enum_type.values]
        # Open enums: sometimes a number the schema does not declare.
        return rng.choice(values + [values[-1] + 7])
    raise ValueError(t)


def fill(rng, msg, depth):
    d = msg.DESCRIPTOR
    if d.full_name == "google.protobuf.Timestamp":
        msg.seconds = rng.randint(-62135596800, 253402300799)
        msg.nanos = rng.choice([0, 1000000, 123000, 999999999, rng.randint(0, 999999999)])
        return
    chosen_oneof = {}
    for o in d.oneofs:
        if o.name.startswith("_") and len(o.fields) == 1 and o.fields[0].name == o.name[1:]:
            continue  # synthetic oneof of a proto3 `optional` field
        chosen_oneof[o.name] = rng.choice(list(o.fields) + [None])
    for f in d.fields:
        o = f.containing_oneof
        if o is not None and o.name in chosen_oneof:
            if chosen_oneof[o.name] is not f:
                continue
        elif rng.random() < 0.35:
            continue
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            kf, vf = f.message_type.fields_by_name["key"], f.message_type.fields_by_name["value"]
            m = getattr(msg, f.name)
            for _ in range(rng.choice([0, 1, 2, 3])):
                k = rand_scalar(rng, kf)
                if vf.message_type is not None:
                    if depth < 4:
                        fill(rng, m[k], depth + 1)
                else:
                    m[k] = rand_scalar(rng, vf)
            continue
        if f.is_repeated:
            r = getattr(msg, f.name)
            for _ in range(rng.choice([0, 1, 2, 3])):
                if f.message_type is not None:
                    if depth < 4:
                        fill(rng, r.add(), depth + 1)
                else:
                    r.append(rand_scalar(rng, f))
            continue
        if f.message_type is not None:
            sub = getattr(msg, f.name)
            sub.SetInParent()
            if depth < 4:
                fill(rng, sub, depth + 1)
        else:
            setattr(msg, f.name, rand_scalar(rng, f))


def classes(pool):
    return lambda name: message_factory.GetMessageClass(pool.FindMessageTypeByName(name))


def generate(args):
    pool = load_pool(args.proto_dir)
    cls = classes(pool)
    rng = random.Random(args.seed)
    n = 0
    with open(args.out, "w") as out:
        for name in message_types(pool):
            for _ in range(args.count):
                m = cls(name)()
                fill(rng, m, 0)
                binary = m.SerializeToString()
                text = json_format.MessageToJson(m, indent=None).encode("utf-8")
                out.write("%s\t%s\t%s\n" % (name, binary.hex(), text.hex()))
                n += 1
    print("generated %d cases" % n)


def verify(args):
    pool = load_pool(args.proto_dir)
    cls = classes(pool)
    with open(args.cases) as f:
        cases = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    with open(args.ours) as f:
        ours = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    if len(cases) != len(ours):
        print("case count differs: %d cases, %d answers" % (len(cases), len(ours)))
        return 1
    failures = 0
    for (name, bhex, jhex), (oname, obhex, ojhex) in zip(cases, ours):
        original = cls(name)()
        original.ParseFromString(bytes.fromhex(bhex))
        problems = []
        if oname != name:
            problems.append("type %s answered as %s" % (name, oname))
        try:
            b = cls(name)()
            b.ParseFromString(bytes.fromhex(obhex))
            if b != original:
                problems.append("binary differs: ours %s" % b)
        except Exception as e:  # noqa: BLE001 - report anything the oracle rejects
            problems.append("oracle rejects our binary: %s" % e)
        try:
            j = json_format.Parse(bytes.fromhex(ojhex).decode("utf-8"), cls(name)())
            if j != original:
                problems.append("JSON differs: ours %s" % bytes.fromhex(ojhex).decode())
        except Exception as e:  # noqa: BLE001
            problems.append("oracle rejects our JSON %r: %s" % (bytes.fromhex(ojhex)[:300], e))
        if problems:
            failures += 1
            if failures <= 5:
                print("FAIL %s: original %s\n  %s" % (name, json_format.MessageToJson(original, indent=None),
                                                     "\n  ".join(problems)))
    if failures:
        print("%d of %d cases differ" % (failures, len(cases)))
        return 1
    print("ok %d" % len(cases))
    return 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--count", type=int, default=30)
    g.add_argument("--out", required=True)
    g.add_argument("--proto-dir", default=os.path.join(ROOT, "proto"))
    v = sub.add_parser("verify")
    v.add_argument("--cases", required=True)
    v.add_argument("--ours", required=True)
    v.add_argument("--proto-dir", default=os.path.join(ROOT, "proto"))
    a = p.parse_args()
    if a.cmd == "generate":
        generate(a)
        return 0
    return verify(a)


if __name__ == "__main__":
    sys.exit(main())
