#!/usr/bin/env python3
"""Writes the seed inputs of the fuzz targets that do not come from client traffic (Fuzz/README.md, "Seeds").

Usage: make_seeds.py OUTDIR

  config/     the operator's bpfman.toml (packaging/kubernetes/configmap.yaml), every key the daemon reads, and
              the TOML forms the reader supports
  manifest/   OCI index and manifest, Docker manifest list and manifest, image config with io.ebpf labels, shaped
              as upstream's bytecode images are (quay.io/bpfman-bytecode), behind fuzz-manifest's flags byte
  layer/      an ELF object as a plain, gzip and zstd tar layer, as a bare and a gzipped object
  elf/        a BPF object compiled from Tests/Fixtures/bpf, a relocatable and a static x86-64 file from a tiny C
              source (symbol tables, program headers, entry point)
  auth/       WWW-Authenticate challenges as Docker Hub, quay.io and distribution send them
  reference/  image references in every form SPEC §8.2 reads
"""
import gzip
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.abspath(sys.argv[1])


def write(directory, name, data):
    os.makedirs(os.path.join(OUT, directory), exist_ok=True)
    with open(os.path.join(OUT, directory, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def configs():
    text = open(os.path.join(REPO, "packaging", "kubernetes", "configmap.yaml")).read()
    operator = "\n".join(line[4:] for line in text.split("bpfman.toml: |\n", 1)[1].splitlines()
                         if line.startswith("    ")) + "\n"
    write("config", "operator-default", operator)
    write("config", "every-key", """\
[interfaces.eth0]
xdp_mode = "skb"
[signing]
verify_enabled = false
allow_unsigned = false
[[signing.trusted_identities]]
certificate_identity = "dev@example.com"
certificate_oidc_issuer_regexp = "https://.*"
[database]
max_retries = 3
millisec_delay = 50
[logging]
level = "debug"
format = "json"
[engine]
attach_mode = "native"
[csi]
pods_root = "/var/lib/kubelet/pods"
[registry]
insecure = ["localhost:5000"]
""")
    write("config", "toml-forms", """\
# every value form the reader knows
title = 'literal \\ string'
"quoted key" = "tab\\t\\u00e9\\U0001F600"
a.b.c = 0x1f
octal = 0o17
binary = 0b1010
big = 1_000_000
neg = -42
pi = 3.14159
exp = 6.02e+23
special = [inf, -inf, nan]
yes = true
multi = \"\"\"
two\\
  lines\"\"\"
raw = '''
raw\\n'''
inline = { x = 1, y = [1, 2, { z = "w" }] }
[[servers]]
name = "alpha"
[[servers]]
name = "beta"
[servers.extra]
note = "nested"
""")


DIGEST = "sha256:" + "3f2b1e" * 10 + "0a1b"


def manifests():
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": DIGEST, "size": 2318,
             "annotations": {"org.opencontainers.image.title": "bpf_x86_bpfel.o"}}
    config = {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": DIGEST, "size": 1121}
    oci_manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": config, "layers": [layer]}
    oci_index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": DIGEST, "size": 741,
         "platform": {"architecture": "amd64", "os": "linux"}},
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": DIGEST, "size": 741,
         "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}}]}
    docker_manifest = {"schemaVersion": 2,
                       "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                       "config": dict(config, mediaType="application/vnd.docker.container.image.v1+json"),
                       "layers": [dict(layer, mediaType="application/vnd.docker.image.rootfs.diff.tar.gzip")]}
    docker_list = {"schemaVersion": 2,
                   "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
                   "manifests": [{"mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                                  "digest": DIGEST, "size": 528,
                                  "platform": {"architecture": "amd64", "os": "linux"}}]}
    image_config = {"architecture": "amd64", "os": "linux", "config": {"Labels": {
        "io.ebpf.programs": json.dumps({"xdp_pass": "xdp", "tc_pass": "tc"}),
        "io.ebpf.maps": json.dumps({"xdp_stats_map": "per_cpu_array"})}},
        "rootfs": {"type": "layers", "diff_ids": [DIGEST]}}
    legacy_config = {"config": {"Labels": {"io.ebpf.bpf_function_name": "pass",
                                           "io.ebpf.program_type": "xdp"}}}
    # flags: bits 0-2 the Content-Type (fuzz-manifest's table), bit 3 an image config
    for name, flags, document in (("oci-manifest", 2, oci_manifest), ("oci-index", 1, oci_index),
                                  ("docker-manifest", 4, docker_manifest), ("docker-list", 3, docker_list),
                                  ("untyped-manifest", 0, oci_manifest), ("config", 8, image_config),
                                  ("legacy-config", 8, legacy_config)):
        write("manifest", name, bytes([flags]) + json.dumps(document, indent=3).encode())


def objects(work):
    source = os.path.join(work, "tiny.c")
    with open(source, "w") as f:
        f.write("int counter;\nint main(void) { return counter; }\nvoid _start(void) { for (;;) main(); }\n")
    subprocess.check_call(["cc", "-O1", "-c", source, "-o", os.path.join(work, "tiny.o")])
    subprocess.check_call(["cc", "-O1", "-static", "-nostdlib", "-Wl,--build-id=none", source,
                           "-o", os.path.join(work, "tiny")])
    subprocess.check_call(["clang", "-O2", "-g0", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu", "-c",
                           os.path.join(REPO, "Tests", "Fixtures", "bpf", "tracepoint_counter.bpf.c"),
                           "-o", os.path.join(work, "tracepoint_counter.bpf.o")])
    return {name: open(os.path.join(work, name), "rb").read()
            for name in ("tiny.o", "tiny", "tracepoint_counter.bpf.o")}


def tar_of(entries):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def layers(built, work):
    obj = built["tracepoint_counter.bpf.o"]
    plain = tar_of([("README", b"bytecode image\n"), ("bpf_x86_bpfel.o", obj)])
    write("layer", "tar", plain)
    write("layer", "tar-gzip", gzip.compress(plain, mtime=0))
    path = os.path.join(work, "layer.tar")
    with open(path, "wb") as f:
        f.write(plain)
    write("layer", "tar-zstd", subprocess.check_output(["zstd", "-q", "-c", path]))
    write("layer", "bare-object", obj)
    write("layer", "gzip-object", gzip.compress(obj, mtime=0))


def elves(built):
    # not named *.o: .gitignore keeps compiled objects out of the repository
    for name, data in built.items():
        write("elf", name.replace(".bpf.o", "-bpf").replace(".o", "-rel"), data)


def auth():
    for n, header in enumerate([
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/alpine:pull"',
        'Bearer realm="https://quay.io/v2/auth",service="quay.io",scope="repository:bpfman-bytecode/xdp_pass:pull"',
        'Basic realm="Registry Realm"',
        'bearer realm="http://127.0.0.1:5000/token", service=standin, error="invalid_token", '
        'error_description="the \\"token\\" expired"',
    ]):
        write("auth", "challenge-%d" % n, header)


def references():
    for n, url in enumerate([
        "quay.io/bpfman-bytecode/xdp_pass:latest",
        "quay.io/bpfman-bytecode/go-tracepoint-counter@" + DIGEST,
        "alpine", "library/alpine:3.19", "localhost:5000/bytecode/tc:v1", "127.0.0.1:5000/a/b/c:tag@" + DIGEST,
        "[::1]:5000/bytecode/xdp", "oci:/var/lib/images/layout:v1", "oci-archive:/tmp/image.tar:latest",
        "oci:/srv/dir:with:colons/layout",
    ]):
        write("reference", "ref-%d" % n, url)


def main():
    with tempfile.TemporaryDirectory() as work:
        configs()
        manifests()
        built = objects(work)
        layers(built, work)
        elves(built)
        auth()
        references()


if __name__ == "__main__":
    main()
