#!/usr/bin/env bash
# The whole test suite on a fresh machine, as root: installs what the tests
# need (busybox-static for the test rootfs, procps for `ps`, containerd,
# podman and docker.io for the drop-in tests), builds the
# binaries the integration tests run, then runs unit and integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for p in busybox-static procps containerd podman docker.io; do
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
fi

cargo build --workspace --bins
cargo test --workspace --no-fail-fast
