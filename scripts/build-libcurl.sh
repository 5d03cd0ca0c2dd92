#!/usr/bin/env bash
# Builds the libcurl the container image ships (README, "Kubernetes"): Debian's own curl source package, of the
# exact version of the installed libcurl4-openssl-dev (so Debian's security patches are in it), configured for
# what the image fetcher asks of it and nothing else: HTTP and HTTPS, OpenSSL, HTTP/2 through libnghttp2, gzip and
# zstd content coding. Debian's build also speaks LDAP, RTMP, SSH, Kerberos, IDN and public-suffix lookups, whose
# 26 libraries (GnuTLS, Kerberos, LDAP, libunistring, libp11-kit, ...) are 3.9 MiB of the image compressed; this
# one needs only libraries the image holds anyway (libssl, libcrypto, libz, libzstd, libnghttp2).
#
# The source comes through apt from Debian's archive, so its signature and checksums are checked against the
# archive keyring like any package's. A private apt state in the work directory is used; the machine's apt
# configuration is not touched. The result is cached under .build/libcurl/<version>/, so a second run only
# checks. The installed bpfman keeps using the system's libcurl: only the image carries this one.
#
# Usage: scripts/build-libcurl.sh        prints the path of the built libcurl.so.4
# Environment: DEBIAN_MIRROR (default http://deb.debian.org), DEBIAN_SUITE (default: bookworm)
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(dpkg-query -W -f '${Version}' libcurl4-openssl-dev)
out=".build/libcurl/$version"
if [ -f "$out/libcurl.so.4" ]; then
    echo "$PWD/$out/libcurl.so.4"
    exit 0
fi

mirror=${DEBIAN_MIRROR:-http://deb.debian.org}
suite=${DEBIAN_SUITE:-bookworm}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
work=$(mktemp -d /tmp/bpfman-libcurl.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial" "$work/src"
cat >"$work/apt/sources.list" <<EOF
deb-src [signed-by=$keyring] $mirror/debian $suite main
deb-src [signed-by=$keyring] $mirror/debian $suite-updates main
deb-src [signed-by=$keyring] $mirror/debian-security $suite-security main
EOF
apt=(apt-get -qq
    -o "Dir::Etc::SourceList=$work/apt/sources.list" -o Dir::Etc::SourceParts=/nonexistent
    -o "Dir::State::Lists=$work/apt/lists" -o "Dir::Cache=$work/apt/cache" -o APT::Sandbox::User=root)
"${apt[@]}" update >&2
(cd "$work/src" && "${apt[@]}" source "curl=$version" >&2)
source_dir=$(find "$work/src" -mindepth 1 -maxdepth 1 -type d -name 'curl-*' | head -1)
[ -n "$source_dir" ] || { echo "build-libcurl: apt-get source curl=$version gave no source tree" >&2; exit 1; }

cd "$source_dir"
# Everything the fetcher does not use is left out, each feature by its configure switch; --without-* for the
# libraries Debian's build links.
./configure --quiet --prefix=/usr --disable-static --enable-shared --enable-symbol-hiding \
    --with-openssl --with-zlib --with-zstd --with-nghttp2 \
    --without-brotli --without-libidn2 --without-libpsl --without-librtmp --without-libssh2 --without-libssh \
    --without-gssapi --without-libgsasl --without-hyper --without-quiche --without-ngtcp2 --without-nghttp3 \
    --disable-ldap --disable-ldaps --disable-rtsp --disable-dict --disable-telnet --disable-tftp --disable-pop3 \
    --disable-imap --disable-smb --disable-smtp --disable-gopher --disable-mqtt --disable-ftp --disable-file \
    --disable-manual --disable-ntlm --disable-ntlm-wb --disable-kerberos-auth --disable-negotiate-auth \
    --disable-aws --disable-cookies --disable-netrc --disable-dateparse --disable-docs \
    --with-ca-bundle=/etc/ssl/certs/ca-certificates.crt --with-ca-path=/etc/ssl/certs >&2
make -s -j"$(nproc)" -C lib >&2
cd - >/dev/null
mkdir -p "$out"
library=$(readlink -f "$source_dir/lib/.libs/libcurl.so.4")
strip --strip-unneeded -o "$out/libcurl.so.4" "$library"
echo "$PWD/$out/libcurl.so.4"
