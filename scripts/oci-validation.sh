#!/usr/bin/env bash
# The OCI runtime conformance programs (opencontainers/runtime-tools,
# validation/*) run against two runtimes, as a measurement of OCI
# conformance (issue 16), not a CI test. Prints every assertion the
# reference runtime passes and the runtime under test fails, then a count
# per runtime. The programs need Go 1.21 or later: Debian 12 has it in
# bookworm-backports (golang-1.23-go), which this script installs.
#
# Usage: sudo scripts/oci-validation.sh RUNTIME_TOOLS_SOURCE [RUNTIME] [REFERENCE]
#   RUNTIME_TOOLS_SOURCE  a git checkout of opencontainers/runtime-tools
#   RUNTIME               the runtime under test (default: capsa-runtime, release)
#   REFERENCE             the runtime to compare with (default: runc)
# Work and cache: /var/cache/capsa-oci-validation (CAPSA_OCI_VALIDATION_CACHE).
set -euo pipefail
cd "$(dirname "$0")/.."
src=${1:?usage: oci-validation.sh RUNTIME_TOOLS_SOURCE [RUNTIME] [REFERENCE]}
runtime=$(readlink -f "${2:-target/x86_64-unknown-linux-gnu/release/capsa-runtime}")
reference=$(command -v "${3:-runc}")
cache=${CAPSA_OCI_VALIDATION_CACHE:-/var/cache/capsa-oci-validation}
[ -x "$runtime" ] || { echo "oci-validation: $runtime is not an executable" >&2; exit 1; }

go=/usr/lib/go-1.23/bin/go
if [ ! -x "$go" ]; then
    if [ ! -f /etc/apt/sources.list.d/backports.sources ]; then
        printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
            >/etc/apt/sources.list.d/backports.sources
        apt-get update -q >&2
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q golang-1.23-go >&2
fi

tree=$cache/src
rev=$(git -C "$src" rev-parse HEAD)
if [ "$(cat "$tree/.built" 2>/dev/null)" != "$rev" ]; then
    rm -rf "$tree"
    mkdir -p "$tree"
    git -C "$src" archive HEAD | tar -x -C "$tree"
    (
        cd "$tree"
        export GOFLAGS=-mod=vendor GOPROXY=off GOTOOLCHAIN=local GOCACHE=$cache/gocache
        # The in-container checker must be static: the rootfs is busybox.
        "$go" build -tags "netgo osusergo" -ldflags "-extldflags -static" -o runtimetest ./cmd/runtimetest >&2
        for f in validation/*/*.go; do
            case $f in validation/util/*) continue ;; esac
            "$go" build -o "${f%.go}.t" "$f" >&2
        done
    )
    echo "$rev" >"$tree/.built"
fi

# One program at a time: they share the runtime's state directory and
# name their containers with random ids. Each gets a minute.
run_all() {
    local rt=$1 out=$2
    : >"$out"
    (
        cd "$tree"
        for t in validation/*/*.t; do
            RUNTIME=$rt timeout 60 "$t" 2>/dev/null | awk -v t="$t" '
                /^ok [0-9]+ # SKIP/ { next }
                /^(ok|not ok) [0-9]+/ {
                    verdict = ($1 == "ok") ? "ok" : "not ok"
                    sub(/^(ok|not ok) [0-9]+ *-? */, "")
                    print verdict "\t" t "\t" $0
                }' >>"$out" || true
        done
    )
}
ref_out=$(mktemp)
out=$(mktemp)
run_all "$reference" "$ref_out"
run_all "$runtime" "$out"

echo "# passed by $(basename "$reference"), failed by $(basename "$runtime"):"
# An assertion is its program and its words; a program can repeat words
# (one per case), so compare counts of each.
comm -23 <(grep -P '^ok\t' "$ref_out" | cut -f2- | sort) <(grep -P '^ok\t' "$out" | cut -f2- | sort) | sed 's/^/  /'
for pair in "$reference:$ref_out" "$runtime:$out"; do
    f=${pair#*:}
    echo "oci-validation: $(basename "${pair%%:*}"): ok $(grep -cP '^ok\t' "$f") / not ok $(grep -cP '^not ok\t' "$f")"
done
rm -f "$ref_out" "$out"
# The programs' bundles are /tmp/ocitest*; a runtime that runs a container
# without a mount namespace (linux_ns_itype) mounts its /proc, /dev and
# /sys there in the host's namespace and leaves them: unmount, then remove.
for m in $(awk '$2 ~ "^/tmp/ocitest" {print $2}' /proc/self/mounts | sort -r); do
    umount -l "$m" || true
done
rm -rf /tmp/ocitest*
