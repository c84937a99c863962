#!/usr/bin/env bash
# The whole test suite on a fresh machine, as root: installs what the tests
# need (scripts/deps.sh, and CRIU from Debian 13's source: scripts/criu.sh),
# builds the binaries the integration tests run,
# then runs unit and integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
# A CRIU that works on this kernel, for the checkpoint tests.
CAPSA_CRIU=$(bash scripts/criu.sh)
export CAPSA_CRIU
cargo build --workspace --bins
cargo test --workspace --no-fail-fast
