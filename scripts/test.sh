#!/usr/bin/env bash
# The whole test suite on a fresh machine, as root: installs what the tests
# need (scripts/deps.sh), builds the binaries the integration tests run,
# then runs unit and integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cargo build --workspace --bins
cargo test --workspace --no-fail-fast
