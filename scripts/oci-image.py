#!/usr/bin/env python3
"""Writes the daemon's container image as an OCI archive, without a container engine (SPEC §1.10).

    oci-image.py build --output FILE --version V --revision R --epoch SECONDS --executable BIN... [--stage DIR]
    oci-image.py describe

`build` makes two layers, both FROM scratch:
  1. base:   the Debian shared libraries the executables link (as `ldd` lists them, with the dynamic loader,
             each at the path the loader looks at, through the same symlinks as on this machine) and those they
             load with dlopen (DLOPENED, with what they link; --replace-library ships a build of ours instead,
             scripts/build-libcurl.sh's libcurl), the CA bundle,
             a minimal /etc, /tmp, /run with /var/run -> /run, and /var/lib/bpfman.
  2. bpfman: the executable, /usr/sbin/bpfman, symbols stripped, on a copy, and the names of the two helpers the
             daemon runs it as (bpfman-ns, bpfman-image) as symlinks to it; the daemon itself starts them as
             /proc/self/exe, so the symlinks are for people and scripts that call them by name.
Two layers, so that a registry holding one build only receives the second for the next.

Everything is reproducible: entries sorted, owner 0:0 with no names, mtime = --epoch (the commit time), modes
normalised (0755 directories and executables, 0644 other files, 1777 /tmp), ustar headers (no pax atime or ctime),
gzip without a name or time, and the archive itself written the same way. Two builds of one commit give the same
layer, config and manifest digests.

`describe` prints the image config's process fields as JSON (what the Kubernetes manifest test compares with).
"""
import argparse
import datetime
import gzip
import hashlib
import io
import json
import os
import platform
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile

# The image's process, as the operator's DaemonSet runs it: it gives no command, only `args: [--csi-support]`,
# which replaces Cmd, so the container runs `bpfman --csi-support` (SPEC §1.2: a leading serve flag means
# `serve`). Without args it runs `bpfman serve`. Either way no idle timeout (SPEC §0.2).
ENTRYPOINT = ["/usr/sbin/bpfman"]
CMD = ["serve"]
ENV = ["PATH=/usr/sbin:/usr/bin"]
EXECUTABLE_DIR = "usr/sbin"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
# Libraries the executables load with dlopen, which ldd cannot see (KubernetesManifestTests checks this list
# against every dlopen in Sources): libcrypto for the daemon's SHA-256 (Sources/CLazyCrypto) and the fetcher's
# signature verifier (Sources/COpenSSL), libcurl for the image fetcher (Sources/CCurl).
DLOPENED = ["libcrypto.so.3", "libcurl.so.4"]
# Names under which the daemon runs its own executable (argv[0]); symlinks to bpfman in the image.
HELPER_NAMES = ["bpfman-image", "bpfman-ns"]
IMAGE_NAME = "localhost/bpfman"

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"

GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "s390x": "s390x", "ppc64le": "ppc64le", "armv7l": "arm"}


class Layer:
    """The entries of one layer tar, by path (no leading '/'), written sorted."""

    def __init__(self, epoch):
        self.epoch = epoch
        self.entries = {}  # path -> (type, mode, bytes or link target)

    def directory(self, path, mode=0o755):
        path = path.strip("/")
        parent = os.path.dirname(path)
        if parent and parent not in self.entries:
            self.directory(parent)
        kind = self.entries.get(path, ("dir",))[0]
        if kind != "dir":
            raise SystemExit(f"oci-image: {path} is already a {kind}")
        self.entries[path] = ("dir", mode, None)

    def file(self, path, data, mode):
        path = path.strip("/")
        self.directory(os.path.dirname(path))
        self.entries[path] = ("file", mode, data)

    def symlink(self, path, target):
        path = path.strip("/")
        self.directory(os.path.dirname(path))
        existing = self.entries.get(path)
        if existing and existing != ("link", 0o777, target):
            raise SystemExit(f"oci-image: {path} is already {existing[0]} {existing[2]!r}, not a link to {target}")
        self.entries[path] = ("link", 0o777, target)

    def host_path(self, host_path, mode=None):
        """Reproduces `host_path` as the dynamic loader resolves it: every symlink met on the way (/lib ->
        usr/lib, libbpf.so.1 -> libbpf.so.1.1.2) becomes the same symlink here, the file at the end a copy."""
        pending = [part for part in host_path.split("/") if part]
        current = ""  # the resolved directory so far, relative to /
        hops = 0
        while pending:
            part = pending.pop(0)
            if part == ".":
                continue
            if part == "..":
                current = os.path.dirname(current)
                continue
            candidate = f"{current}/{part}" if current else part
            on_host = "/" + candidate
            if os.path.islink(on_host):
                hops += 1
                if hops > 40:
                    raise SystemExit(f"oci-image: too many symlinks resolving {host_path}")
                target = os.readlink(on_host)
                self.symlink(candidate, target)
                if target.startswith("/"):
                    current = ""
                pending = [p for p in target.split("/") if p] + pending
            elif pending:
                self.directory(candidate)
                current = candidate
            else:
                with open(on_host, "rb") as f:
                    data = f.read()
                executable = os.stat(on_host).st_mode & 0o111
                self.file(candidate, data, mode if mode is not None else (0o755 if executable else 0o644))

    def tar(self):
        """The layer as an uncompressed tar (bytes)."""
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as archive:
            for path in sorted(self.entries):
                kind, mode, payload = self.entries[path]
                info = tarfile.TarInfo(path)
                info.mtime = self.epoch
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mode = mode
                if kind == "dir":
                    info.type = tarfile.DIRTYPE
                    archive.addfile(info)
                elif kind == "link":
                    info.type = tarfile.SYMTYPE
                    info.linkname = payload
                    archive.addfile(info)
                else:
                    info.size = len(payload)
                    archive.addfile(info, io.BytesIO(payload))
        return out.getvalue()


