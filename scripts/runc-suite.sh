#!/usr/bin/env bash
# runc's own integration suite (tag v1.1.5, tests/integration/*.bats) run
# against a runtime binary, as a measurement of runc parity (issue 16), not
# a CI test. The suite fetches its images from the internet; here they are
# made locally from Debian's packages (busybox-static, mmdebstrap), and its
# Go helpers (recvtty, sd-helper, seccompagent) are built from runc's own
# vendored sources, offline.
#
# Usage: sudo [CAPSA_CRIU=PATH] scripts/runc-suite.sh RUNC_SOURCE [RUNTIME] [BATS_FILTER...]
#   RUNC_SOURCE  a git checkout of opencontainers/runc (any branch: the tag
#                v1.1.5 is exported from it)
#   RUNTIME      the binary under test (default: capsa-runtime, release)
# Prints the TAP output and a summary line "ok N / not ok N / skip N".
# Work and cache: /var/cache/capsa-runc-suite (CAPSA_RUNC_SUITE_CACHE).
set -euo pipefail
cd "$(dirname "$0")/.."
src=${1:?usage: runc-suite.sh RUNC_SOURCE [RUNTIME] [BATS_FILES...]}
runtime=$(readlink -f "${2:-target/x86_64-unknown-linux-gnu/release/capsa-runtime}")
shift 2 || shift $#
cache=${CAPSA_RUNC_SUITE_CACHE:-/var/cache/capsa-runc-suite}
tag=v1.1.5
[ -x "$runtime" ] || { echo "runc-suite: $runtime is not an executable" >&2; exit 1; }

need=()
for p in bats gawk jq bsdutils golang-go libseccomp-dev xz-utils busybox-static mmdebstrap pkg-config; do
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >&2
fi

tree=$cache/runc-$tag
if [ ! -f "$tree/.built" ]; then
    rm -rf "$tree"
    mkdir -p "$tree"
    git -C "$src" archive "$tag" | tar -x -C "$tree"
    (
        cd "$tree"
        export GOFLAGS=-mod=vendor GOPROXY=off GOCACHE=$cache/gocache
        for c in recvtty sd-helper seccompagent; do
            # The agent does nothing without its build tag.
            go build -tags seccomp -o "contrib/cmd/$c/$c" "./contrib/cmd/$c" >&2
        done
    )
    touch "$tree/.built"
fi

# The images get-images.sh would download, made from Debian's packages.
data=$tree/tests/integration/testdata
if [ ! -f "$data/busybox-amd64.tar.xz" ]; then
    bb=$(mktemp -d)
    # mktemp makes it 0700: the image's root must be open to every user.
    chmod 0755 "$bb"
    # As the busybox image: no /proc or /sys (the runtime makes them; tests
    # replace them with symlinks).
    mkdir -p "$bb"/{bin,etc,root,tmp,var,dev,home}
    cp /bin/busybox "$bb/bin/busybox"
    for a in $("$bb/bin/busybox" --list); do
        [ -e "$bb/bin/$a" ] || ln -s busybox "$bb/bin/$a"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n' >"$bb/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$bb/etc/group"
    chmod 1777 "$bb/tmp"
    tar -C "$bb" -cJf "$data/busybox-amd64.tar.xz" .
    rm -rf "$bb"
fi
if [ ! -f "$data/debian-amd64.tar.xz" ]; then
    mmdebstrap --variant=minbase --quiet bookworm "$data/debian-amd64.tar.xz" >&2
fi

cd "$tree/tests/integration"
# CAPSA_RUNC_SUITE_EXCLUDE: test names (one per line) to report as skipped,
# for a test that hangs on this machine whatever the runtime (it would stop
# every test after it). The copy under test gets a `skip` line; the
# summary counts it as a skip.
if [ -n "${CAPSA_RUNC_SUITE_EXCLUDE:-}" ]; then
    while IFS= read -r name; do
        [ -n "$name" ] || continue
        for f in *.bats; do
            awk -v t="@test \"$name\" {" '
                { print }
                $0 == t { print "\tskip \"excluded: hangs here for every runtime (CAPSA_RUNC_SUITE_EXCLUDE)\"" }
            ' "$f" >"$f.new" && mv "$f.new" "$f"
        done
    done <<<"$CAPSA_RUNC_SUITE_EXCLUDE"
    # The cached tree gets the suite's own files back afterwards.
    trap 'git -C "$src" archive "$tag" tests/integration | tar -x -C "$tree"' EXIT
fi
files=("$@")
[ ${#files[@]} -gt 0 ] || files=(*.bats)
out=$(mktemp)
set +e
# A terminal, as runc's CI gives the suite (`script`): its specs ask for
# one, and foreground runs open /dev/tty.
# No BATS_TEST_TIMEOUT: its watchdog is a job of the test's shell, and the
# tests that `wait` for their own jobs would wait it out. The whole run is
# bounded instead.
# A CRIU that works here (scripts/criu.sh) goes first in PATH: Debian 12's
# fails `criu check` on this kernel, and the checkpoint tests look up
# `criu` (runc's and capsa's default --criu).
if [ -n "${CAPSA_CRIU:-}" ]; then
    PATH=$(dirname "$CAPSA_CRIU"):$PATH
    export PATH
fi
RUNC=$runtime timeout "${CAPSA_RUNC_SUITE_TIMEOUT:-3600}" script -qec "bats -t ${files[*]}" /dev/null | tee "$out"
set -e
ok=$(grep -c '^ok ' "$out" || true)
skip=$(grep -c '^ok .* # skip' "$out" || true)
notok=$(grep -c '^not ok ' "$out" || true)
echo "runc-suite: $(basename "$runtime"): ok $((ok - skip)) / not ok $notok / skip $skip"
rm -f "$out"
