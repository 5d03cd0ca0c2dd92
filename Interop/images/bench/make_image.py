#!/usr/bin/env python3
"""Writes the image benchmark's bytecode image as an OCI layout (Interop/images/bench/run.sh).

One manifest, a config whose io.ebpf.programs label names the object's programs, and one gzip tar layer:
padding entries of seeded random bytes (incompressible, so the layer stays at the size asked for), then the
BPF object, last, so a puller inflates the whole layer before it finds it. Byte for byte the same for the same
object, size and seed (fixed mtimes, owners and gzip header), so every run pushes the same digests.

Usage: make_image.py LAYOUT_DIR TAG OBJECT PROGRAMS_JSON [LAYER_BYTES (default 4 MiB)] [SEED (default 18)]
Prints the layer's compressed size and the manifest digest.
"""
import gzip
import hashlib
import io
import json
import os
import random
import sys
import tarfile


def blob(layout, data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(layout, "blobs", "sha256", digest), "wb") as f:
        f.write(data)
    return "sha256:" + digest


def entry(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    tar.addfile(info, io.BytesIO(data))


def main():
    layout, tag, object_path, programs = sys.argv[1:5]
    layer_bytes = int(sys.argv[5]) if len(sys.argv) > 5 else 4 << 20
    seed = int(sys.argv[6]) if len(sys.argv) > 6 else 18
    with open(object_path, "rb") as f:
        obj = f.read()
    os.makedirs(os.path.join(layout, "blobs", "sha256"), exist_ok=True)

    # Random bytes do not compress: the gzip layer is the tar plus a few bytes per 16 KiB block, so the
    # padding is what is asked for less the object and the tar's own headers and end blocks.
    rng = random.Random(seed)
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        padding = max(0, layer_bytes - len(obj) - 12 * 1024)
        chunk = 1 << 20
        for i in range(0, (padding + chunk - 1) // chunk):
            entry(tar, f"padding/{i:02d}.bin", rng.randbytes(min(chunk, padding - i * chunk)))
        entry(tar, "bytecode/" + os.path.basename(object_path), obj)
    tar_data = tar_bytes.getvalue()
    gz = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=gz, mtime=0, compresslevel=6) as f:
        f.write(tar_data)
    layer = gz.getvalue()

    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": {"io.ebpf.programs": programs}},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar_data).hexdigest()]},
    }
    config_data = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": blob(layout, config_data),
            "size": len(config_data),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": blob(layout, layer),
                "size": len(layer),
            }
        ],
    }
    manifest_data = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    manifest_digest = blob(layout, manifest_data)
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": len(manifest_data),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump(index, f, sort_keys=True, separators=(",", ":"))
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    print(f"layer={len(layer)} manifest={manifest_digest}")


if __name__ == "__main__":
    main()