def gzip_bytes(data):
    """gzip -9 -n: no file name, time 0."""
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=out, mtime=0) as compressed:
        compressed.write(data)
    return out.getvalue()


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def shared_libraries(executable):
    """Every library `ldd` resolves for `executable`, and its dynamic loader, as absolute paths."""
    output = subprocess.run(["ldd", executable], check=True, capture_output=True, text=True).stdout
    paths = []
    for line in output.splitlines():
        line = line.strip()
        if "=>" in line:
            name, rest = line.split("=>", 1)
            target = rest.strip().split(" (")[0].strip()
            if target == "not found":
                raise SystemExit(f"oci-image: {executable} needs {name.strip()}, which ldd cannot find")
            if target:
                paths.append(target)
        elif line.startswith("/"):
            paths.append(line.split(" (")[0])  # the loader, as PT_INTERP names it
    return paths


def dlopened_library(name):
    """The path the dynamic loader's cache gives `name` (as dlopen finds it), from `ldconfig -p`."""
    output = subprocess.run(["ldconfig", "-p"], check=True, capture_output=True, text=True).stdout
    for line in output.splitlines():
        parts = line.strip().split(" => ")
        if len(parts) == 2 and parts[0].split(" ")[0] == name:
            return parts[1]
    raise SystemExit(f"oci-image: {name} (loaded with dlopen) is not installed")


def stripped_copy(source, directory):
    """`strip --strip-unneeded` on a copy (no debug info or symbol table in the image), then `normalize_elf`."""
    target = os.path.join(directory, os.path.basename(source))
    subprocess.run(["strip", "--strip-unneeded", "-o", target, source], check=True)
    with open(target, "r+b") as f:
        data = bytearray(f.read())
        normalize_elf(data)
        f.seek(0)
        f.write(data)
    return target


