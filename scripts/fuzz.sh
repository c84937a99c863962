#!/usr/bin/env bash
# Short fuzzing runs of every cargo-fuzz target (config parsing, seccomp
# compilation, manifest parsing, layer unpacking): SECONDS_EACH seconds
# each (default 60). Needs the nightly
# toolchain (libFuzzer and sanitizers), installed through rustup when
# missing; where it cannot be had, CI fails and elsewhere the skip is said.
# Usage: bash scripts/fuzz.sh [SECONDS_EACH]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal >/dev/null 2>&1 || true
fi
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    if [ -n "${CI:-}" ]; then
        echo "fuzz: no nightly toolchain, and rustup could not install one" >&2
        exit 1
    fi
    echo "fuzz: SKIPPED: no nightly toolchain on this machine"
    exit 0
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --quiet
cd fuzz
for t in $(cargo +nightly fuzz list); do
    echo "== fuzz $t (${secs}s)"
    mkdir -p corpus/"$t"
    cargo +nightly fuzz run "$t" corpus/"$t" seeds/"$t" -- -max_total_time="$secs" -print_final_stats=1 2>&1 | grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ +DONE)|ERROR|panicked" || true
    # layer_unpack's scratch directories.
    rm -rf /tmp/capsa-fuzz-unpack-*
    # A crash leaves an artifact and a non-zero exit above: fail on it.
    if ls artifacts/"$t"/crash-* >/dev/null 2>&1; then
        echo "fuzz $t found a crash: $(ls artifacts/"$t"/crash-*)"; exit 1
    fi
done
