#!/usr/bin/env bash
# A CRIU that works on this kernel. Debian 12's CRIU 3.17 fails `criu check`
# on kernel 6.x (a vDSO layout error); Debian 13's source (4.1.1) is built
# here with Debian 12's build dependencies, from Debian's own registry.
# Prints the path of the binary; `criu check` must pass with it.
#
# Usage: sudo scripts/criu.sh
# Work and cache: /var/cache/capsa-criu (CAPSA_CRIU_CACHE).
set -euo pipefail
cache=${CAPSA_CRIU_CACHE:-/var/cache/capsa-criu}
bin=$cache/criu
if [ -x "$bin" ] && "$bin" check >/dev/null 2>&1; then
    echo "$bin"
    exit 0
fi

need=()
for p in build-essential pkg-config dpkg-dev libprotobuf-dev libprotobuf-c-dev \
    protobuf-c-compiler protobuf-compiler python3-protobuf libbsd-dev libnftables-dev \
    libcap-dev libnl-3-dev libnet1-dev libaio-dev libgnutls28-dev uuid-dev; do
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >&2
fi

# Debian 13's source package, through a source-only entry for its suite.
list=/etc/apt/sources.list.d/capsa-trixie-src.sources
if [ ! -f "$list" ]; then
    printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: trixie\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' >"$list"
    apt-get update -q >&2
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Only the upstream tarball is needed (the registry here may lack the
# packaging files, so apt's exit code says nothing): it must be there.
(cd "$work" && apt-get source -q --download-only criu >&2) || true
orig=$(ls "$work"/criu_*.orig.tar.* 2>/dev/null | head -n1)
[ -n "$orig" ] || { echo "criu.sh: no CRIU source from Debian's registry" >&2; exit 1; }
mkdir "$work/src"
tar -xf "$orig" -C "$work/src" --strip-components=1
# Only the criu binary: no docs (asciidoc), no plugins, no tests.
make -C "$work/src" -j"$(nproc)" criu >&2
mkdir -p "$cache"
install -m 0755 "$work/src/criu/criu" "$bin.new"
mv "$bin.new" "$bin"
"$bin" --version >&2
"$bin" check >&2
echo "$bin"