def normalize_elf(data):
    """Makes an executable's bytes depend on its code only, in place.

    swiftc fills `.swift_modhash` (hashes LLDB matches module files with; nothing reads them at run time) with
    values that differ from build to build for some modules (swift-crypto's, measured: Crypto and
    CryptoBoringWrapper), and the linker's build-id is a hash of the whole file, so it differs too. The section is
    zeroed and the build-id set to the SHA-1 of the file with both zeroed: the same for every build of one commit.
    """
    if data[:6] != b"\x7fELF\x02\x01":
        raise SystemExit("oci-image: only little-endian ELF64 executables are supported")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def section(index):
        name, kind, _, _, offset, size = struct.unpack_from("<IIQQQQ", data, shoff + index * shentsize)
        return name, kind, offset, size

    _, _, strings_offset, _ = section(shstrndx)
    build_id = None
    for index in range(shnum):
        name_offset, kind, offset, size = section(index)
        end = data.index(b"\0", strings_offset + name_offset)
        name = bytes(data[strings_offset + name_offset:end])
        if name == b".swift_modhash" and kind == 1:  # SHT_PROGBITS
            data[offset:offset + size] = bytes(size)
        elif name == b".note.gnu.build-id":
            name_size, description_size, note_type = struct.unpack_from("<III", data, offset)
            if note_type == 3:  # NT_GNU_BUILD_ID
                start = offset + 12 + (name_size + 3) // 4 * 4
                build_id = (start, description_size)
    if build_id:
        start, size = build_id
        data[start:start + size] = bytes(size)
        digest = hashlib.sha1(data).digest()
        data[start:start + size] = (digest * (size // len(digest) + 1))[:size]


def base_layer(epoch, executables, replacements):
    """`replacements`: DLOPENED name -> a file to ship instead of the system's library of that name."""
    layer = Layer(epoch)
    for path in ("etc", "run", "var", "var/lib/bpfman", "var/cache", "usr/sbin", "usr/lib"):
        layer.directory(path)
    layer.directory("tmp", 0o1777)
    layer.symlink("var/run", "../run")
    # The daemon's image cache (--image-cache-dir, /var/cache/bpfman) lands in /var/lib/bpfman, the directory
    # the operator's DaemonSet mounts from the host ("bpfman-content-store"), so pulled bytecode survives a
    # container restart as it did upstream.
    layer.symlink("var/cache/bpfman", "../lib/bpfman")
    layer.file("etc/passwd", b"root:x:0:0:root:/root:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n", 0o644)
    layer.file("etc/group", b"root:x:0:\nnogroup:x:65534:\n", 0o644)
    layer.file("etc/nsswitch.conf", b"passwd: files\ngroup: files\nhosts: files dns\n", 0o644)
    with open(CA_BUNDLE, "rb") as f:
        layer.file(CA_BUNDLE, f.read(), 0o644)
    libraries = []
    for executable in executables:
        for library in shared_libraries(executable):
            if library not in libraries:
                libraries.append(library)
    replaced = []
    for name in DLOPENED:
        path = dlopened_library(name)
        if name in replacements:
            # Our build of the library, where the system's is (its real directory: /lib is a link to usr/lib).
            directory = os.path.realpath(os.path.dirname(path)).lstrip("/")
            with open(replacements[name], "rb") as f:
                layer.file(f"{directory}/{name}", f.read(), 0o644)
            replaced.append(f"{directory}/{name}")
            path = replacements[name]
        else:
            if path not in libraries:
                libraries.append(path)
        for library in shared_libraries(path):
            if library not in libraries:
                libraries.append(library)
    for library in sorted(libraries):
        layer.host_path(library)
    return layer, libraries + replaced


def bpfman_layer(epoch, executables):
    layer = Layer(epoch)
    for executable in executables:
        with open(executable, "rb") as f:
            layer.file(f"{EXECUTABLE_DIR}/{os.path.basename(executable)}", f.read(), 0o755)
    for name in HELPER_NAMES:
        layer.symlink(f"{EXECUTABLE_DIR}/{name}", "bpfman")
    return layer


def canonical_json(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def write_archive(path, blobs, index, epoch):
    """The OCI layout (oci-layout, index.json, blobs/sha256/*) as a reproducible tar at `path`."""
    layout = Layer(epoch)
    layout.file("oci-layout", canonical_json({"imageLayoutVersion": "1.0.0"}), 0o644)
    layout.file("index.json", canonical_json(index), 0o644)
    for digest, data in blobs.items():
        layout.file("blobs/sha256/" + digest.split(":", 1)[1], data, 0o644)
    temporary = path + ".tmp"
    with open(temporary, "wb") as f:
        f.write(layout.tar())
    os.replace(temporary, path)


def build(arguments):
    created = datetime.datetime.fromtimestamp(arguments.epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    machine = platform.machine()
    architecture = GO_ARCH.get(machine)
    if architecture is None:
        raise SystemExit(f"oci-image: no OCI architecture name for {machine}")
    with tempfile.TemporaryDirectory(prefix="oci-image-") as scratch:
        originals = arguments.executable
        if os.path.basename(originals[0]) != os.path.basename(ENTRYPOINT[0]):
            raise SystemExit(f"oci-image: the first executable must be the entrypoint's, {ENTRYPOINT[0]}")
        executables = [stripped_copy(path, scratch) for path in originals]
        replacements = {}
        for given in arguments.replace_library or []:
            name, _, path = given.partition("=")
            if name not in DLOPENED or not os.path.isfile(path):
                raise SystemExit(f"oci-image: --replace-library {given}: not NAME=FILE with NAME in {DLOPENED}")
            replacements[name] = path
        base, libraries = base_layer(arguments.epoch, originals, replacements)
        layers = [
            (base, f"scripts/build-image.sh: {len(libraries)} Debian shared libraries, CA certificates, /etc, /tmp"),
            (bpfman_layer(arguments.epoch, executables),
             "scripts/build-image.sh: " + ", ".join(os.path.basename(p) for p in originals)),
        ]
        if arguments.stage:
            stage(arguments.stage, [layer for layer, _ in layers])

    blobs = {}
    descriptors = []
    diff_ids = []
    history = []
    uncompressed = 0
    for layer, description in layers:
        raw = layer.tar()
        uncompressed += len(raw)
        compressed = gzip_bytes(raw)
        digest = sha256(compressed)
        blobs[digest] = compressed
        diff_ids.append(sha256(raw))
        descriptors.append({"mediaType": OCI_LAYER_GZIP, "digest": digest, "size": len(compressed)})
        history.append({"created": created, "created_by": description})

    labels = {
        "org.opencontainers.image.title": "bpfman",
        "org.opencontainers.image.description": "bpfman eBPF manager daemon (Swift), for bpfman-operator's "
        "DaemonSet (Config.spec.daemon.image)",
        "org.opencontainers.image.version": arguments.version,
        "org.opencontainers.image.revision": arguments.revision,
        "org.opencontainers.image.created": created,
    }
    config = {
        "created": created,
        "architecture": architecture,
        "os": "linux",
        "config": {
            "Entrypoint": ENTRYPOINT,
            "Cmd": CMD,
            "Env": ENV,
            "WorkingDir": "/",
            "StopSignal": "SIGTERM",
            "Labels": labels,
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    }
    config_bytes = canonical_json(config)
    blobs[sha256(config_bytes)] = config_bytes
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256(config_bytes), "size": len(config_bytes)},
        "layers": descriptors,
        "annotations": {"org.opencontainers.image.version": arguments.version,
                        "org.opencontainers.image.revision": arguments.revision},
    }
    manifest_bytes = canonical_json(manifest)
    blobs[sha256(manifest_bytes)] = manifest_bytes
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{
            "mediaType": OCI_MANIFEST,
            "digest": sha256(manifest_bytes),
            "size": len(manifest_bytes),
            "platform": {"architecture": architecture, "os": "linux"},
            "annotations": {
                # The tag, as skopeo's oci-archive:FILE:TAG and podman load read it.
                "org.opencontainers.image.ref.name": arguments.version,
                # The full name, as containerd's import (ctr, kind load image-archive) and podman load read it:
                # localhost/, as podman names local images, so that no node ever tries to pull it from Docker Hub.
                "io.containerd.image.name": f"{IMAGE_NAME}:{arguments.version}",
            },
        }],
    }
    write_archive(arguments.output, blobs, index, arguments.epoch)

    compressed_total = sum(d["size"] for d in descriptors)
    summary = {
        "archive": arguments.output,
        "archive_bytes": os.path.getsize(arguments.output),
        "manifest": sha256(manifest_bytes),
        "config": sha256(config_bytes),
        "layers": [d["digest"] for d in descriptors],
        "layer_bytes": [d["size"] for d in descriptors],
        "compressed_bytes": compressed_total,
        "compressed_mib": round(compressed_total / 1048576, 2),
        "uncompressed_bytes": uncompressed,
        "libraries": len(libraries),
    }
    print(json.dumps(summary, indent=2))


def stage(directory, layers):
    """Unpacks the layers into `directory` (an empty or missing directory), for a smoke test under chroot."""
    if os.path.exists(directory):
        shutil.rmtree(directory)
    os.makedirs(directory)
    for layer in layers:
        with tarfile.open(fileobj=io.BytesIO(layer.tar())) as archive:
            if hasattr(tarfile, "fully_trusted_filter"):  # Python >= 3.11.4 warns without an explicit filter
                archive.extractall(directory, filter="fully_trusted")
            else:
                archive.extractall(directory)


def describe(_arguments):
    print(json.dumps({
        "Entrypoint": ENTRYPOINT,
        "Cmd": CMD,
        "Env": ENV,
        "executables": "/" + EXECUTABLE_DIR,
        "ca_bundle": CA_BUNDLE,
        "image_cache_link": {"/var/cache/bpfman": "/var/lib/bpfman"},
        "dlopened": DLOPENED,
        "name": IMAGE_NAME,
    }, indent=2, sort_keys=True))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    b = commands.add_parser("build")
    b.add_argument("--output", required=True)
    b.add_argument("--version", required=True)
    b.add_argument("--revision", required=True)
    b.add_argument("--epoch", required=True, type=int)
    b.add_argument("--executable", action="append", required=True, help="bpfman first, then its helpers")
    b.add_argument("--stage", help="also unpack the layers here")
    b.add_argument("--replace-library", action="append", metavar="NAME=FILE",
                   help="ship FILE as the dlopen'ed library NAME (scripts/build-libcurl.sh's libcurl.so.4)")
    b.set_defaults(run=build)
    d = commands.add_parser("describe")
    d.set_defaults(run=describe)
    arguments = parser.parse_args()
    arguments.run(arguments)


if __name__ == "__main__":
    sys.exit(main())
